// `kiln serve` as a process: it binds 127.0.0.1 on the port asked for, answers, and stops cleanly on SIGTERM;
// without a model it fails with a usage error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { MODEL_PATH } from './helpers.js';

const CLI = ['--import', 'tsx', 'src/cli/run-dev.ts', 'serve'];

test('kiln serve MODEL --port 0: serves on 127.0.0.1, stops on SIGTERM with status 0', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [...CLI, MODEL_PATH, '--port', '0', '--ctx', '128'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (data: Buffer) => {
        stderr += data.toString();
        const match = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr);
        if (match) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`kiln serve exited (${code}): ${stderr}`)));
    });
    assert.match(stderr, /stories260K \(context 128\)/);
    assert.deepEqual(await fetch(`${url}/health`).then((r) => r.json()), { status: 'ok' });
    const models = (await fetch(`${url}/v1/models`).then((r) => r.json())) as { data: { id: string; max_model_len: number }[] };
    assert.deepEqual(models.data.map((m) => [m.id, m.max_model_len]), [['stories260K', 128]]);
    const completion = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'Once', max_tokens: 3 }) });
    assert.equal(completion.status, 200);
  } finally {
    child.kill('SIGTERM');
  }
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});

test('kiln serve without a model is a usage error', () => {
  const out = spawnSync(process.execPath, CLI, { encoding: 'utf8' });
  assert.equal(out.status, 2);
  assert.match(out.stderr, /a model file is required/);
});
