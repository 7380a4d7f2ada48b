// `kiln train --config FILE [--stop-at N] [--resume] [-o FILE] [-t N]` on a tiny model: its output, and its progress
// lines in a log (stderr not a terminal) from the first step on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kiln } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-train-cli-'));
writeFileSync(join(dir, 'corpus.txt'), 'to be or not to be, that is the question.\n'.repeat(40));
const configPath = join(dir, 'cfg.json');
writeFileSync(configPath, JSON.stringify({
  model: { dim: 16, layers: 1, heads: 2, kvHeads: 2, ffn: 32, ctx: 16 },
  tokenizer: 'bytes', corpus: 'corpus.txt', steps: 6, batchSize: 2, seqLen: 16, lr: 1e-2, evalInterval: 3,
  evalTokens: 32, output: 'out/tiny.gguf',
}));

test('stop early, then resume to the end: model, checkpoint and curve next to the output', async () => {
  const stopped = await kiln('train', '--config', configPath, '--stop-at', '3');
  assert.match(stopped.stdout, /^stopped at step 3 /);
  assert.ok(!existsSync(join(dir, 'out/tiny.gguf')));
  const done = await kiln('train', '--config', configPath, '--resume');
  assert.match(done.stdout, /wrote .*tiny\.gguf: 6 steps .* validation loss \d+\.\d{4} over the whole split/);
  for (const file of ['tiny.gguf', 'tiny.ckpt', 'tiny.loss.svg']) assert.ok(existsSync(join(dir, 'out', file)), file);
});

test('progress in a log: a line from the first step on, every evaluation, and the last step; -o and -t override the configuration', async () => {
  const output = join(dir, 'other', 'model.gguf');
  const { stdout, stderr, status } = await kiln('train', '--config', configPath, '-o', output, '-t', '1');
  assert.equal(status, 0, stderr);
  assert.match(stdout, new RegExp(`wrote ${output.replace(/[.]/g, '\\.')}: 6 steps`));
  const lines = stderr.trimEnd().split('\n');
  assert.match(lines[0], /^step 1\/6 \| loss \d+\.\d{4} \| \d+ tok\/s \| \d+m\d\ds elapsed, ETA \d+m\d\ds$/);
  assert.deepEqual(lines.filter((l) => l.includes('validation loss')).map((l) => l.split(':')[0]), ['step 3', 'step 6']);
  assert.match(lines.at(-1)!, /^step 6\/6 \| loss \d+\.\d{4} \| val \d+\.\d{4} \| /);
});

test('usage and configuration errors', async () => {
  const missing = await kiln('train');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /required option '--config <file>' not specified/);
  writeFileSync(join(dir, 'bad.json'), '{"model": {"dim": 16}}');
  assert.match((await kiln('train', '--config', join(dir, 'bad.json'))).stderr, /^kiln train: model\.layers must be an integer/);
  const absent = await kiln('train', '--config', join(dir, 'missing.json'));
  assert.equal(absent.status, 1);
  assert.match(absent.stderr, /^kiln train: .*missing\.json/);
  assert.match((await kiln('train', '--config', configPath, '-t', '17')).stderr, /expected an integer from 1 to 16/);
});
