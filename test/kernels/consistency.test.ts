// The WASM backend against the reference backend (as ggml's test-backend-ops does): every op on random inputs, every
// weight type, odd shapes (one row, one token, rows not divisible by the thread count, rows crossing the 32-token
// tile, nIn not a multiple of 256 where the type allows), 1 and 2 threads, plain SIMD and relaxed SIMD.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WasmBackend } from '../../src/kernels/wasm.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';
import { kernelModule } from '../../src/kernels/wasm-module.js';
import { loadIntoArenas } from '../../src/kernels/wasm-weights.js';
import { MAX_PAGES, PAGE } from '../../src/kernels/wasm-module.js';
import { COUNTER, WEIGHTS_START } from '../../src/kernels/arena.js';
import { sharedPool } from '../../src/kernels/thread-pool.js';
import { ropeAngles } from '../../src/kernels/rope.js';
import type { AttentionCacheView } from '../../src/kernels/backend.js';
import { GGMLType, typeInfo, typeName } from '../../src/tensor/ggml-type.js';
import { activationRowBytes, dequantizeRow, fp16ToFp32, fp32ToFp16, quantizeRowForDot } from '../../src/tensor/index.js';
import { quantizeRows } from '../../src/quant/ggml-quantize.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { writeGGUF } from '../../src/gguf/writer.js';
import { expertSlice, type WeightTensor } from '../../src/tensor/tensor.js';
import { mulberry32 } from '../helpers/random.js';

/** reproducible uniform floats in [−1, 1) */
function random(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() * 2 - 1;
}

const floats = (n: number, rnd: () => number, scale = 1) => Float32Array.from({ length: n }, () => rnd() * scale);

const reference = new ReferenceBackend();
const variants = [
  { relaxed: false, threads: 1 },
  { relaxed: false, threads: 2 },
  ...(kernelModule(true).relaxed ? [{ relaxed: true, threads: 1 }, { relaxed: true, threads: 2 }] : []),
].map((v) => ({ ...v, backend: new WasmBackend(v) }));
after(() => variants.forEach((v) => v.backend.close()));

/** Runs `body` with the backend's scalar fallback for `ops` disabled: the kernels must serve every call. */
function kernelsOnly(backend: WasmBackend, ops: string[], body: () => void): void {
  const scalar = Reflect.get(backend, 'scalar') as Record<string, unknown>;
  for (const op of ops) scalar[op] = () => assert.fail(`${op} fell back to the scalar path`);
  try {
    body();
  } finally {
    for (const op of ops) delete scalar[op];
  }
}

/** Attention cases: widths (multiples of 4, 8, 16), GQA groups, masks, soft-cap and cache layouts of every architecture. */
const ATTENTION_CASES: {
  label: string; nHeads: number; nKvHeads: number; headDim: number; nTokens: number; mask: 'causal' | 'window' | 'bidirectional';
  valueDim?: number; softcap?: number;
  /** values read from the key rows (MLA: one row [latent | roped key] per slot, the latent the value) */
  shared?: boolean;
  /** halfs after each cache row (rows wider than their heads) */
  pad?: number;
  /** every row from one sequence, at consecutive positions (a prompt: rows are taken several at a time) */
  oneSequence?: boolean;
}[] = [
  { label: 'GQA, head dim 8 (gpt2), one row', nHeads: 4, nKvHeads: 2, headDim: 8, nTokens: 1, mask: 'causal' },
  { label: 'head dim 64', nHeads: 4, nKvHeads: 4, headDim: 64, nTokens: 5, mask: 'causal' },
  { label: 'GQA 3:1, head dim 32', nHeads: 6, nKvHeads: 2, headDim: 32, nTokens: 3, mask: 'causal' },
  { label: 'head dim 40 (a multiple of 8, not 16), padded rows', nHeads: 2, nKvHeads: 1, headDim: 40, nTokens: 4, mask: 'causal', pad: 4 },
  { label: 'head dim 12 (a multiple of 4, not 8)', nHeads: 3, nKvHeads: 3, headDim: 12, nTokens: 2, mask: 'causal' },
  { label: 'values narrower than keys', nHeads: 4, nKvHeads: 2, headDim: 32, valueDim: 16, nTokens: 3, mask: 'causal' },
  { label: 'MLA (deepseek2 widths: keys 24, latent values 16 in the key rows), one row', nHeads: 4, nKvHeads: 1, headDim: 24, valueDim: 16, shared: true, nTokens: 1, mask: 'causal' },
  { label: 'MLA, six rows', nHeads: 4, nKvHeads: 1, headDim: 24, valueDim: 16, shared: true, nTokens: 6, mask: 'causal' },
  { label: 'soft-cap (gemma2) in a sliding window of 8', nHeads: 4, nKvHeads: 2, headDim: 32, softcap: 5, nTokens: 6, mask: 'window' },
  { label: 'soft-cap, causal, one row', nHeads: 4, nKvHeads: 2, headDim: 16, softcap: 2, nTokens: 1, mask: 'causal' },
  { label: 'sliding window of 8 (phi3), one row', nHeads: 4, nKvHeads: 2, headDim: 16, nTokens: 1, mask: 'window' },
  { label: 'bidirectional (bert)', nHeads: 4, nKvHeads: 4, headDim: 16, nTokens: 7, mask: 'bidirectional' },
  // a prompt's rows: blocks of rows meeting each key together (odd query counts, value widths not a multiple of 16)
  { label: 'a prompt, causal, GQA 3:1', nHeads: 6, nKvHeads: 2, headDim: 16, nTokens: 11, mask: 'causal', oneSequence: true },
  { label: 'a prompt, bidirectional, head dim 12, values 20', nHeads: 3, nKvHeads: 3, headDim: 12, valueDim: 20, nTokens: 23, mask: 'bidirectional', oneSequence: true },
  { label: 'a prompt, soft-cap in a sliding window of 8', nHeads: 4, nKvHeads: 2, headDim: 32, softcap: 5, nTokens: 17, mask: 'window', oneSequence: true },
  { label: 'a prompt, MLA', nHeads: 4, nKvHeads: 1, headDim: 24, valueDim: 16, shared: true, nTokens: 9, mask: 'causal', oneSequence: true },
];

