// Every autograd operation's gradient against central finite differences, and a whole tiny llama's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import {
  Param, Var, add, attention, backward, columns, combineExperts, crossEntropy, embedding, gatherRows, gelu, klDivergence,
  layernorm, leaf, linear, rmsnorm, rope, routerWeights, scale, softcap, swiglu, tokenLogprobs, type ExpertChoice,
} from '../../src/train/autograd.js';
import { ropeAngles } from '../../src/kernels/rope.js';
import { TrainOps } from '../../src/train/train-ops.js';
import { createModel, forwardLogits } from '../../src/train/llama-model.js';
import { infoNCE, meanPoolRows, normalizeRows } from '../../src/train/contrastive.js';

const rng = new Rng(1234);
const uniform = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * (2 * rng.nextFloat() - 1));
const input = (rows: number, cols: number, scale = 1): Var => leaf(uniform(rows * cols, scale), rows, cols);
const param = (name: string, dims: number[], scale = 1): Param => new Param(name, dims, uniform(dims.reduce((a, b) => a * b, 1), scale));

interface CheckOptions {
  /** finite-difference step */
  h?: number;
  /** elements checked per input (all when the input is smaller) */
  sample?: number;
}

/**
 * Checks d(Σ r ⊙ f())/d(input) for every input against (L(x + h) − L(x − h)) / 2h, with a fixed random r,
 * to a relative error of 1e-2 (plus a small absolute floor for near-zero gradients).
 */
function gradcheck(inputs: Var[], f: () => Var, { h = 1e-2, sample = 24 }: CheckOptions = {}): void {
  const out = f();
  const r = uniform(out.value.length);
  const loss = (): number => {
    const v = f().value;
    let s = 0;
    for (let i = 0; i < v.length; i++) s += r[i] * v[i];
    return s;
  };
  for (const x of inputs) {
    if (x instanceof Param) x.grad.fill(0);
    else x.grad = null;
  }
  backward(f(), r);
  let checked = 0;
  for (const x of inputs) {
    const analytic = x.gradient().slice();
    const n = x.value.length;
    const indices = n <= sample ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: sample }, () => Math.floor(rng.nextFloat() * n));
    for (const i of indices) {
      const v0 = x.value[i];
      x.value[i] = v0 + h;
      const plus = loss();
      x.value[i] = v0 - h;
      const minus = loss();
      x.value[i] = v0;
      const numeric = (plus - minus) / (2 * h);
      const err = Math.abs(analytic[i] - numeric);
      assert.ok(err <= 1e-2 * Math.max(Math.abs(analytic[i]), Math.abs(numeric)) + 2e-4,
        `element ${i}: analytic ${analytic[i]} vs numeric ${numeric}`);
      checked++;
    }
  }
  assert.ok(checked > 0);
}

const rope4 = { nDims: 4, freqBase: 10000, freqScale: 1, neox: false };

test('embedding', () => {
  const table = param('t', [5, 7]);
  const tokens = Int32Array.of(3, 0, 3, 6);
  gradcheck([table], () => embedding(table, tokens));
});

test('linear with and without bias', () => {
  const x = input(6, 9), w = param('w', [9, 10]), b = param('b', [10]);
  gradcheck([x, w, b], () => linear(x, w, b));
  gradcheck([x, w], () => linear(x, w));
});

test('linear on tile-sized shapes (the WebAssembly kernel path)', () => {
  const x = input(12, 16), w = param('w', [16, 24]);
  gradcheck([x, w], () => linear(x, w));
});

test('rmsnorm', () => {
  const x = input(3, 8), w = param('w', [8]);
  gradcheck([x, w], () => rmsnorm(x, w, 1e-5));
});

test('rope, normal and NEOX, with pass-through dims', () => {
  const positions = Int32Array.of(0, 1, 2, 7);
  for (const neox of [false, true]) {
    const x = input(4, 2 * 6);
    const params = { ...rope4, neox, freqBase: 100 };
    gradcheck([x], () => rope(x, 2, 6, ropeAngles(positions, params), params));
  }
});

test('rope of the last dims of each head (decoupled rope, offset)', () => {
  const positions = Int32Array.of(0, 3, 5);
  const x = input(3, 2 * 8);
  const params = { ...rope4, freqBase: 100, offset: 4 };
  gradcheck([x], () => rope(x, 2, 8, ropeAngles(positions, params), params));
});

test('layernorm with weight and bias', () => {
  const x = input(5, 12), w = param('w', [12]), b = param('b', [12]);
  gradcheck([x, w, b], () => layernorm(x, w, b, 1e-5));
});

test('gelu and GeGLU (tanh form)', () => {
  const x = input(4, 10, 3), up = input(4, 10);
  gradcheck([x], () => gelu(x));
  gradcheck([x, up], () => gelu(x, up));
});

test('soft-cap, scale and columns', () => {
  const x = input(3, 12, 20);
  gradcheck([x], () => softcap(x, 10), { h: 1e-2 });
  gradcheck([x], () => scale(x, 0.375));
  gradcheck([x], () => columns(x, 4, 5));
});

test('causal grouped-query attention over two sequences', () => {
  const shape = { nHeads: 4, nKvHeads: 2, headDim: 4, scale: 0.5 };
  const q = input(2 * 5, 16), k = input(2 * 5, 8), v = input(2 * 5, 8);
  gradcheck([q, k, v], () => attention(q, k, v, shape, 2, 5), { sample: 40 });
});

test('attention on tile-sized heads (the WebAssembly kernel path)', () => {
  const shape = { nHeads: 2, nKvHeads: 1, headDim: 8, scale: 0.35 };
  const q = input(2 * 8, 16), k = input(2 * 8, 8), v = input(2 * 8, 8);
  gradcheck([q, k, v], () => attention(q, k, v, shape, 2, 8), { sample: 40 });
});

