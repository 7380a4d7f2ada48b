// Distillation: the hint loss and the weighted sum against finite differences, option checks, and on a byte-level
// Shakespeare slice a student distilled from a larger kiln-trained teacher ends with a lower validation loss than
// the same student (same seed, same batches) trained on hard labels alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backward, leaf } from '../../src/train/autograd.js';
import { parseTrainConfig, TrainConfigError } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { openModelForTraining } from '../../src/train/load-model.js';
import { distill, meanSquaredError, weightedSum } from '../../src/train/distill.js';
import { sharedPath } from '../shared.js';

test('meanSquaredError and weightedSum: value and gradient match finite differences', () => {
  const x = Float32Array.of(0.5, -1, 2, 0.25), t1 = Float32Array.of(1, -1.5, 1, 0), t2 = Float32Array.of(0, 2, -1, 0.5);
  // L(x) = 0.7 · mean((x − t1)²) − 0.2 · mean((x − t2)²)
  const exact = (v: Float32Array) => [[t1, 0.7], [t2, -0.2]].reduce((s, [t, w]) =>
    s + (w as number) * v.reduce((m, e, j) => m + (e - (t as Float32Array)[j]) ** 2, 0) / v.length, 0);
  const a = leaf(Float32Array.from(x), 2, 2);
  const l = weightedSum([[meanSquaredError(a, t1), 0.7], [meanSquaredError(a, t2), -0.2]]);
  assert.ok(Math.abs(l.value[0] - exact(x)) < 1e-6);
  backward(l);
  for (let i = 0; i < x.length; i++) {
    const h = 1e-3, up = Float32Array.from(x), down = Float32Array.from(x);
    up[i] += h;
    down[i] -= h;
    assert.ok(Math.abs(a.grad![i] - (exact(up) - exact(down)) / (2 * h)) < 1e-3, `d/dx${i}`);
  }
});

const dir = mkdtempSync(join(tmpdir(), 'kiln-distill-'));
writeFileSync(join(dir, 'corpus.txt'), readFileSync(sharedPath('data/text/tinyshakespeare.txt')).subarray(0, 40000));
const base = { tokenizer: 'bytes', corpus: 'corpus.txt', batchSize: 8, seqLen: 32, warmup: 5, evalTokens: 256 };
await train(parseTrainConfig({
  ...base, model: { dim: 48, layers: 2, heads: 4, kvHeads: 4, ffn: 128, ctx: 32 }, steps: 150, lr: 1e-2, seed: 1, output: 'teacher.gguf',
}, dir));
const teacher = openModelForTraining(join(dir, 'teacher.gguf')).model;
const student = (name: string) => parseTrainConfig({
  ...base, model: { dim: 16, layers: 1, heads: 2, kvHeads: 2, ffn: 48, ctx: 32 }, steps: 60, lr: 1e-2, seed: 7, output: `${name}.gguf`,
}, dir);

test('a distilled student beats the same student trained on hard labels alone', async () => {
  const hard = await distill(teacher, student('hard'), { alpha: 0, temperature: 2, hiddenWeight: 0 });
  const soft = await distill(teacher, student('soft'), { alpha: 0.9, temperature: 1, hiddenWeight: 0 });
  assert.ok(soft.finalValLoss < hard.finalValLoss - 0.02, `distilled ${soft.finalValLoss} vs hard labels ${hard.finalValLoss}`);
});

test('hidden-state matching trains the projection and the student; bad options are typed errors', async () => {
  const hinted = await distill(teacher, student('hinted'), { alpha: 0.5, temperature: 2, hiddenWeight: 0.5 });
  const losses = hinted.history.train.map((p) => p.loss);
  assert.ok(losses[losses.length - 1] < losses[0] - 0.5, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  assert.ok(Number.isFinite(hinted.finalValLoss));
  await assert.rejects(distill(teacher, student('bad'), { alpha: 1.5, temperature: 2, hiddenWeight: 0 }), TrainConfigError);
  await assert.rejects(distill(teacher, student('bad'), { alpha: 0.5, temperature: 0, hiddenWeight: 0 }), TrainConfigError);
});
