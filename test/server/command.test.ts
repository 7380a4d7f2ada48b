// `kiln serve` as a process: it binds 127.0.0.1 on the port asked for, answers, and stops cleanly on SIGTERM,
// also when the signal goes to the `npx kiln serve` process that started it; without MODEL it serves the default
// model, or says how to get it when that file is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODEL_PATH } from './helpers.js';

type Started = { child: ChildProcess; stderr: string } & ({ url: string } | { exitCode: number });

/** Runs `kiln serve ARGS` (from the sources, or through `npx kiln serve`) until it announces its address or exits. */
function serve(args: string[], through: 'sources' | 'npx' = 'sources'): Promise<Started> {
  const stdio: ['ignore', 'ignore', 'pipe'] = ['ignore', 'ignore', 'pipe'];
  const child = through === 'npx'
    ? spawn('npx', ['--offline', 'kiln', 'serve', ...args], { stdio })
    : spawn(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', 'serve', ...args], { stdio });
  let stderr = '';
  return new Promise((resolve) => {
    child.stderr!.on('data', (data: Buffer) => {
      stderr += data.toString();
      const match = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr);
      if (match) resolve({ child, stderr, url: match[1] });
    });
    child.once('exit', (code) => resolve({ child, stderr, exitCode: code ?? -1 }));
  });
}

/** SIGTERM stops a serving process with status 0. */
async function stop(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);
}

test('kiln serve MODEL --port 0: serves on 127.0.0.1, stops on SIGTERM with status 0', { timeout: 600_000 }, async () => {
  const started = await serve([MODEL_PATH, '--port', '0', '--ctx', '128']);
  assert.ok('url' in started, `kiln serve exited: ${started.stderr}`);
  try {
    assert.match(started.stderr, /stories260K \(context 128\)/);
    assert.deepEqual(await fetch(`${started.url}/health`).then((r) => r.json()), { status: 'ok' });
    const models = (await fetch(`${started.url}/v1/models`).then((r) => r.json())) as { data: { id: string; max_model_len: number }[] };
    assert.deepEqual(models.data.map((m) => [m.id, m.max_model_len]), [['stories260K', 128]]);
    const completion = await fetch(`${started.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: 'Once', max_tokens: 3 }) });
    assert.equal(completion.status, 200);
  } finally {
    await stop(started.child);
  }
});

test('kiln serve without MODEL: the default model, or a clear error naming it', { timeout: 600_000 }, async () => {
  const started = await serve(['--port', '0']);
  if ('url' in started) {
    assert.equal((await fetch(`${started.url}/health`)).status, 200);
    await stop(started.child);
    return;
  }
  assert.notEqual(started.exitCode, 0);
  assert.match(started.stderr, /default model .*missing/);
});

/** The ids of the processes below `pid` (Linux: from ps). */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n').map((row) => row.trim().split(/\s+/).map(Number));
  const below = (parent: number): number[] => rows.filter(([, ppid]) => ppid === parent).flatMap(([child]) => [child, ...below(child)]);
  return below(pid);
}

/** Whether a process is still running (a zombie waiting for its new parent to reap it has ended). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

test('SIGTERM to `npx kiln serve` ends the node server too: its process is gone and its port closed', { timeout: 600_000 }, async () => {
  const started = await serve(['--port', '0'], 'npx');
  assert.ok('url' in started, `npx kiln serve exited: ${started.stderr}`);
  const npx = started.child.pid!;
  // the node process that holds the port: npm exec → sh -c → node
  const servers = descendants(npx).filter((pid) => /\bkiln\b.*\bserve\b/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')) && /node/.test(readFileSync(`/proc/${pid}/comm`, 'utf8')));
  assert.equal(servers.length, 1, `processes below npx ${npx}: ${descendants(npx)}`);
  assert.equal((await fetch(`${started.url}/health`)).status, 200);
  const exited = once(started.child, 'exit');
  process.kill(npx, 'SIGTERM');
  await exited;
  // no deadline here: a server left running fails the test by its timeout
  while (running(servers[0])) await sleep(50);
  await assert.rejects(fetch(`${started.url}/health`), (e: Error & { cause?: { code?: string } }) => e.cause?.code === 'ECONNREFUSED');
});

test('kiln serve with a bad option value is a usage error', async () => {
  const started = await serve([MODEL_PATH, '--port', '70000']);
  assert.ok('exitCode' in started);
  assert.equal(started.exitCode, 2);
  assert.match(started.stderr, /option '--port <port>' argument '70000' is invalid. expected an integer from 0 to 65535/);
});