const ALL_TYPES = [
  GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
];

/** Row lengths to try: multiples of the block size, including ones that are not multiples of 256 or of 8. */
function rowLengths(type: GGMLType): number[] {
  const block = typeInfo(type).blockSize;
  if (block === 256) return [256, 768, 512];
  if (block === 32) return [32, 96, 288];
  return [8, 44, 288]; // 44: not a multiple of the SIMD width, served by the reference path
}

function randomWeight(type: GGMLType, nIn: number, nOut: number, rnd: () => number): WeightTensor {
  return { name: `w.${typeName(type)}`, type, dims: [nIn, nOut], data: quantizeRows(type, floats(nIn * nOut, rnd), nIn, nOut) };
}

/** Byte offsets of each block's first f16 scale (d) in the block types. */
const SCALE_AT = new Map<GGMLType, number>([
  [GGMLType.Q4_0, 0], [GGMLType.Q4_1, 0], [GGMLType.Q5_0, 0], [GGMLType.Q5_1, 0], [GGMLType.Q8_0, 0], [GGMLType.IQ4_NL, 0],
  [GGMLType.Q2_K, 80], [GGMLType.Q3_K, 108], [GGMLType.Q4_K, 0], [GGMLType.Q5_K, 0], [GGMLType.Q6_K, 208], [GGMLType.IQ4_XS, 0],
]);
const BLOCK_TYPES = [...SCALE_AT.keys()];

/**
 * A random weight whose values are small enough that every block's d is a subnormal f16 (and none is zero): the
 * largest of a few magnitudes that gives that for `type`.
 */
function smallWeight(type: GGMLType, nIn: number, nOut: number, rnd: () => number): WeightTensor {
  const values = floats(nIn * nOut, rnd);
  const blockBytes = typeInfo(type).typeSize, at = SCALE_AT.get(type)!;
  for (const magnitude of [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5]) {
    const data = quantizeRows(type, values.map((v) => v * magnitude), nIn, nOut);
    const view = new DataView(data.buffer, data.byteOffset, data.length);
    let allSubnormal = true;
    for (let b = 0; b < data.length && allSubnormal; b += blockBytes) {
      const d = view.getUint16(b + at, true) & 0x7fff;
      allSubnormal = d !== 0 && d < 0x0400;
    }
    if (allSubnormal) return { name: `w.${typeName(type)}.small`, type, dims: [nIn, nOut], data };
  }
  throw new Error(`no magnitude gives ${typeName(type)} subnormal scales`);
}

/** |wasm − reference| must stay within float32 accumulation error: 2e-5 · Σ|w·x| per output. */
function assertMatmulClose(actual: Float32Array, expected: Float32Array, w: WeightTensor, x: Float32Array, nTokens: number, label: string, floor = 1e-6): void {
  const [nIn, nOut] = w.dims;
  const row = new Float32Array(nIn);
  const rowBytes = w.data.length / nOut;
  for (let r = 0; r < nOut; r++) {
    dequantizeRow(w.type, w.data.subarray(r * rowBytes, (r + 1) * rowBytes), nIn, row);
    for (let t = 0; t < nTokens; t++) {
      let magnitude = 0;
      for (let c = 0; c < nIn; c++) magnitude += Math.abs(row[c] * x[t * nIn + c]);
      const i = t * nOut + r;
      const diff = Math.abs(actual[i] - expected[i]);
      assert.ok(diff <= 2e-5 * magnitude + floor, `${label}: out[${t}, ${r}] = ${actual[i]}, reference ${expected[i]} (|w·x| ${magnitude})`);
    }
  }
}

