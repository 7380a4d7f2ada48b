// `kiln train --config FILE [--stop-at N] [--resume]` on a tiny model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { trainCommand } from '../../src/cli/commands/train.js';
import { TrainConfigError } from '../../src/train/config.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-train-cli-'));
writeFileSync(join(dir, 'corpus.txt'), 'to be or not to be, that is the question.\n'.repeat(40));
const configPath = join(dir, 'cfg.json');
writeFileSync(configPath, JSON.stringify({
  model: { dim: 16, layers: 1, heads: 2, kvHeads: 2, ffn: 32, ctx: 16 },
  tokenizer: 'bytes', corpus: 'corpus.txt', steps: 6, batchSize: 2, seqLen: 16, lr: 1e-2, evalInterval: 3,
  evalTokens: 32, output: 'out/tiny.gguf',
}));

/** runs the command, returning what it printed with console.log */
async function run(argv: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => { lines.push(args.join(' ')); };
  try {
    await trainCommand.run(parseArgs(argv, trainCommand.options));
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

test('stop early, then resume to the end: model, checkpoint and curve next to the output', async () => {
  assert.match(await run(['--config', configPath, '--stop-at', '3']), /^stopped at step 3 /);
  assert.ok(!existsSync(join(dir, 'out/tiny.gguf')));
  const done = await run(['--config', configPath, '--resume']);
  assert.match(done, /wrote .*tiny\.gguf: 6 steps .* validation loss \d+\.\d{4} over the whole split/);
  for (const file of ['tiny.gguf', 'tiny.ckpt', 'tiny.loss.svg']) assert.ok(existsSync(join(dir, 'out', file)), file);
});

test('usage and configuration errors', async () => {
  await assert.rejects(run([]), UsageError);
  writeFileSync(join(dir, 'bad.json'), '{"model": {"dim": 16}}');
  await assert.rejects(run(['--config', join(dir, 'bad.json')]), TrainConfigError);
  await assert.rejects(run(['--config', join(dir, 'missing.json')]), TrainConfigError);
});
