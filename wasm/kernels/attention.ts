// Attention over the f16 KV cache: scores, softmax and weighted values.

import { hsum } from './common';
import { laneSums4, madd, widenF16 } from './simd';

// ---- attention over the f16 KV cache ---------------------------------------------------------------------------

/** dst[i] = f32 of the f16 src[i] for i < n (n a multiple of 4). */
@inline function widenHalfs(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), widenF16(i32x4.shl(i32x4.extend_low_i16x8_u(v), 16)));
    v128.store(dst + (<usize>i << 2) + 16, widenF16(i32x4.shl(i32x4.extend_high_i16x8_u(v), 16)));
  }
  if (i < n) v128.store(dst + (<usize>i << 2), widenF16(i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(src + (<usize>i << 1))), 16)));
}

/** Σ a_d·b_d over n f32 values (n a multiple of 4). */
@inline export function dotF32Plain(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  for (let d = 0; d < n; d += 4) acc = madd(v128.load(a + (<usize>d << 2)), v128.load(b + (<usize>d << 2)), acc);
  return hsum(acc);
}

/**
 * e^x for x ≤ 0 in four lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor polynomial to r⁶ (relative error
 * about 1e-7, within an ulp or two of expf), times 2^n through the exponent bits; below −87 the result would be
 * subnormal and is taken at −87 (≈ 1.6e-38; softmax weights that small round to 0 in f16 anyway).
 */
@inline export function expNonPositive(x: v128): v128 {
  const clamped = f32x4.max(x, f32x4.splat(-87));
  // n = nearest-even(x·log2 e), as f32 and (the bits of rounded − 1.5·2^23, see roundToInt) as i32
  const rounded = f32x4.add(f32x4.mul(clamped, f32x4.splat(1.4426950408889634)), f32x4.splat(12582912));
  const n = f32x4.sub(rounded, f32x4.splat(12582912));
  // ln 2 in two parts, so that n·ln2 is subtracted without rounding error
  const r = f32x4.sub(f32x4.sub(clamped, f32x4.mul(n, f32x4.splat(0.693145751953125))), f32x4.mul(n, f32x4.splat(1.428606765330187e-6)));
  let p = f32x4.splat(<f32>1 / 720);
  p = madd(p, r, f32x4.splat(<f32>1 / 120));
  p = madd(p, r, f32x4.splat(<f32>1 / 24));
  p = madd(p, r, f32x4.splat(<f32>1 / 6));
  p = madd(p, r, f32x4.splat(0.5));
  p = madd(p, r, f32x4.splat(1));
  p = madd(p, r, f32x4.splat(1));
  return i32x4.add(p, i32x4.shl(i32x4.sub(rounded, i32x4.splat(0x4b400000)), 23));
}

/** Four non-negative f32 values rounded to the nearest f16 value (ties to even), as f32; f16 subnormals below 2^−14. */
@inline function roundToF16(x: v128): v128 {
  // normal range: keep 10 mantissa bits; subnormal range: multiples of 2^−24
  const normal = v128.and(i32x4.add(x, i32x4.add(i32x4.splat(0xfff), v128.and(i32x4.shr_u(x, 13), i32x4.splat(1)))), i32x4.splat(0xffffe000));
  const subnormal = f32x4.mul(f32x4.nearest(f32x4.mul(x, f32x4.splat(16777216))), f32x4.splat(5.960464477539063e-8));
  return v128.bitselect(subnormal, normal, f32x4.lt(x, f32x4.splat(6.103515625e-5)));
}

/**
 * Four f32 lanes rounded to the nearest f16 value (ties to even), as f32 with their signs: ggml's f32 → f16 → f32
 * (from 65520 on ±∞, NaN stays NaN), as toF16 then f16 do one value at a time.
 */
@inline function roundToF16Signed(x: v128): v128 {
  const signBit = i32x4.splat(0x80000000);
  const magnitude = v128.andnot(x, signBit);
  const rounded = v128.bitselect(f32x4.splat(Infinity), roundToF16(magnitude), f32x4.ge(magnitude, f32x4.splat(65520)));
  return v128.bitselect(x, v128.or(rounded, v128.and(x, signBit)), f32x4.ne(x, x));
}