for (const { relaxed, threads, backend } of variants) {
  const name = `${relaxed ? 'relaxed' : 'simd'}, ${threads} thread${threads > 1 ? 's' : ''}`;

  test(`matmul matches the reference for every weight type (${name})`, () => {
    const rnd = random(threads * 10 + (relaxed ? 1 : 0));
    for (const type of ALL_TYPES) {
      const [a, b, c] = rowLengths(type);
      // (nIn, nOut, nTokens): single row, single token, odd row counts, a batch crossing the 32-token tile, a 4-token tile
      // and one more, one token times rows in four streams per chunk and tail rows, a batch crossing the 128-token tile
      // of widened and packed rows
      for (const [nIn, nOut, nTokens] of [[a, 1, 1], [b, 5, 2], [c, 33, 35], [a, 7, 3], [b, 6, 5], [b, 71, 1], [a, 9, 131]]) {
        const w = randomWeight(type, nIn, nOut, rnd);
        const x = floats(nIn * nTokens, rnd, 2);
        const actual = new Float32Array(nOut * nTokens).fill(NaN);
        const expected = new Float32Array(nOut * nTokens);
        backend.matmul(actual, x, w, nTokens);
        reference.matmul(expected, x, w, nTokens);
        assertMatmulClose(actual, expected, w, x, nTokens, `${typeName(type)} ${nIn}×${nOut}, ${nTokens} tokens`);
      }
    }
  });

  test(`matmul adds a bias as the reference does (${name})`, () => {
    const rnd = random(5 + threads);
    for (const [type, nIn, nOut, nTokens] of [[GGMLType.Q8_0, 96, 7, 1], [GGMLType.Q4_K, 256, 9, 12], [GGMLType.F32, 40, 6, 5]]) {
      const w = randomWeight(type, nIn, nOut, rnd);
      const x = floats(nIn * nTokens, rnd, 2), bias = floats(nOut, rnd, 3);
      const actual = new Float32Array(nOut * nTokens).fill(NaN), expected = new Float32Array(nOut * nTokens);
      backend.matmul(actual, x, w, nTokens, bias);
      reference.matmul(expected, x, w, nTokens, bias);
      assertMatmulClose(actual, expected, w, x, nTokens, `${typeName(type)} with bias`);
    }
  });

  test(`products of one input with several weights (a fused projection's parts) match the reference (${name})`, () => {
    const rnd = random(8 + threads);
    for (const [type, nIn, nOut, nTokens] of [[GGMLType.Q8_0, 64, 12, 1], [GGMLType.Q4_K, 256, 8, 9], [GGMLType.F16, 48, 5, 3]]) {
      const weights = [0, 1, 2].map(() => randomWeight(type, nIn, nOut, rnd));
      const x = floats(nIn * nTokens, rnd, 2);
      for (const biases of [undefined, weights.map(() => floats(nOut, rnd))]) {
        const actual = weights.map(() => new Float32Array(nOut * nTokens).fill(NaN)), expected = weights.map(() => new Float32Array(nOut * nTokens));
        backend.matmulMany(actual, x, weights, nTokens, biases);
        reference.matmulMany(expected, x, weights, nTokens, biases);
        weights.forEach((w, k) => assertMatmulClose(actual[k], expected[k], w, x, nTokens, `${typeName(type)} part ${k}${biases ? ' with bias' : ''}`));
      }
    }
  });

  test(`expert products (mul_mat_id) match the reference: shared rows, a row per slot, sorted or not (${name})`, () => {
    const rnd = random(11 + threads);
    const nExpert = 5;
    for (const type of [GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.F16, GGMLType.F32]) {
      const nIn = typeInfo(type).blockSize === 256 ? 256 : 64, nOut = 10;
      const stacked = (seed: number) => {
        const one = randomWeight(type, nIn, nOut * nExpert, random(seed));
        return { ...one, name: `w${seed}.${typeName(type)}`, dims: [nIn, nOut, nExpert] };
      };
      const gate = stacked(1), up = stacked(2);
      // (tokens, experts per token): one token (decode), a few, and enough that experts get 8 or more rows (tiles)
      for (const [nTokens, nUsed] of [[1, 2], [3, 2], [21, 3]]) {
        const slots = nTokens * nUsed;
        // each token's experts distinct, in no particular order
        const experts = Int32Array.from({ length: slots }, (_, s) => (Math.floor(s / nUsed) * 3 + (s % nUsed) * 2) % nExpert);
        const x = floats(nTokens * nIn, rnd, 2);
        const run = (b: WasmBackend | ReferenceBackend, rows: number, input: Float32Array, weights: WeightTensor[], ids: Int32Array) => {
          const outs = weights.map(() => new Float32Array(ids.length * nOut).fill(NaN));
          b.matmulExperts(outs, input, rows, weights, ids);
          return outs;
        };
        const check = (label: string, rows: number, input: Float32Array, weights: WeightTensor[], ids: Int32Array) => {
          const actual = run(backend, rows, input, weights, ids), expected = run(reference, rows, input, weights, ids);
          ids.forEach((e, s) => {
            const row = Math.floor(s / (ids.length / rows));
            weights.forEach((w, k) => assertMatmulClose(actual[k].subarray(s * nOut, (s + 1) * nOut), expected[k].subarray(s * nOut, (s + 1) * nOut),
              expertSlice(w, e), input.subarray(row * nIn, (row + 1) * nIn), 1, `${typeName(type)} ${label}, ${nTokens} tokens, slot ${s} (expert ${e}), weight ${k}`));
          });
        };
        // gate and up from each token's row; then one row per slot, unsorted and sorted by expert (read in place)
        check('gate and up', nTokens, x, [gate, up], experts);
        const perSlot = floats(slots * nIn, rnd, 2);
        check('a row per slot', slots, perSlot, [up], experts);
        check('a row per slot, sorted', slots, perSlot, [gate], experts.slice().sort());
      }
      assert.throws(() => backend.matmulExperts([new Float32Array(nOut)], floats(nIn, rnd), 1, [gate], Int32Array.of(nExpert)), RangeError);
    }
  });

  test(`block scales that are subnormal f16 (small weights) give the reference's products, one token and many (${name})`, () => {
    // scales4 and the tiles read block scales through the f16 table: a kernel that rebased exponents without a
    // correction would be off by 2^−15 on every such block (a Q6_K d of weights near 0.01 is subnormal)
    const rnd = random(13 + threads);
    for (const type of BLOCK_TYPES) {
      const nIn = typeInfo(type).blockSize === 256 ? 512 : 96;
      for (const [nOut, nTokens] of [[9, 1], [13, 35], [16, 131]]) {
        const w = smallWeight(type, nIn, nOut, rnd);
        const x = floats(nIn * nTokens, rnd, 2);
        const actual = new Float32Array(nOut * nTokens).fill(NaN), expected = new Float32Array(nOut * nTokens);
        backend.matmul(actual, x, w, nTokens);
        reference.matmul(expected, x, w, nTokens);
        assertMatmulClose(actual, expected, w, x, nTokens, `${typeName(type)} with subnormal scales, ${nTokens} tokens`, 0);
      }
    }
  });

  test(`F16 products are exact for zeros, subnormals and both signs (decode: rebased kernel, or the exact one when lists are long; prefill) (${name})`, () => {
    const rnd = random(7 + threads);
    const nIn = 296, nOut = 13; // rows not a multiple of 4 (tail rows) nor nIn of 16 (tail values)
    const halfs = (pick: () => number) => Uint16Array.from({ length: nIn * nOut }, pick);
    const subnormal = () => (rnd() < 0 ? 0x8000 : 0) | (1 + Math.floor(Math.abs(rnd()) * 1022));
    const mixes: [string, Uint16Array][] = [
      // 2% zeros and subnormals among small normal values (a missed correction would stand out): the correction lists
      ['mixed', halfs(() => {
        const u = rnd();
        if (u < -0.97) return subnormal();
        if (u < -0.96) return u < -0.965 ? 0x8000 : 0;
        return fp32ToFp16(Math.sign(u) * (1e-4 + Math.abs(rnd()) * 2e-3));
      })],
      // mostly zeros: lists too long, the exact kernel instead
      ['mostly zeros', halfs(() => (rnd() < 0.5 ? 0 : subnormal()))],
    ];
    for (const [label, bits] of mixes) {
      const w: WeightTensor = { name: `w.${label}`, type: GGMLType.F16, dims: [nIn, nOut], data: new Uint8Array(bits.buffer) };
      const x = floats(nIn, rnd, 2);
      const actual = new Float32Array(nOut).fill(NaN), expected = new Float32Array(nOut);
      const arena = backend.memories[backend.memories.length - 1];
      let freeAfterFirst = 0;
      for (let round = 0; round < 2; round++) {
        // the first call makes the lists; the second, through a new tensor object over the same bytes (as an expert's
        // slice is), finds them kept and takes no memory
        backend.matmul(actual, x, round === 0 ? w : { ...w }, 1);
        if (round === 0) freeAfterFirst = arena.free(0);
        else assert.equal(arena.free(0), freeAfterFirst, `${label}: lists made again for the same weight`);
        reference.matmul(expected, x, w, 1);
        assertMatmulClose(actual, expected, w, x, 1, `F16 ${label}, call ${round + 1}`);
      }
      // several tokens: rows widened once per tile, exactly in every lane
      const xs = floats(nIn * 5, rnd, 2);
      const many = new Float32Array(nOut * 5).fill(NaN), manyExpected = new Float32Array(nOut * 5);
      backend.matmul(many, xs, w, 5);
      reference.matmul(manyExpected, xs, w, 5);
      assertMatmulClose(many, manyExpected, w, xs, 5, `F16 ${label}, 5 tokens`);
    }
  });

  test(`attention over the paged f16 cache matches the reference: masks, soft-cap, value widths, cache layouts (${name})`, () => {
    const rnd = random(99 + threads);
    kernelsOnly(backend, ['attention'], () => {
      for (const c of ATTENTION_CASES) {
        const { nHeads, nKvHeads, headDim, nTokens } = c;
        const valueDim = c.valueDim ?? headDim;
        const nSlots = 40;
        // cache rows of nKvHeads keys (and values), plus padding; MLA: one row per slot, the value the head of the key
        const keyStride = nKvHeads * headDim + (c.pad ?? 0), valueStride = c.shared ? keyStride : nKvHeads * valueDim + (c.pad ?? 0);
        const size = nSlots * (keyStride + (c.shared ? 0 : valueStride));
        // the cache in the backend's own storage, where its attention reads it in place
        const storage = backend.allocateHalfs(size);
        storage.set(Array.from({ length: size }, () => fp32ToFp16(rnd())));
        const keys = storage.subarray(0, nSlots * keyStride), values = c.shared ? keys : storage.subarray(nSlots * keyStride);
        // two sequences scattered over the cache (position p of sequence s lives in slot orders[s][p]), rows alternating
        // between them (or all of the first); row t is at position p = length − nTokens + t and sees, by the mask:
        // positions 0…p (causal), p − 7…p (window of 8), or all `length` positions (bidirectional)
        const orders = [17, 13].map((step) => Int32Array.from({ length: nSlots }, (_, i) => (i * step + 3) % nSlots));
        const length = 23;
        const slotsFor = (t: number) => {
          const p = length - nTokens + t, order = orders[c.oneSequence ? 0 : t % 2];
          if (c.mask === 'bidirectional') return order.subarray(0, length);
          return order.subarray(c.mask === 'window' ? Math.max(0, p - 7) : 0, p + 1);
        };
        const cache: AttentionCacheView = { keys, values, keyStride, valueStride, slotsFor };
        const q = floats(nTokens * nHeads * headDim, rnd, 3);
        const shape = { nHeads, nKvHeads, headDim, valueDim, scale: 1 / Math.sqrt(headDim), softcap: c.softcap };
        const actual = new Float32Array(nTokens * nHeads * valueDim).fill(NaN), expected = new Float32Array(actual.length);
        backend.attention(actual, q, nTokens, cache, shape);
        reference.attention(expected, q, nTokens, cache, shape);
        // softmax weights are rounded to f16 in both; a weight on a rounding boundary may differ by one f16 step
        for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= 1e-3, `attention, ${c.label}: out[${i}] ${actual[i]} vs ${expected[i]}`);
      }
    });
  });

  test(`layernorm, gelu, geglu, soft-cap, scale and swiglu kernels give the reference's bits (${name})`, () => {
    const rnd = random(3 + threads);
    // every f16 value (inf and NaN too) and the midpoints between neighbours (ties of the rounding to f16): every
    // entry of gelu's table and both sides of every rounding step
    const halfs = Float32Array.from({ length: 2 * 65536 }, (_, i) => {
      const h = i >> 1;
      return i % 2 === 0 || (h & 0x3ff) === 0x3ff ? fp16ToFp32(h) : (fp16ToFp32(h) + fp16ToFp32(h + 1)) / 2;
    });
    const up = floats(halfs.length, rnd, 4);
    // soft-cap: magnitudes from 1e-6 to 1e3 (tanh's polynomial below |x/c| = 1/64, the exponential form above), specials
    const capped = Float32Array.from({ length: 50_000 }, () => rnd() * 10 ** (3 * rnd() * 3 - 6));
    capped.set([0, -0, Infinity, -Infinity, 30 / 64, -30 / 64, Math.fround(30 / 64) * (1 + 2 ** -23), 1e-40, 30, 3e38]);
    // layernorm: rows off-centre (the centred sums matter), a few tiny values (f64 sums depend on their order), an odd
    // row count and rows that are not a multiple of 4: on the calling thread (5 × 2602) and shared by the pool (40 × 520)
    const rows = (nTokens: number, dim: number) => {
      const x = floats(nTokens * dim, rnd, 4).map((v, i) => (i % 97 === 0 ? v * 1e-30 : v + 3));
      return { x, nTokens, dim, weight: floats(dim, rnd, 2), bias: floats(dim, rnd) };
    };
    const norms = [rows(5, 2602), rows(40, 520)];
    const same = (label: string, run: (b: WasmBackend | ReferenceBackend) => Float32Array) => assert.deepEqual(run(backend), run(reference), label);
    kernelsOnly(backend, ['layernorm', 'gelu', 'softcap', 'scale', 'swiglu'], () => {
      for (const { x, nTokens, dim, weight, bias } of norms) {
        for (const eps of [1e-5, 1e-12]) {
          same(`layernorm ${nTokens}×${dim}, eps ${eps}`, (b) => { const o = new Float32Array(x.length); b.layernorm(o, x, weight, bias, nTokens, dim, eps); return o; });
        }
      }
      // all of them (pooled), and a short run on the calling thread
      for (const n of [halfs.length, 1001]) {
        same(`gelu of ${n}`, (b) => { const o = new Float32Array(n); b.gelu(o, halfs.subarray(halfs.length - n), n); return o; });
        same(`geglu of ${n}`, (b) => { const o = new Float32Array(n); b.gelu(o, halfs.subarray(halfs.length - n), n, up); return o; });
      }
      for (const cap of [30, 5.3]) same(`soft-cap ${cap}`, (b) => { const o = capped.slice(); b.softcap(o, o.length, cap); return o; });
      // a factor that f32 cannot hold (the reference rounds it first)
      for (const factor of [8, 0.1]) same(`scale by ${factor}`, (b) => { const o = up.slice(0, 5003); b.scale(o, o.length, factor); return o; });
      same('swiglu', (b) => { const o = new Float32Array(30_001); b.swiglu(o, up, halfs.subarray(40_000), o.length); return o; });
    });
  });
}

