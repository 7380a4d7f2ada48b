// Training's WASM kernels (src/kernels/wasm-training.ts) against the reference backend's (reference-training.ts):
// products in every transposition, accumulating or not, at odd and tile-sized shapes, operands inside and outside the
// training memory; rmsnorm, swiglu and attention backward; rope forward and backward, adds, the optimizer step (bit for
// bit); 1 and 2 threads, plain SIMD and relaxed SIMD.
// (The backward kernels against finite differences: test/train/gradcheck.test.ts.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmTrainingBackend } from '../../src/kernels/wasm-training.js';
import { ReferenceTrainingBackend } from '../../src/kernels/reference-training.js';
import { kernelModule } from '../../src/kernels/wasm-module.js';
import { mulberry32 } from '../helpers/random.js';
import { ropeAngles } from '../../src/kernels/rope.js';
import type { OptimizerTensor, RopeParams } from '../../src/kernels/backend.js';

const reference = new ReferenceTrainingBackend();
const variants = [
  { relaxed: false, threads: 1 },
  { relaxed: false, threads: 2 },
  ...(kernelModule(true).relaxed ? [{ relaxed: true, threads: 1 }, { relaxed: true, threads: 2 }] : []),
].map((v) => ({ ...v, backend: new WasmTrainingBackend(v) }));

/** n uniform values in [−1, 1): in the backend's training memory, or (inMemory false) an ordinary array */
function randoms(backend: WasmTrainingBackend, n: number, next: () => number, inMemory = true): Float32Array {
  const x = inMemory ? backend.allocFloats(n, false) : new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = next() * 2 - 1;
  return x;
}

/** |got − want| ≤ tol·(1 + |want|) everywhere */
function close(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])), `${what} at ${i}: ${got[i]} vs ${want[i]}`);
  }
}