/**
 * Four dot products at once: [q·k0, q·k1, q·k2, q·k3] for k_i at k + i·kStride (n f32 values, n a multiple of 4):
 * each load of q serves four keys, and the four sums are reduced together.
 */
@inline function dot4Keys(q: usize, k: usize, kStride: usize, n: i32): v128 {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let d: usize = 0; d < <usize>n << 2; d += 16) {
    const qv = v128.load(q + d);
    a0 = madd(qv, v128.load(k + d), a0);
    a1 = madd(qv, v128.load(k + kStride + d), a1);
    a2 = madd(qv, v128.load(k + 2 * kStride + d), a2);
    a3 = madd(qv, v128.load(k + 3 * kStride + d), a3);
  }
  return laneSums4(a0, a1, a2, a3, true);
}

/**
 * tanh(y) in f32 lanes as (1 − e^−2|y|) / (1 + e^−2|y|) with y's sign, e^−2|y| by expNonPositive: absolute error
 * below 1.3e-7 (measured; relative below 7e-7 from |y| = 0.1 on, growing as |y| → 0 where 1 − e cancels), far below
 * the f16 rounding of the softmax weights that the capped scores become. (The soft-cap op uses tanhF64x2: exact bits.)
 */
@inline function tanhF32x4(y: v128): v128 {
  const e = expNonPositive(f32x4.mul(f32x4.abs(y), f32x4.splat(-2)));
  const t = f32x4.div(f32x4.sub(f32x4.splat(1), e), f32x4.add(f32x4.splat(1), e));
  return v128.or(t, v128.and(y, i32x4.splat(0x80000000)));
}

/** Scores from four kq values: soft-capped when cap is not 0 (c·tanh(kq/c), capInverse = 1/c), then times scale (ggml's order). */
@inline function scoresOf(kq: v128, scale: f32, capInverse: f32, cap: f32): v128 {
  const capped = cap != 0 ? f32x4.mul(tanhF32x4(f32x4.mul(kq, f32x4.splat(capInverse))), f32x4.splat(cap)) : kq;
  return f32x4.mul(capped, f32x4.splat(scale));
}

/**
 * scores[i, j] (rows of rowBytes) = the scores of queries i < nq (rows of headDim f32 at q) against keys j < n (at k,
 * kStride apart): four keys at a time against two queries (each key vector loaded once for both, each query vector
 * for four keys: eight sums in flight), the last odd query against four keys, the last n mod 4 keys one by one.
 */
function attentionScores(q: usize, nq: i32, headDim: i32, k: usize, kStride: usize, n: i32, scores: usize, rowBytes: usize,
  scale: f32, capInverse: f32, cap: f32): void {
  const headBytes = <usize>headDim << 2;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const k0 = k + <usize>j * kStride, k1 = k0 + kStride, k2 = k1 + kStride, k3 = k2 + kStride;
    const s = scores + (<usize>j << 2);
    let i = 0;
    for (; i + 2 <= nq; i += 2) {
      const q0 = q + <usize>i * headBytes, q1 = q0 + headBytes;
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (let d: usize = 0; d < headBytes; d += 16) {
        const x0 = v128.load(q0 + d), x1 = v128.load(q1 + d);
        let kv = v128.load(k0 + d);
        a0 = madd(x0, kv, a0); b0 = madd(x1, kv, b0);
        kv = v128.load(k1 + d);
        a1 = madd(x0, kv, a1); b1 = madd(x1, kv, b1);
        kv = v128.load(k2 + d);
        a2 = madd(x0, kv, a2); b2 = madd(x1, kv, b2);
        kv = v128.load(k3 + d);
        a3 = madd(x0, kv, a3); b3 = madd(x1, kv, b3);
      }
      v128.store(s + <usize>i * rowBytes, scoresOf(laneSums4(a0, a1, a2, a3, true), scale, capInverse, cap));
      v128.store(s + <usize>(i + 1) * rowBytes, scoresOf(laneSums4(b0, b1, b2, b3, true), scale, capInverse, cap));
    }
    if (i < nq) v128.store(s + <usize>i * rowBytes, scoresOf(dot4Keys(q + <usize>i * headBytes, k0, kStride, headDim), scale, capInverse, cap));
  }
  for (; j < n; j++) {
    for (let i = 0; i < nq; i++) {
      const kq = dotF32Plain(q + <usize>i * headBytes, k + <usize>j * kStride, headDim);
      store<f32>(scores + <usize>i * rowBytes + (<usize>j << 2), f32x4.extract_lane(scoresOf(f32x4.splat(kq), scale, capInverse, cap), 0));
    }
  }
}