test('a batch larger than the scratch limit is multiplied in parts with the same result', () => {
  const rnd = random(21);
  const backend = new WasmBackend({ threads: 2, maxScratchBytes: 20_000 });
  try {
    const w = randomWeight(GGMLType.Q4_K, 256, 9, rnd);
    const x = floats(256 * 40, rnd);
    const actual = new Float32Array(9 * 40).fill(NaN), expected = new Float32Array(9 * 40);
    backend.matmul(actual, x, w, 40);
    reference.matmul(expected, x, w, 40);
    assertMatmulClose(actual, expected, w, x, 40, 'Q4_K in parts');
    // expert products in parts: slots gathered and scattered row by row
    const stacked = { ...randomWeight(GGMLType.Q8_0, 64, 3 * 7, rnd), dims: [64, 7, 3] };
    const experts = Int32Array.from({ length: 80 }, (_, s) => (s * 5 + (s >> 1)) % 3);
    const xs = floats(64 * 40, rnd);
    const outs = [new Float32Array(80 * 7).fill(NaN)], expectedOuts = [new Float32Array(80 * 7)];
    backend.matmulExperts(outs, xs, 40, [stacked], experts);
    reference.matmulExperts(expectedOuts, xs, 40, [stacked], experts);
    experts.forEach((e, s) => assertMatmulClose(outs[0].subarray(7 * s, 7 * s + 7), expectedOuts[0].subarray(7 * s, 7 * s + 7),
      expertSlice(stacked, e), xs.subarray(64 * (s >> 1), 64 * (s >> 1) + 64), 1, `experts in parts, slot ${s}`));
  } finally {
    backend.close();
  }
});

