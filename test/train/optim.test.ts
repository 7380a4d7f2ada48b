// AdamW, clipping, the learning-rate schedule and gradient accumulation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import { Param, backward, crossEntropy } from '../../src/train/autograd.js';
import { AdamW, learningRate } from '../../src/train/optim.js';
import { createModel, forwardLogits } from '../../src/train/llama-model.js';

test('AdamW: two steps match the formulas (bias correction, decoupled decay, norms not decayed)', () => {
  const w = new Param('w', [2, 1], Float32Array.of(1, -2));
  const norm = new Param('norm', [2], Float32Array.of(1, -2));
  const opt = new AdamW([w, norm], { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.5 });
  const lr = 0.1;
  const grads = [[0.5, -4], [0.25, 1]];
  // reference in float64: the matrix decays, the norm weight does not
  const ref = [{ p: w, decay: 0.5, w: [1, -2] }, { p: norm, decay: 0, w: [1, -2] }];
  const m = [0, 0], v = [0, 0];
  for (let t = 1; t <= 2; t++) {
    w.grad.set(grads[t - 1]);
    norm.grad.set(grads[t - 1]);
    opt.step(lr);
    opt.zeroGrad();
    for (let j = 0; j < 2; j++) {
      const g = grads[t - 1][j];
      m[j] = 0.9 * m[j] + 0.1 * g;
      v[j] = 0.99 * v[j] + 0.01 * g * g;
      const update = (m[j] / (1 - 0.9 ** t)) / (Math.sqrt(v[j] / (1 - 0.99 ** t)) + 1e-8);
      for (const r of ref) r.w[j] -= lr * update + lr * r.decay * r.w[j];
    }
  }
  for (const r of ref) {
    for (let j = 0; j < 2; j++) assert.ok(Math.abs(r.p.value[j] - r.w[j]) < 1e-6, `${r.p.name}[${j}] ${r.p.value[j]} vs ${r.w[j]}`);
  }
  assert.notEqual(w.value[0], norm.value[0]);
  assert.equal(opt.stepsTaken, 2);
  assert.ok(w.grad.every((g) => g === 0));
});

test('global-norm clipping scales all gradients together before the update', () => {
  const make = () => [new Param('a', [1]), new Param('b', [1])];
  const [a, b] = make(), [c, d] = make();
  const clipped = new AdamW([a, b]), direct = new AdamW([c, d]);
  const update = (opt: AdamW, ga: number, gb: number, p: Param[], maxNorm: number) => {
    p[0].grad[0] = ga;
    p[1].grad[0] = gb;
    const norm = opt.step(0.1, maxNorm);
    opt.zeroGrad();
    return norm;
  };
  // norm 5 clipped to 1: the update of gradients 0.6 and 0.8 (scaled by 1 / (5 + 1e-6), rounded to f32)
  assert.equal(update(clipped, 3, 4, [a, b], 1), 5);
  update(direct, Math.fround(3 * (1 / (5 + 1e-6))), Math.fround(4 * (1 / (5 + 1e-6))), [c, d], 0);
  assert.deepEqual([a.value[0], b.value[0]], [c.value[0], d.value[0]]);
  // under the limit: unchanged
  assert.ok(Math.abs(update(clipped, 0.6, 0.8, [a, b], 10) - 1) < 1e-6);
  update(direct, 0.6, 0.8, [c, d], 0);
  assert.deepEqual([a.value[0], b.value[0]], [c.value[0], d.value[0]]);
  assert.notEqual(a.value[0], 0);
});

test('warmup then cosine decay', () => {
  const s = { lr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 110 };
  assert.ok(Math.abs(learningRate(0, s) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(9, s) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(10, s) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(60, s) - 5.5e-4) < 1e-12); // halfway down the cosine
  assert.ok(Math.abs(learningRate(110, s) - 1e-4) < 1e-12);
  assert.ok(learningRate(30, s) > learningRate(31, s));
});

test('gradient accumulation: two half-batches scaled by 1/2 give the full batch gradient', () => {
  const model = createModel({ dim: 16, layers: 1, heads: 2, kvHeads: 1, ffn: 24, vocab: 20, ctx: 8 }, new Rng(3));
  const rng = new Rng(5);
  const tokens = Int32Array.from({ length: 32 }, () => Math.floor(rng.nextFloat() * 20));
  const targets = Int32Array.from({ length: 32 }, () => Math.floor(rng.nextFloat() * 20));
  backward(crossEntropy(forwardLogits(model, tokens, 4, 8), targets));
  const full = model.params.map((p) => p.grad.slice());
  for (const p of model.params) p.grad.fill(0);
  for (const half of [0, 1]) {
    const part = (a: Int32Array) => a.subarray(half * 16, half * 16 + 16);
    backward(crossEntropy(forwardLogits(model, part(tokens), 2, 8), part(targets)), Float32Array.of(0.5));
  }
  model.params.forEach((p, i) => {
    for (let j = 0; j < p.grad.length; j++) assert.ok(Math.abs(p.grad[j] - full[i][j]) < 1e-6, `${p.name}[${j}]`);
  });
});
