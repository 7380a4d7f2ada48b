// `kiln serve` as a process: it binds 127.0.0.1 on the port asked for, answers, and stops cleanly on SIGTERM;
// without MODEL it serves the default model, or says how to get it when that file is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { MODEL_PATH } from './helpers.js';

type Started = { child: ChildProcess; stderr: string } & ({ url: string } | { exitCode: number });

/** Runs `kiln serve ARGS` until it announces its address or exits. */
function serve(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
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

test('kiln serve MODEL --port 0: serves on 127.0.0.1, stops on SIGTERM with status 0', { timeout: 60_000 }, async () => {
  const started = await serve([MODEL_PATH, '--port', '0', '--ctx', '128']);
  assert.ok('url' in started, `kiln serve exited: ${started.stderr}`);
  try {
    assert.match(started.stderr, /stories260K \(context 128\)/);
    assert.deepEqual(await fetch(`${started.url}/health`).then((r) => r.json()), { status: 'ok' });
    const models = (await fetch(`${started.url}/v1/models`).then((r) => r.json())) as { data: { id: string; max_model_len: number }[] };
    assert.deepEqual(models.data.map((m) => [m.id, m.max_model_len]), [['stories260K', 128]]);
    const completion = await fetch(`${started.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'Once', max_tokens: 3 }) });
    assert.equal(completion.status, 200);
  } finally {
    await stop(started.child);
  }
});

test('kiln serve without MODEL: the default model, or a clear error naming it', { timeout: 60_000 }, async () => {
  const started = await serve(['--port', '0']);
  if ('url' in started) {
    assert.equal((await fetch(`${started.url}/health`)).status, 200);
    await stop(started.child);
    return;
  }
  assert.notEqual(started.exitCode, 0);
  assert.match(started.stderr, /default model .*missing/);
});

test('kiln serve with a bad option value is a usage error', async () => {
  const started = await serve([MODEL_PATH, '--port', '70000']);
  assert.ok('exitCode' in started);
  assert.equal(started.exitCode, 2);
  assert.match(started.stderr, /option '--port <port>' argument '70000' is invalid. expected an integer from 0 to 65535/);
});