/** A small Q8_0 product (64 → 3, 2 tokens) and the reference's result. */
function smallQ8Product(seed: number) {
  const rnd = random(seed);
  const w = randomWeight(GGMLType.Q8_0, 64, 3, rnd);
  const x = floats(64 * 2, rnd);
  const expected = new Float32Array(6);
  reference.matmul(expected, x, w, 2);
  return { w, x, expected };
}

test('the shared thread pool stays consistent while backends come and go between jobs', () => {
  const { w, x, expected } = smallQ8Product(31);
  for (let i = 0; i < 30; i++) {
    // each backend adopts a memory in every worker, then releases it: control jobs between kernel jobs
    const backend = new WasmBackend({ threads: 2 });
    const actual = new Float32Array(6).fill(NaN);
    backend.matmul(actual, x, w, 2);
    backend.close();
    assertMatmulClose(actual, expected, w, x, 2, `round ${i}`);
  }
});

test('a kernel that traps is reported, and the pool goes on serving', () => {
  const { w, x, expected } = smallQ8Product(41);
  const backend = new WasmBackend({ threads: 2 });
  try {
    const arena = backend.memories[0];
    const pool = sharedPool(2, kernelModule(true).module);
    const xAt = arena.scratch(4 * 64), actAt = arena.scratch(68 * 2), outAt = arena.scratch(4 * 4096), scratch = arena.scratch(1024);
    new Int32Array(arena.bytes().buffer, COUNTER, 3).fill(0);
    // weights "at" 4 GiB − 64 KiB: every thread that takes a row reads out of bounds
    const args = [GGMLType.Q8_0, 2 ** 32 - 65536, 68, xAt, actAt, 68, outAt, 64, 4096, 1, 0, COUNTER, 4];
    assert.throws(() => pool.run(arena.exports, arena.index, 'matmul', args, scratch, 512), /out of bounds|kernel thread failed/);
    arena.releaseScratch();
    const actual = new Float32Array(6).fill(NaN);
    backend.matmul(actual, x, w, 2);
    assertMatmulClose(actual, expected, w, x, 2, 'after the trap');
  } finally {
    backend.close();
  }
});