/**
 * Scores row s [n4] (n4 a multiple of 4) → softmax weights over its entries [a, b), rounded to f16 (ggml multiplies
 * them with f16 values); the others (another row's keys, padding) 0. e_j = exp(s_j − max), then e_j / Σe.
 */
function softmaxRow(s: usize, n4: i32, a: i32, b: i32): void {
  for (let j = 0; j < a; j++) store<f32>(s + (<usize>j << 2), -Infinity);
  for (let j = b; j < n4; j++) store<f32>(s + (<usize>j << 2), -Infinity);
  let top = f32x4.splat(-Infinity);
  for (let j = 0; j < n4; j += 4) top = f32x4.max(top, v128.load(s + (<usize>j << 2)));
  const maxScore = f32x4.splat(max(max(f32x4.extract_lane(top, 0), f32x4.extract_lane(top, 1)), max(f32x4.extract_lane(top, 2), f32x4.extract_lane(top, 3))));
  let sum = f32x4.splat(0);
  for (let j = 0; j < n4; j += 4) {
    const at = s + (<usize>j << 2);
    // masked lanes (−∞) come out as 0
    const e = v128.and(expNonPositive(f32x4.sub(v128.load(at), maxScore)), f32x4.ne(v128.load(at), f32x4.splat(-Infinity)));
    v128.store(at, e);
    sum = f32x4.add(sum, e);
  }
  const total = f32x4.splat(hsum(sum));
  for (let j = 0; j < n4; j += 4) {
    const at = s + (<usize>j << 2);
    v128.store(at, roundToF16(f32x4.div(v128.load(at), total)));
  }
}

/** o[d] = Σ_j p_j · v_j[d] for d < valueDim over j < n (weights at p, values at v, vStride apart), 16 dims at a time in registers. */
function weightedValues(p: usize, v: usize, vStride: usize, n: i32, valueDim: i32, o: usize): void {
  let d: usize = 0;
  for (; d + 16 <= <usize>valueDim; d += 16) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      const w = v128.load32_splat(p + (<usize>j << 2));
      a0 = madd(v128.load(vj), w, a0);
      a1 = madd(v128.load(vj + 16), w, a1);
      a2 = madd(v128.load(vj + 32), w, a2);
      a3 = madd(v128.load(vj + 48), w, a3);
      vj += vStride;
    }
    v128.store(o + (d << 2), a0);
    v128.store(o + (d << 2) + 16, a1);
    v128.store(o + (d << 2) + 32, a2);
    v128.store(o + (d << 2) + 48, a3);
  }
  for (; d < <usize>valueDim; d += 4) {
    let a = f32x4.splat(0);
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      a = madd(v128.load(vj), v128.load32_splat(p + (<usize>j << 2)), a);
      vj += vStride;
    }
    v128.store(o + (d << 2), a);
  }
}

/** weightedValues of two weight rows (p0, p1) at once into o0, o1: each value vector loaded once for both. */
function weightedValues2(p0: usize, p1: usize, v: usize, vStride: usize, n: i32, valueDim: i32, o0: usize, o1: usize): void {
  let d: usize = 0;
  for (; d + 16 <= <usize>valueDim; d += 16) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      const w0 = v128.load32_splat(p0 + (<usize>j << 2)), w1 = v128.load32_splat(p1 + (<usize>j << 2));
      let x = v128.load(vj);
      a0 = madd(x, w0, a0); b0 = madd(x, w1, b0);
      x = v128.load(vj + 16);
      a1 = madd(x, w0, a1); b1 = madd(x, w1, b1);
      x = v128.load(vj + 32);
      a2 = madd(x, w0, a2); b2 = madd(x, w1, b2);
      x = v128.load(vj + 48);
      a3 = madd(x, w0, a3); b3 = madd(x, w1, b3);
      vj += vStride;
    }
    v128.store(o0 + (d << 2), a0); v128.store(o0 + (d << 2) + 16, a1); v128.store(o0 + (d << 2) + 32, a2); v128.store(o0 + (d << 2) + 48, a3);
    v128.store(o1 + (d << 2), b0); v128.store(o1 + (d << 2) + 16, b1); v128.store(o1 + (d << 2) + 32, b2); v128.store(o1 + (d << 2) + 48, b3);
  }
  for (; d < <usize>valueDim; d += 4) {
    let a = f32x4.splat(0), b = a;
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      const x = v128.load(vj);
      a = madd(x, v128.load32_splat(p0 + (<usize>j << 2)), a);
      b = madd(x, v128.load32_splat(p1 + (<usize>j << 2)), b);
      vj += vStride;
    }
    v128.store(o0 + (d << 2), a);
    v128.store(o1 + (d << 2), b);
  }
}