for (const { relaxed, threads, backend } of variants) {
  const name = `${relaxed ? 'relaxed' : 'simd'}, ${threads} thread${threads > 1 ? 's' : ''}`;

  test(`gemm matches the reference: A·B, Aᵀ·B, A·Bᵀ, accumulating or not, odd and tile-sized shapes (${name})`, () => {
    const next = mulberry32(7);
    // [m, n, k]: single values, edges in both directions, whole tiles, a k longer than one block, a pooled size
    for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [4, 8, 3], [9, 17, 20], [64, 32, 24], [37, 70, 300], [130, 96, 64]]) {
      for (const [transA, transB] of [[false, false], [true, false], [false, true]]) {
        for (const accumulate of [false, true]) {
          const mark = backend.floatsMark();
          const inMemory = m % 2 === 1; // odd shapes: operands from outside the memory, copied in and out
          const a = randoms(backend, m * k, next, inMemory), b = randoms(backend, k * n, next, inMemory);
          const c = randoms(backend, m * n, next, inMemory), want = Float32Array.from(c);
          backend.gemm(c, a, b, m, n, k, transA, transB, accumulate);
          reference.gemm(want, a, b, m, n, k, transA, transB, accumulate);
          close(c, want, 2e-6 * Math.sqrt(k), `[${m}, ${n}, ${k}] Aᵀ ${transA} Bᵀ ${transB} += ${accumulate}`);
          backend.releaseFloats(mark);
        }
      }
    }
  });

  test(`swiglu and rmsnorm, forward in place and backward, match the reference (${name})`, () => {
    const next = mulberry32(11);
    const mark = backend.floatsMark();
    for (const n of [1, 7, 20000]) {
      const [g, gate, up] = [0, 1, 2].map(() => randoms(backend, n, next));
      gate.forEach((v, i) => { gate[i] = 8 * v; }); // σ saturating on both sides
      // the forward, in place in the training memory: the reference's bits
      const [out, want] = [backend.allocFloats(n), new Float32Array(n)];
      backend.swiglu(out, gate, up, n);
      reference.swiglu(want, gate, up, n);
      assert.deepEqual(out, want, `swiglu n=${n}`);
      const [dg, du] = [0, 1].map(() => randoms(backend, n, next));
      const [wantG, wantU] = [Float32Array.from(dg), Float32Array.from(du)];
      backend.swigluBackward(dg, du, g, gate, up, n);
      reference.swigluBackward(wantG, wantU, g, gate, up, n);
      close(dg, wantG, 1e-6, `dgate n=${n}`);
      close(du, wantU, 1e-6, `dup n=${n}`);
    }
    // rows of a width with an odd tail, and enough of them to be shared by the threads
    for (const [nTokens, dim] of [[5, 13], [300, 64]]) {
      const [g, x, w, dx, dw] = [nTokens * dim, nTokens * dim, dim, nTokens * dim, dim].map((n) => randoms(backend, n, next));
      const [out, want] = [backend.allocFloats(nTokens * dim), new Float32Array(nTokens * dim)];
      backend.rmsnorm(out, x, w, nTokens, dim, 1e-5);
      reference.rmsnorm(want, x, w, nTokens, dim, 1e-5);
      assert.deepEqual(out, want, `rmsnorm [${nTokens}, ${dim}]`);
      const [wantX, wantW] = [Float32Array.from(dx), Float32Array.from(dw)];
      backend.rmsnormBackward(dx, dw, g, x, w, nTokens, dim, 1e-5);
      reference.rmsnormBackward(wantX, wantW, g, x, w, nTokens, dim, 1e-5);
      close(dx, wantX, 1e-5, `rmsnorm dx [${nTokens}, ${dim}]`);
      close(dw, wantW, 1e-5 * Math.sqrt(nTokens), `rmsnorm dweight [${nTokens}, ${dim}]`);
    }
    backend.releaseFloats(mark);
  });

  test(`rope forward and backward, adds and the optimizer step give the reference's bits (${name})`, () => {
    const next = mulberry32(19);
    const mark = backend.floatsMark();
    // [rows, heads, head width, params]: few rows (one thread), many (pooled), NEOX over part of a head (pass-through dims)
    const cases: [number, number, number, RopeParams][] = [
      [3, 2, 8, { nDims: 8, freqBase: 10000, freqScale: 1, neox: false }],
      [600, 4, 16, { nDims: 16, freqBase: 10000, freqScale: 1, neox: false }],
      [130, 3, 12, { nDims: 6, offset: 4, freqBase: 500, freqScale: 0.25, neox: true }],
    ];
    for (const [nTokens, nHeads, headDim, p] of cases) {
      const n = nTokens * nHeads * headDim, what = `rope [${nTokens}, ${nHeads} × ${headDim}]${p.neox ? ' NEOX' : ''}`;
      const angles = ropeAngles(Int32Array.from({ length: nTokens }, (_, t) => (7 * t) % 50), p);
      const [x, g, dx] = [0, 1, 2].map(() => randoms(backend, n, next));
      const want = Float32Array.from(x);
      backend.rope(x, nTokens, nHeads, headDim, angles, p);
      reference.rope(want, nTokens, nHeads, headDim, angles, p);
      assert.deepEqual(x, want, what);
      const wantDx = Float32Array.from(dx);
      backend.ropeBackward(dx, g, nTokens, nHeads, headDim, angles, p);
      reference.ropeBackward(wantDx, g, nTokens, nHeads, headDim, angles, p);
      assert.deepEqual(dx, wantDx, `${what} backward`);
    }
    for (const n of [5, 100003]) {
      const [a, b] = [0, 1].map(() => randoms(backend, n, next));
      const want = Float32Array.from(a);
      backend.addInPlace(a, b, n);
      reference.addInPlace(want, b, n);
      assert.deepEqual(a, want, `add n=${n}`);
    }
    // tensors of odd sizes, one longer than a chunk, decayed or not; gradients of mixed magnitudes
    const tensors: OptimizerTensor[] = [[3, false], [8197, true], [70001, true]].map(([n, decayed]) => {
      const [value, grad, m] = [0, 1, 2].map(() => randoms(backend, n as number, next));
      const v = backend.allocFloats(n as number);
      grad.forEach((x, i) => { grad[i] = x * 10 ** ((i % 7) - 3); });
      v.forEach((_, i) => { v[i] = grad[i] * grad[i]; });
      return { value, grad, m, v, decayed: decayed as boolean };
    });
    const copies = tensors.map((t) => ({ ...t, value: t.value.slice(), m: t.m.slice(), v: t.v.slice() }));
    assert.equal(backend.sumSquares(tensors), reference.sumSquares(copies), 'Σ g²');
    const step = { lr: 3e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, c1: 1 - 0.9 ** 3, c2: 1 - 0.99 ** 3, scale: 0.37 };
    backend.adamw(tensors, step);
    reference.adamw(copies, step);
    tensors.forEach((t, i) => {
      for (const key of ['value', 'm', 'v'] as const) assert.deepEqual(t[key], copies[i][key], `adamw ${key} of tensor ${i}`);
    });
    backend.releaseFloats(mark);
  });

  test(`new buffers come zeroed over what an earlier step left: small ones and pooled ones (${name})`, () => {
    const mark = backend.floatsMark();
    for (const n of [1000, 65536, 300001]) {
      backend.allocFloats(n, false).fill(Number.NaN);
      backend.releaseFloats(mark);
      const zeroed = backend.allocFloats(n);
      assert.equal(zeroed.findIndex((v) => !Object.is(v, 0)), -1, `${n} floats`);
      backend.releaseFloats(mark);
    }
  });

  test(`the cross-entropy's softmax and gradient give the reference's bits: masked rows, odd widths, pooled (${name})`, () => {
    const next = mulberry32(23);
    const mark = backend.floatsMark();
    // [rows, vocabulary, in training memory]: one thread, an odd width, pooled (rows × vocabulary ≥ 12288), operands from elsewhere
    for (const [rows, cols, inMemory] of [[3, 8, true], [7, 33, true], [96, 257, true], [64, 300, false]] as const) {
      const logits = randoms(backend, rows * cols, next, inMemory);
      for (let i = 0; i < rows * cols; i += 7) logits[i] *= 40; // wide spreads: exponents far below the maximum
      const targets = Int32Array.from({ length: rows }, (_, r) => (r % 5 === 3 ? -1 : Math.floor(next() * cols)));
      const buffer = inMemory ? backend.allocFloats(2 * rows * cols) : new Float32Array(2 * rows * cols);
      const probs = new Float64Array(buffer.buffer, buffer.byteOffset, rows * cols), want = new Float64Array(rows * cols);
      backend.crossEntropyForward(logits, targets, rows, cols, probs);
      reference.crossEntropyForward(logits, targets, rows, cols, want);
      assert.deepEqual(probs, want, `softmax [${rows}, ${cols}]`);
      // each unmasked row sums to 1
      for (let r = 0; r < rows; r++) if (targets[r] >= 0) assert.ok(Math.abs(want.subarray(r * cols, (r + 1) * cols).reduce((a, b) => a + b) - 1) < 1e-12);
      const dl = randoms(backend, rows * cols, next, inMemory), wantDl = Float32Array.from(dl);
      backend.crossEntropyBackward(dl, probs, targets, rows, cols, 0.37);
      reference.crossEntropyBackward(wantDl, want, targets, rows, cols, 0.37);
      assert.deepEqual(dl, wantDl, `gradient [${rows}, ${cols}]`);
    }
    backend.releaseFloats(mark);
  });

  test(`causal attention forward and backward match the reference: GQA, head widths, sequences (${name})`, () => {
    const next = mulberry32(13);
    for (const [nHeads, nKvHeads, headDim, nSeq, seqLen] of [[2, 2, 4, 1, 1], [4, 2, 8, 2, 9], [6, 2, 12, 3, 17], [2, 1, 6, 2, 5]]) {
      const mark = backend.floatsMark();
      const shape = { nHeads, nKvHeads, headDim, scale: 1 / Math.sqrt(headDim) };
      const n = nSeq * seqLen, qn = n * nHeads * headDim, kn = n * nKvHeads * headDim;
      const [q, k, v, g] = [qn, kn, kn, qn].map((size) => randoms(backend, size, next));
      const pn = nSeq * nHeads * seqLen * seqLen;
      const [out, probs] = [backend.allocFloats(qn), backend.allocFloats(pn)];
      const [wantOut, wantProbs] = [new Float32Array(qn), new Float32Array(pn)];
      backend.attentionForward(out, probs, q, k, v, nSeq, seqLen, shape);
      reference.attentionForward(wantOut, wantProbs, q, k, v, nSeq, seqLen, shape);
      const what = `heads ${nHeads}/${nKvHeads} × ${headDim}, ${nSeq} × ${seqLen}`;
      close(out, wantOut, 1e-5, `${what}: out`);
      close(probs, wantProbs, 1e-5, `${what}: probs`);
      const [dq, dk, dv] = [qn, kn, kn].map((size) => randoms(backend, size, next));
      const [wantQ, wantK, wantV] = [Float32Array.from(dq), Float32Array.from(dk), Float32Array.from(dv)];
      backend.attentionBackward(dq, dk, dv, g, probs, q, k, v, nSeq, seqLen, shape);
      reference.attentionBackward(wantQ, wantK, wantV, g, wantProbs, q, k, v, nSeq, seqLen, shape);
      close(dq, wantQ, 1e-5, `${what}: dq`);
      close(dk, wantK, 1e-5, `${what}: dk`);
      close(dv, wantV, 1e-5, `${what}: dv`);
      backend.releaseFloats(mark);
    }
  });
}