test('activation quantizers match the reference bit for bit (Q8_0 in both split layouts, Q8_1, Q8_K)', () => {
  const rnd = random(7);
  const { backend } = variants[0];
  const arena = backend.memories[0];
  const n = 512, nb = n / 32;
  // a zero block, a block of ties (amax 127: x·127/amax = x lands on .5), and random blocks (|x| < 3)
  const x = floats(n, rnd, 3);
  x.fill(0, 0, 32);
  x[32] = 127;
  for (let j = 33; j < 64; j++) x[j] = (j % 2 ? 1 : -1) * ((j % 7) + 0.5);
  // Q8_K's second super-block: its largest magnitude twice, negative first (the first one gives d its sign)
  x[301] = -5;
  x[402] = 5;
  /** the kernels' layout for weights of type `weight`, as written by quantize_row */
  const quantized = (weight: GGMLType, bytes: number): Uint8Array => {
    try {
      const xa = arena.scratch(4 * n), out = arena.scratch(bytes);
      new Float32Array(arena.bytes().buffer, xa, n).set(x);
      arena.exports.quantize_row(weight, xa, out, n);
      return arena.bytes().slice(out, out + bytes);
    } finally {
      arena.releaseScratch();
    }
  };
  const reference = (type: GGMLType) => {
    const expected = new Uint8Array(activationRowBytes(type, n));
    quantizeRowForDot(type, x, 0, n, expected, 0);
    return expected;
  };
  // Q8_1 and Q8_K are stored as ggml stores them
  assert.deepEqual(quantized(GGMLType.Q4_1, activationRowBytes(GGMLType.Q8_1, n)), reference(GGMLType.Q8_1), 'Q8_1 bytes');
  assert.deepEqual(quantized(GGMLType.Q4_K, activationRowBytes(GGMLType.Q8_K, n)), reference(GGMLType.Q8_K), 'Q8_K bytes');
  // Q8_0 blocks [d f16, q[32]] against the split layouts: q | d f32 | block offsets (Q4_0, Q5_0: the int16 pair
  // −8·Σ q_j over j mod 4 ∈ {0, 1} and over {2, 3}) and |q|, signs | d f32 (Q8_0)
  const q8_0 = reference(GGMLType.Q8_0);
  const refD = (b: number) => fp16ToFp32(q8_0[34 * b] | (q8_0[34 * b + 1] << 8));
  const refQ = (b: number, j: number) => (q8_0[34 * b + 2 + j] << 24) >> 24;
  const sums = quantized(GGMLType.Q4_0, 40 * nb);
  const signs = quantized(GGMLType.Q8_0, 68 * nb);
  const sumsD = new Float32Array(sums.buffer, 32 * nb, nb), offsets = new Int16Array(sums.buffer, 36 * nb, 2 * nb);
  const signsD = new Float32Array(signs.buffer, 64 * nb, nb);
  for (let b = 0; b < nb; b++) {
    const halves = [0, 0];
    for (let j = 0; j < 32; j++) {
      halves[(j >> 1) & 1] += refQ(b, j);
      assert.equal((sums[32 * b + j] << 24) >> 24, refQ(b, j), `sums layout q[${b}, ${j}]`);
      assert.equal(signs[64 * b + 32 + j] ? -signs[64 * b + j] : signs[64 * b + j], refQ(b, j), `signs layout q[${b}, ${j}]`);
    }
    assert.deepEqual([offsets[2 * b], offsets[2 * b + 1]], [0 - 8 * halves[0], 0 - 8 * halves[1]], `offsets of block ${b}`);
    assert.equal(sumsD[b], refD(b), `sums layout d of block ${b}`);
    assert.equal(signsD[b], refD(b), `signs layout d of block ${b}`);
  }
});