/**
 * Attention over the paged f16 cache. Every thread calls this with the same arguments.
 * The cache: keys [slot, keyStride] f16 with kv head g's key at g·headDim, values [slot, valueStride] f16 with its
 * value at g·valueDim (values may be the key rows themselves: MLA reads the latent at the start of each row).
 * Rows see entries of `list` (i32 cache slots): row t sees the spans[2t + 1] entries from spans[2t] on (rows of one
 * sequence share its entries; a causal, windowed or bidirectional mask is just where a row's span lies).
 * When wideKeys is not 0 (rows or jobs share entries), phase 1 widens the listed cache rows to f32 once, in chunks
 * of 16 entries claimed from counter + 4 (finished ones counted at counter + 8): → wideKeys [nList, nKvHeads·headDim],
 * wideValues [nList, nKvHeads·valueDim]. Otherwise each job widens its own entries' head into its scratch.
 * Phase 2: jobs (kv head, part, block) claimed from the counter, kv head by kv head (its widened keys and values stay
 * in cache). A block (blocks: i32 pairs [first row, rows]) is a run of rows of one sequence, and a part up to
 * headsPerJob of the query heads that share the kv head: the job's queries (row-major over its rows and heads) meet
 * the union of its rows' entries together (each key and value read once for all of them), each row's weights on
 * the entries outside its own span 0. Scores: q·k, soft-capped when cap is not 0 (c·tanh(q·k/c), capInverse =
 * 1/c), times scale. q: [nTokens, nHeads·headDim] f32, out [nTokens, nHeads·valueDim]; headDim and valueDim
 * multiples of 4. maxQueries: a job's rows × heads at most; maxLength: the longest union of a block's spans.
 * scratch (per thread, floats): q of the job's queries [maxQueries, headDim] | scores [maxQueries, maxLength + 3] |
 * without wideKeys: the job's keys [maxLength + 3, headDim] and values [maxLength + 3, valueDim].
 */