test('attention is causal: later tokens do not change earlier outputs', () => {
  const shape = { nHeads: 2, nKvHeads: 1, headDim: 4, scale: 0.5 };
  const q = input(6, 8), k = input(6, 4), v = input(6, 4);
  const before = attention(q, k, v, shape, 1, 6).value.slice();
  k.value.fill(3, 5 * 4); v.value.fill(-2, 5 * 4); // change the last token's key and value
  const after = attention(q, k, v, shape, 1, 6).value;
  assert.deepEqual(after.subarray(0, 5 * 8), before.subarray(0, 5 * 8));
  assert.notDeepEqual(after.subarray(5 * 8), before.subarray(5 * 8));
});

test('swiglu and add', () => {
  const g = input(3, 5, 3), u = input(3, 5);
  gradcheck([g, u], () => swiglu(g, u));
  gradcheck([g, u], () => add(g, u));
});

test('gatherRows', () => {
  const x = input(5, 3);
  gradcheck([x], () => gatherRows(x, [4, 1, 1]));
});

test('router weights, normalized and not', () => {
  const choice: ExpertChoice = { experts: [[2, 0], [1, 3], [3, 2]] };
  for (const normalize of [true, false]) {
    const logits = input(3, 4, 2);
    gradcheck([logits], () => routerWeights(logits, choice, normalize));
  }
});

test('combineExperts', () => {
  const choice: ExpertChoice = { experts: [[2, 0], [0, 1], [2, 1]] };
  const tokensOf = [[0, 1], [1, 2], [0, 2]];
  const weights = input(3, 2);
  const outs = tokensOf.map((t) => input(t.length, 4));
  gradcheck([weights, ...outs], () => combineExperts(weights, choice, tokensOf, outs, 4));
});

test('mixture of experts through TrainOps (router, experts, weights)', () => {
  const dim = 8, nFF = 12, nExpert = 4;
  const experts = {
    router: param('router', [dim, nExpert], 0.5),
    gate: param('gate', [dim, nFF, nExpert]),
    up: param('up', [dim, nFF, nExpert]),
    down: param('down', [nFF, dim, nExpert]),
    nUsed: 2,
    normalizeWeights: true,
  };
  const ops = new TrainOps(new Int32Array(6), 2, 3);
  const x = input(6, dim);
  // a small step keeps the top-2 choice the same under perturbation
  gradcheck([x, experts.router, experts.gate, experts.up, experts.down], () => ops.mixtureOfExperts(0, x, experts), { h: 2e-3 });
});

test('cross-entropy with masked rows', () => {
  const logits = input(4, 6, 2);
  const targets = Int32Array.of(5, -1, 0, 2);
  gradcheck([logits], () => crossEntropy(logits, targets));
  // the masked row gets no gradient, and the loss is the mean over the other three
  logits.grad = null;
  const loss = crossEntropy(logits, targets);
  backward(loss);
  assert.ok(logits.gradient().subarray(6, 12).every((g) => g === 0));
  const rowLoss = (r: number, t: number) => {
    const row = Array.from(logits.value.subarray(r * 6, r * 6 + 6));
    return Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[t];
  };
  assert.ok(Math.abs(loss.value[0] - (rowLoss(0, 5) + rowLoss(2, 0) + rowLoss(3, 2)) / 3) < 1e-5);
});

test('KL divergence with temperature', () => {
  const student = input(3, 5, 2);
  const teacher = uniform(15, 2);
  gradcheck([student], () => klDivergence(student, teacher, 2));
  // KL of a distribution to itself is 0
  assert.ok(Math.abs(klDivergence(leaf(teacher, 3, 5), teacher, 2).value[0]) < 1e-6);
});

test('token log-probabilities', () => {
  const logits = input(4, 6, 2);
  gradcheck([logits], () => tokenLogprobs(logits, Int32Array.of(1, 5, -1, 0)));
});

test('a whole tiny llama (2 layers, dim 16, GQA): loss gradient vs finite differences', () => {
  const model = createModel({ dim: 16, layers: 2, heads: 4, kvHeads: 2, ffn: 32, vocab: 24, ctx: 8 }, new Rng(7));
  // larger weights than the 0.02 init make the gradients large against f32 rounding of the loss
  for (const p of model.params) if (p.dims.length > 1) for (let i = 0; i < p.value.length; i++) p.value[i] *= 15;
  const tokens = Int32Array.from({ length: 12 }, () => Math.floor(rng.nextFloat() * 24));
  const targets = Int32Array.from({ length: 12 }, () => Math.floor(rng.nextFloat() * 24));
  gradcheck(model.params, () => crossEntropy(forwardLogits(model, tokens, 2, 6), targets), { sample: 6 });
});

test('contrastive training: masked mean pooling, row normalization, InfoNCE', () => {
  const hidden = input(8, 3); // 2 sequences of seqLen 4, of 3 and 2 real tokens
  gradcheck([hidden], () => meanPoolRows(hidden, 4, [3, 2]));
  const pooled = meanPoolRows(hidden, 4, [3, 2]);
  assert.ok(Math.abs(pooled.value[0] - (hidden.value[0] + hidden.value[3] + hidden.value[6]) / 3) < 1e-6);
  const x = input(3, 4);
  gradcheck([x], () => normalizeRows(x));
  const a = input(3, 4), b = input(3, 4);
  gradcheck([a, b], () => infoNCE(normalizeRows(a), normalizeRows(b), 0.5));
  // pairs that are the same vectors, far apart from each other, give a loss near 0
  const same = leaf(Float32Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1), 3, 3);
  assert.ok(infoNCE(same, same, 0.05).value[0] < 1e-6);
});