test('element-wise ops and embedding agree with the reference', () => {
  const rnd = random(5);
  const { backend } = variants[variants.length - 1];
  const [nTokens, dim] = [3, 64];
  const x = floats(nTokens * dim, rnd), weight = floats(dim, rnd), gate = floats(dim, rnd), bias = floats(dim, rnd);
  const table = randomWeight(GGMLType.Q8_0, dim, 4, rnd);
  // long enough for the WASM rmsnorm and the threaded swiglu (smaller inputs take other paths); 5 rows of 2602: an
  // odd row count, and rows that are not a multiple of 4
  const long = floats(5 * 2602, rnd, 12), longUp = floats(long.length, rnd), longWeight = floats(2602, rnd);
  const extremes = long.slice();
  extremes.set([-200, -90, -87.5, 88.5, 100, 0, -0, 1e-30, -1e-30, 3.4e38, -3.4e38], 1001);
  const rope = { nDims: 16, freqBase: 10000, freqScale: 1, neox: false };
  // 70 rows for the rope kernel (from 2048 values): normal, and NEOX over the middle 8 dims of 16 (the rest unrotated)
  const ropeRows = floats(70 * 64, rnd), positions = Int32Array.from({ length: 70 }, (_, t) => 3 * t);
  const neox = { nDims: 8, offset: 4, freqBase: 500, freqScale: 0.5, neox: true };
  const pairs: [(b: WasmBackend | ReferenceBackend) => Float32Array, string][] = [
    [(b) => { const o = new Float32Array(x.length); b.rmsnorm(o, x, weight, nTokens, dim, 1e-5); return o; }, 'rmsnorm'],
    [(b) => { const o = x.slice(); b.rope(o, nTokens, 4, 16, ropeAngles(Int32Array.of(0, 5, 9), rope), rope); return o; }, 'rope'],
    [(b) => { const o = ropeRows.slice(); b.rope(o, 70, 4, 16, ropeAngles(positions, rope), rope); return o; }, 'rope (kernel)'],
    [(b) => { const o = ropeRows.slice(); b.rope(o, 70, 4, 16, ropeAngles(positions, neox), neox); return o; }, 'rope (kernel, NEOX, offset)'],
    [(b) => { const o = new Float32Array(dim); b.swiglu(o, gate, weight, dim); return o; }, 'swiglu'],
    [(b) => { const o = new Float32Array(long.length); b.rmsnorm(o, long, longWeight, 5, 2602, 1e-6); return o; }, 'rmsnorm (kernel)'],
    // values from −12 to 12, and the exponential's clamped range
    [(b) => { const o = new Float32Array(long.length); b.swiglu(o, long, longUp, long.length); return o; }, 'swiglu (kernel)'],
    [(b) => { const o = new Float32Array(long.length); b.swiglu(o, extremes, longUp, long.length); return o; }, 'swiglu (extremes)'],
    [(b) => { const o = x.slice(); b.addInPlace(o, x, x.length); b.addBias(o, bias, nTokens, dim); return o; }, 'add'],
    [(b) => { const o = new Float32Array(2 * dim); b.embedding(o, table, Int32Array.of(3, 1)); return o; }, 'embedding'],
  ];
  for (const [run, label] of pairs) assert.deepEqual(run(backend), run(reference), label);
});