test('the training kernels give the same bits on 1 and 2 threads (training runs are reproducible at any thread count)', () => {
  const [one, two] = variants.filter((v) => !v.relaxed).map((v) => v.backend);
  const next = mulberry32(17);
  const [nTokens, dim, nHeads, headDim, nSeq, seqLen] = [400, 64, 4, 16, 4, 100];
  const inputs = [nTokens * dim, nTokens * dim, dim, dim * 96, nTokens * 96].map((n) => Float32Array.from({ length: n }, () => next() * 2 - 1));
  const run = (backend: WasmTrainingBackend): Float32Array[] => {
    const [g, x, w, wide, y] = inputs.map((v) => {
      const inMemory = backend.allocFloats(v.length, false);
      inMemory.set(v);
      return inMemory;
    });
    const [dx, dw, c] = [backend.allocFloats(nTokens * dim), backend.allocFloats(dim), backend.allocFloats(nTokens * 96)];
    backend.rmsnormBackward(dx, dw, g, x, w, nTokens, dim, 1e-5);
    backend.gemm(c, x, wide, nTokens, 96, dim, false, false, false);
    backend.gemm(c, y, wide, nTokens, 96, 96, false, false, true);
    const shape = { nHeads, nKvHeads: 2, headDim, scale: 0.25 };
    const [out, probs, dq, dk, dv] = [dim * nTokens, nSeq * nHeads * seqLen * seqLen, dim * nTokens, dim * nTokens / 2, dim * nTokens / 2].map((n) => backend.allocFloats(n));
    backend.attentionForward(out, probs, x, g.subarray(0, nTokens * dim / 2), y.subarray(0, nTokens * dim / 2), nSeq, seqLen, shape);
    backend.attentionBackward(dq, dk, dv, g, probs, x, g.subarray(0, nTokens * dim / 2), y.subarray(0, nTokens * dim / 2), nSeq, seqLen, shape);
    return [dx, dw, c, out, dq, dk, dv].map((v) => Float32Array.from(v));
  };
  const [a, b] = [run(one), run(two)];
  a.forEach((v, i) => assert.deepEqual(v, b[i], `result ${i}`));
});