export function attention(
  q: usize, out: usize, keys: usize, values: usize, keyStride: i32, valueStride: i32, list: usize, nList: i32,
  wideKeys: usize, wideValues: usize, spans: usize, blocks: usize, nBlocks: i32, nHeads: i32, nKvHeads: i32, headDim: i32,
  valueDim: i32, headsPerJob: i32, maxQueries: i32, maxLength: i32, scale: f32, capInverse: f32, cap: f32, counter: usize, scratch: usize,
): void {
  const keyRowBytes = <usize>keyStride << 1, valueRowBytes = <usize>valueStride << 1;
  const wideKeyBytes = <usize>(nKvHeads * headDim) << 2, wideValueBytes = <usize>(nKvHeads * valueDim) << 2;
  if (wideKeys) {
    for (let i0 = atomic.add<i32>(counter + 4, 16); i0 < nList; i0 = atomic.add<i32>(counter + 4, 16)) {
      const i1 = min(nList, i0 + 16);
      for (let i = i0; i < i1; i++) {
        const slot = <usize>load<i32>(list + (<usize>i << 2));
        widenHalfs(keys + slot * keyRowBytes, wideKeys + <usize>i * wideKeyBytes, nKvHeads * headDim);
        widenHalfs(values + slot * valueRowBytes, wideValues + <usize>i * wideValueBytes, nKvHeads * valueDim);
      }
      atomic.add<i32>(counter + 8, i1 - i0);
    }
    // entries claimed by other threads are being widened now: wait for them
    while (atomic.load<i32>(counter + 8) < nList) {}
  }

  const group = nHeads / nKvHeads;
  const parts = (group + headsPerJob - 1) / headsPerJob;
  const headBytes = <usize>headDim << 2, valueBytes = <usize>valueDim << 2;
  const padded = <usize>(maxLength + 3) & ~3;
  const qg = scratch;
  const scores = qg + <usize>maxQueries * headBytes;
  const ownKeys = scores + <usize>maxQueries * (padded << 2), ownValues = ownKeys + padded * headBytes;
  while (true) {
    const job = atomic.add<i32>(counter, 1);
    if (job >= nKvHeads * parts * nBlocks) break;
    const g = job / (parts * nBlocks), part = job / nBlocks % parts, block = job % nBlocks;
    // query heads h0 … h0 + nh − 1 of rows t0 … t0 + nRows − 1
    const h0 = g * group + part * headsPerJob, nh = min(headsPerJob, group - part * headsPerJob);
    const t0 = load<i32>(blocks + (<usize>block << 3)), nRows = load<i32>(blocks + (<usize>block << 3) + 4);
    const nq = nRows * nh;
    // the union [first, first + n) of the rows' entries
    let first = i32.MAX_VALUE, end = 0;
    for (let t = t0; t < t0 + nRows; t++) {
      const from = load<i32>(spans + (<usize>t << 3));
      first = min(first, from);
      end = max(end, from + load<i32>(spans + (<usize>t << 3) + 4));
    }
    const n = end - first, n4 = (n + 3) & ~3;
    // this job's keys and values: rows of kStride / vStride bytes, widened by phase 1 or here (this kv head's part only)
    if (!wideKeys) {
      for (let j = 0; j < n; j++) {
        const slot = <usize>load<i32>(list + ((<usize>first + <usize>j) << 2));
        widenHalfs(keys + slot * keyRowBytes + (<usize>g * headBytes >> 1), ownKeys + <usize>j * headBytes, headDim);
        widenHalfs(values + slot * valueRowBytes + (<usize>g * valueBytes >> 1), ownValues + <usize>j * valueBytes, valueDim);
      }
    }
    const k = wideKeys ? wideKeys + <usize>first * wideKeyBytes + <usize>g * headBytes : ownKeys;
    const v = wideKeys ? wideValues + <usize>first * wideValueBytes + <usize>g * valueBytes : ownValues;
    const kStride = wideKeys ? wideKeyBytes : headBytes, vStride = wideKeys ? wideValueBytes : valueBytes;
    // the queries, rounded to f16 as ggml converts q to the cache's type: query i = (row t0 + i / nh, head h0 + i % nh)
    for (let r = 0; r < nRows; r++) {
      const qAt = q + <usize>((t0 + r) * nHeads + h0) * headBytes, at = qg + <usize>(r * nh) * headBytes;
      for (let i: usize = 0; i < <usize>(nh * headDim) << 2; i += 16) v128.store(at + i, roundToF16Signed(v128.load(qAt + i)));
    }
    const rowBytes = <usize>n4 << 2;
    attentionScores(qg, nq, headDim, k, kStride, n, scores, rowBytes, scale, capInverse, cap);
    for (let i = 0; i < nq; i++) {
      const t = t0 + i / nh, from = load<i32>(spans + (<usize>t << 3)) - first;
      softmaxRow(scores + <usize>i * rowBytes, n4, from, from + load<i32>(spans + (<usize>t << 3) + 4));
    }
    // out = Σ_j p_j · v_j, two queries at a time
    let i = 0;
    for (; i + 2 <= nq; i += 2) {
      const o0 = out + <usize>((t0 + i / nh) * nHeads + h0 + i % nh) * valueBytes;
      const o1 = out + <usize>((t0 + (i + 1) / nh) * nHeads + h0 + (i + 1) % nh) * valueBytes;
      weightedValues2(scores + <usize>i * rowBytes, scores + <usize>(i + 1) * rowBytes, v, vStride, n, valueDim, o0, o1);
    }
    if (i < nq) weightedValues(scores + <usize>i * rowBytes, v, vStride, n, valueDim, out + <usize>((t0 + i / nh) * nHeads + h0 + i % nh) * valueBytes);
  }
}