test('a model file loads straight into several WebAssembly memories and computes the same products', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-arenas-'));
  const backend = new WasmBackend({ threads: 2 });
  try {
    const rnd = random(11);
    const tensors = [GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.F16, GGMLType.Q6_K].map((type, i) => ({
      name: `w${i}.weight`, type, dims: [512, 40], data: quantizeRows(type, floats(512 * 40, rnd), 512, 40),
    }));
    const path = join(dir, 'model.gguf');
    await writeGGUF(path, { metadata: new Map(), tensors });
    // leave each memory room for about 50 KB of weights: the four tensors (13–40 KB each) need several memories
    const file = loadIntoArenas(path, backend, MAX_PAGES * PAGE - WEIGHTS_START - 50_000);
    assert.ok(file.arenaCount >= 2, `weights spread over ${file.arenaCount} memories`);
    const plain = loadGGUF(path);
    for (const t of tensors) {
      const w = file.tensor(t.name);
      assert.deepEqual(Uint8Array.from(w.data), plain.tensor(t.name).data, `${t.name} bytes`);
      const x = floats(512 * 3, rnd);
      const actual = new Float32Array(40 * 3), expected = new Float32Array(40 * 3);
      backend.matmul(actual, x, w, 3);
      reference.matmul(expected, x, w, 3);
      assertMatmulClose(actual, expected, w, x, 3, `${t.name} from arena ${file.arenaCount}`);
    }
  } finally {
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
