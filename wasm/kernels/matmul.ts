// The matrix product driver: per-type dispatch (dotRow, multiplyRows), F16 correction lists, bias, and the exported
// matmul over a list of products.

import { BF16, F16, F16_REBASED, F32, IQ4_NL, IQ4_XS, Q2_K, Q3_K, Q4_0, Q4_1, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0, RELAXED } from './common';
import { Q8_0_WIDE, quantizeQ8Blocks, quantize_row } from './quantize';
import { dotQ4_1, dotQ5_1, rows4Of } from './dot-legacy';
import { dotIQ4_XS, dotQ2_K, dotQ3_K, dotQ4_K, dotQ5_K, dotQ6_K, rows4Q2_K, rows4Q3_K, rows4Q4_K, rows4Q5_K, rows4Q6_K } from './dot-kquants';
import { dotBF16, dotF16, dotF16Rebased, dotF32, rows4BF16, rows4F16, rows4F16Rebased } from './dot-float';
import { PACKED_K_TOKENS, PACKED_TOKENS, WIDE_TOKENS, gemmF32, packedRowsTokens, rows8Tokens, tileIQ4_XS, tileQ4_K, tileQ5_K, tileQ6_K, tileRow, wideRowsTokens, widenRow } from './tiles';

/** One weight row · one activation row of n values. */
@inline function dotRow(type: i32, w: usize, x: usize, n: i32, scratch: usize): f32 {
  switch (type) {
    case Q4_1: return dotQ4_1(w, x, n >> 5);
    case Q5_1: return dotQ5_1(w, x, n >> 5);
    case Q2_K: return dotQ2_K(w, x, n >> 8, scratch);
    case Q3_K: return dotQ3_K(w, x, n >> 8, scratch);
    case Q4_K: return dotQ4_K(w, x, n >> 8, scratch);
    case Q5_K: return dotQ5_K(w, x, n >> 8, scratch);
    case Q6_K: return dotQ6_K(w, x, n >> 8, scratch);
    case IQ4_XS: return dotIQ4_XS(w, x, n >> 8);
    case F16: return dotF16(w, x, n);
    case F16_REBASED: return dotF16Rebased(w, x, n);
    case BF16: return dotBF16(w, x, n);
    case F32: return dotF32(w, x, n);
    default: return NaN;
  }
}

/** Bytes that the first `values` values of a row take: in the weight's own format, and in its activation layout. */
@inline function weightBytes(type: i32, values: i32): usize {
  switch (type) {
    case F32: return <usize>values << 2;
    case F16: case F16_REBASED: case BF16: return <usize>values << 1;
    case Q4_1: return <usize>(values >> 5) * 20;
    case Q5_1: return <usize>(values >> 5) * 24;
    case Q2_K: return <usize>(values >> 8) * 84;
    case Q3_K: return <usize>(values >> 8) * 110;
    case Q4_K: return <usize>(values >> 8) * 144;
    case Q5_K: return <usize>(values >> 8) * 176;
    case IQ4_XS: return <usize>(values >> 8) * 136;
    default: return <usize>(values >> 8) * 210; // Q6_K
  }
}

@inline function activationBytes(type: i32, values: i32): usize {
  switch (type) {
    case F32: case F16: case F16_REBASED: case BF16: return <usize>values << 2;
    case Q4_1: case Q5_1: return <usize>(values >> 5) * 36;
    default: return <usize>(values >> 8) * 292; // the K-quants' Q8_K
  }
}

/**
 * Correction lists for F16 weights read by widenF16Rebased: for every row, one entry per value whose exponent field is
 * 0 (zeros and subnormals): bit 31 its sign, bits 30…21 its mantissa m, bits 20…0 its activation slot (8-group
 * even/odd order). Layout at `table`: starts [nRows + 1] u32 (each row's first entry), then the entries u32. With
 * `fill` false nothing is written (table unused). Returns the number of entries. nIn is a multiple of 8, below 2^21.
 */
export function f16_corrections(w: usize, nRows: i32, nIn: i32, table: usize, fill: bool): u32 {
  const entries = table + ((<usize>nRows + 1) << 2);
  let count: u32 = 0;
  for (let r = 0; r < nRows; r++) {
    if (fill) store<u32>(table + (<usize>r << 2), count);
    const row = w + <usize>r * (<usize>nIn << 1);
    for (let i = 0; i < nIn; i += 8) {
      const exponents = v128.and(v128.load(row + (<usize>i << 1)), i16x8.splat(0x7c00));
      let zero = i16x8.bitmask(i16x8.eq(exponents, i16x8.splat(0)));
      for (; zero != 0; zero &= zero - 1) {
        if (fill) {
          const k = ctz(zero);
          const slot = <u32>(i + (k & 1 ? 4 + (k >> 1) : k >> 1));
          const h = <u32>load<u16>(row + (<usize>(i + k) << 1));
          store<u32>(entries + (<usize>count << 2), (h >> 15) << 31 | (h & 0x3ff) << 21 | slot);
        }
        count++;
      }
    }
  }
  if (fill) store<u32>(table + (<usize>nRows << 2), count);
  return count;
}

/** 2^−25: the unit of widenF16Rebased's excess on exponent-0 values. */
const F16_REBASE_UNIT: f32 = reinterpret<f32>(0x33000000);

/** Takes back widenF16Rebased's excess in rows r0…r1−1 (table: f16_corrections of all nRows rows): out[r] −= Σ ±2^−25·(1024 − m)·x. */
function correctRebasedRows(table: usize, nRows: i32, r0: i32, r1: i32, x: usize, out: usize): void {
  const entries = table + ((<usize>nRows + 1) << 2);
  for (let r = r0; r < r1; r++) {
    let sum: f32 = 0;
    const end = load<u32>(table + (<usize>(r + 1) << 2));
    for (let e = load<u32>(table + (<usize>r << 2)); e < end; e++) {
      const entry = load<u32>(entries + (<usize>e << 2));
      const excess = <f32>(<u32>1024 - ((entry >> 21) & 0x3ff)) * load<f32>(x + (<usize>(entry & 0x1fffff) << 2));
      sum += entry >> 31 ? -excess : excess;
    }
    const at = out + (<usize>r << 2);
    store<f32>(at, load<f32>(at) - F16_REBASE_UNIT * sum);
  }
}

/** Values per step of dotRowsInStreams: each stream reads a run of this many values' bytes before the next takes its turn. */
const STREAM_RUN: i32 = 512;

/**
 * Rows at w, w + rb, w + 2·rb, w + 3·rb · one activation row x → out + k·laneStride for row k: the rows are read
 * in turns of STREAM_RUN values, so that four streams advance together (more reads in flight than one row at a time).
 */
function dotRowsInStreams(type: i32, w: usize, rb: usize, x: usize, n: i32, scratch: usize, out: usize, laneStride: usize): void {
  switch (type) {
    case F16: rows4F16(w, rb, x, n, out, laneStride); return;
    case F16_REBASED: rows4F16Rebased(w, rb, x, n, out, laneStride); return;
    case BF16: rows4BF16(w, rb, x, n, out, laneStride); return;
  }
  let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
  for (let v = 0; v < n; v += STREAM_RUN) {
    const len = min(STREAM_RUN, n - v);
    const row = w + weightBytes(type, v), xv = x + activationBytes(type, v);
    a0 += dotRow(type, row, xv, len, scratch);
    a1 += dotRow(type, row + rb, xv, len, scratch);
    a2 += dotRow(type, row + 2 * rb, xv, len, scratch);
    a3 += dotRow(type, row + 3 * rb, xv, len, scratch);
  }
  store<f32>(out, a0);
  store<f32>(out + laneStride, a1);
  store<f32>(out + 2 * laneStride, a2);
  store<f32>(out + 3 * laneStride, a3);
}

/** Four rows (rb apart; rb 0: one row) · tokens t0…t1−1 of act, in tiles of 4 tokens and then one by one. */
@inline function rows4Tokens(type: i32, row: usize, rb: usize, act: usize, actStride: usize, nIn: i32, out: usize, outStride: usize, laneStride: usize, t0: i32, t1: i32, scratch: usize): void {
  if (hasRows4K(type)) {
    for (let t = t0; t < t1; t++) {
      const x = act + <usize>t * actStride, o = out + <usize>t * outStride;
      if (type == Q4_K) rows4Q4_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else if (type == Q5_K) rows4Q5_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else if (type == Q6_K) rows4Q6_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else if (type == Q3_K) rows4Q3_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else rows4Q2_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
    }
    return;
  }
  let t = t0;
  for (; t + 4 <= t1; t += 4) rows4Of(type, 4, row, rb, act + <usize>t * actStride, actStride, nIn >> 5, out + <usize>t * outStride, outStride, laneStride);
  for (; t < t1; t++) rows4Of(type, 1, row, rb, act + <usize>t * actStride, 0, nIn >> 5, out + <usize>t * outStride, 0, laneStride);
}

/** Whether one token (decode) goes four rows at a time through rows4K. */
@inline function hasRows4K(type: i32): bool {
  return type == Q2_K || type == Q3_K || type == Q4_K || type == Q5_K || type == Q6_K;
}

/** Whether a 4-token tile kernel exists for this type (others multiply token by token). */
@inline function hasTile(type: i32): bool {
  return type == Q4_K || type == Q5_K || type == Q6_K || type == IQ4_XS;
}

/** W[row] · the nt (≤ 4) activation rows at x, x + xStride, …, written to out + t·outStride (Q4_K, Q5_K, Q6_K or IQ4_XS). */
@inline function dotTile(type: i32, row: usize, x: usize, xStride: usize, n: i32, scratch: usize, out: usize, outStride: usize, nt: i32): void {
  const x1 = tileRow(x, xStride, 1, nt), x2 = tileRow(x, xStride, 2, nt), x3 = tileRow(x, xStride, 3, nt);
  switch (type) {
    case Q4_K: tileQ4_K(row, x, x1, x2, x3, n >> 8, scratch, out, outStride, nt); break;
    case Q5_K: tileQ5_K(row, x, x1, x2, x3, n >> 8, scratch, out, outStride, nt); break;
    case IQ4_XS: tileIQ4_XS(row, x, x1, x2, x3, n >> 8, out, outStride, nt); break;
    default: tileQ6_K(row, x, x1, x2, x3, n >> 8, scratch, out, outStride, nt); break;
  }
}

/** Whether Q8_0 or IQ4_NL rows times `nTokens` tokens are widened to int16 (activations in the Q8_0_WIDE layout). */
@inline function widens(type: i32, nTokens: i32): bool {
  return (type == Q8_0 || type == IQ4_NL) && nTokens >= WIDE_TOKENS;
}

/**
 * Rows r0 … r1 − 1 of one weight (nOut rows of wRowBytes at w) · nTokens quantized activation rows at act →
 * out [nTokens, nOut] f32. Tokens are visited in tiles of 32 (widened or packed rows: TILE_TOKENS) so a tile's
 * activations stay in cache while a chunk of rows is streamed past them. Within a tile, Q8_0 and IQ4_NL widen four rows at a time to int16 (wideTokens4) from
 * WIDE_TOKENS tokens on; in the relaxed build Q4_0 and Q5_0 pack four rows (packedToken) from PACKED_TOKENS on, Q4_K
 * and Q6_K from PACKED_K_TOKENS. Fewer tokens of Q8_0, Q4_0, Q5_0, IQ4_NL go four rows at a time (rows4), and so does one token
 * of Q2_K…Q6_K (rows4K) and of F16/BF16 (rows4Half, via dotRowsInStreams); otherwise types with a tile kernel (Q4_K,
 * Q5_K, Q6_K, IQ4_XS) decode each weight block once for 4 tokens, and the rest multiply row by token. Float weights for
 * many tokens take tiles of 64 tokens and widened row pairs (gemmF32).
 */
function multiplyRows(
  type: i32, w: usize, wRowBytes: i32, act: usize, actStride: usize, out: usize, nIn: i32, nOut: i32, nTokens: i32,
  corrections: usize, r0: i32, r1: i32, scratch: usize,
): void {
  const outStride = <usize>nOut << 2;
  const wide = widens(type, nTokens);
  // (the SIMD128 build's int8 products through int16 make packing slower than the 4-row kernels)
  const packed = RELAXED && ((type == Q4_0 || type == Q5_0) && nTokens >= PACKED_TOKENS || (type == Q4_K || type == Q6_K) && nTokens >= PACKED_K_TOKENS);
  if (nTokens > 1 && (type == F32 || type == F16 || type == BF16)) {
    // per tile of 64 tokens (their activations stay in L2), each pair of rows is widened into scratch once
    const w1At = scratch + (<usize>nIn << 2);
    for (let t0 = 0; t0 < nTokens; t0 += 64) {
      const t1 = min(nTokens, t0 + 64);
      for (let r = r0; r < r1; r += 2) {
        const nRows = r + 1 < r1 ? 2 : 1;
        widenRow(type, w + <usize>r * wRowBytes, scratch, nIn);
        if (nRows == 2) widenRow(type, w + <usize>(r + 1) * wRowBytes, w1At, nIn);
        for (let t = t0; t < t1; t += 4) {
          const nt = min(4, t1 - t), x = act + <usize>t * actStride;
          gemmF32(scratch, nRows == 2 ? w1At : scratch, x, tileRow(x, actStride, 1, nt), tileRow(x, actStride, 2, nt), tileRow(x, actStride, 3, nt), nIn, out + <usize>t * outStride + (<usize>r << 2), outStride, nt, nRows);
        }
      }
    }
    return;
  }
  const tile = wide || packed ? TILE_TOKENS : 32;
  for (let t0 = 0; t0 < nTokens; t0 += tile) {
    const t1 = min(nTokens, t0 + tile);
    if (wide || packed) {
      // eight adjacent rows at a time (all but Q6_K), else four, whose outputs are adjacent too; the last
      // (length mod 4) rows one at a time
      for (let r = r0; r < r1;) {
        const row = w + <usize>r * wRowBytes, o = out + (<usize>r << 2);
        if (r + 8 <= r1 && type != Q6_K) {
          rows8Tokens(type, row, wRowBytes, act, actStride, nIn, o, outStride, t0, t1, scratch);
          r += 8;
          continue;
        }
        const four = r + 4 <= r1, rb: usize = four ? <usize>wRowBytes : 0;
        if (wide) wideRowsTokens(type, row, rb, act, actStride, nIn >> 5, o, outStride, four ? 4 : 0, t0, t1, scratch);
        else packedRowsTokens(type, row, rb, act, actStride, nIn, o, outStride, four ? 4 : 0, t0, t1, scratch);
        r += four ? 4 : 1;
      }
      continue;
    }
    if (type == Q8_0 || type == Q4_0 || type == Q5_0 || type == IQ4_NL || nTokens == 1 && hasRows4K(type)) {
      // decode: four long streams, rows r0 + g + k·q (q = a quarter of the chunk, k = 0…3) go together, so that each
      // stream reads consecutive rows (four streams keep more reads in flight than one); many tokens: four adjacent
      // rows, whose outputs are adjacent too. The last (length mod 4) rows one at a time.
      const groups = (r1 - r0) >> 2;
      const span = nTokens == 1 ? groups : 1;
      for (let g = 0; g < groups; g++) {
        const r = r0 + (span == 1 ? 4 * g : g);
        rows4Tokens(type, w + <usize>r * wRowBytes, <usize>span * wRowBytes, act, actStride, nIn, out + (<usize>r << 2), outStride, <usize>span << 2, t0, t1, scratch);
      }
      for (let r = r0 + 4 * groups; r < r1; r++) rows4Tokens(type, w + <usize>r * wRowBytes, 0, act, actStride, nIn, out + (<usize>r << 2), outStride, 0, t0, t1, scratch);
      continue;
    }
    if (nTokens == 1) {
      // one token (decode): four rows at a time from four long streams, as for the 4-row kernels above
      const rowType = type == F16 && corrections != 0 ? F16_REBASED : type;
      const q = (r1 - r0) >> 2;
      for (let i = 0; i < q; i++) {
        const r = r0 + i;
        dotRowsInStreams(rowType, w + <usize>r * wRowBytes, <usize>q * wRowBytes, act, nIn, scratch, out + (<usize>r << 2), <usize>q << 2);
      }
      for (let r = r0 + 4 * q; r < r1; r++) store<f32>(out + (<usize>r << 2), dotRow(rowType, w + <usize>r * wRowBytes, act, nIn, scratch));
      if (rowType == F16_REBASED) correctRebasedRows(corrections, nOut, r0, r1, act, out);
      continue;
    }
    for (let r = r0; r < r1; r++) {
      const row = w + <usize>r * wRowBytes;
      if (hasTile(type)) {
        for (let t = t0; t < t1; t += 4) {
          dotTile(type, row, act + <usize>t * actStride, actStride, nIn, scratch, out + <usize>t * outStride + (<usize>r << 2), outStride, min(4, t1 - t));
        }
        continue;
      }
      for (let t = t0; t < t1; t++) store<f32>(out + <usize>t * outStride + (<usize>r << 2), dotRow(type, row, act + <usize>t * actStride, nIn, scratch));
    }
  }
}

/**
 * Tokens per tile of widened or packed rows: each tile widens or packs every row again, so longer tiles widen less
 * often (128 rows of activations, ≤ 3.2 KB each at nIn 1536, stay in L2). 32 → 128: Q8_0/Q4_K pp512 products
 * about 1.02–1.04× (bench/decode-kernels.ts --tokens 512).
 */
const TILE_TOKENS: i32 = 128;

/** i32 fields of a product (see matmul): its activation rows, then per weight its address, lists, output and bias. */
const PRODUCT_FIRST = 0, PRODUCT_TOKENS = 1, PRODUCT_WEIGHTS = 2, WEIGHT_FIELDS = 4;

/** out [nTokens, nOut] f32, columns r0 … r1 − 1 += bias[r] (f32 at bias) */
function addBiasColumns(out: usize, nOut: i32, nTokens: i32, bias: usize, r0: i32, r1: i32): void {
  for (let t = 0; t < nTokens; t++) {
    const o = out + (<usize>(t * nOut) << 2);
    let r = r0;
    for (; r + 4 <= r1; r += 4) v128.store(o + (<usize>r << 2), f32x4.add(v128.load(o + (<usize>r << 2)), v128.load(bias + (<usize>r << 2))));
    for (; r < r1; r++) store<f32>(o + (<usize>r << 2), load<f32>(o + (<usize>r << 2)) + load<f32>(bias + (<usize>r << 2)));
  }
}

/**
 * A list of products sharing one weight type and shape (every thread calls this with the same arguments): a plain
 * matrix product, the experts a batch's tokens chose (ggml's mul_mat_id), the heads of MLA. Product p (i32 fields at
 * products + p·(2 + 4·nWeights)·4) multiplies act rows first … first + tokens − 1 with each of nWeights weights, given
 * as [address, F16 decode correction lists (0: none), output address, bias address (0: none)]:
 * out_k [tokens, nOut] f32 = W_k · x rows (+ bias_k [nOut] f32).
 * Products take consecutive, disjoint runs of rows in order (a row's layout depends on its product's token count).
 * First the threads quantize the rows of x [nTokens, nIn] f32 into act [nTokens rows of actRowBytes], claiming rows
 * from the counter at counter + 4 and counting finished ones at counter + 8; once all are done they claim chunks of
 * `chunk` rows (a multiple of 4) of one weight of one product from the counter at `counter`.
 * scratch: the thread's own, 512 bytes (float weights: 8·nIn; Q8_0, IQ4_NL: 17·nIn + 128; Q4_0, Q5_0: 9·nIn + 256;
 * Q4_K: 10.25·nIn + 256; Q6_K: 5.5625·nIn + 1488).
 */
export function matmul(
  type: i32, wRowBytes: i32, x: usize, act: usize, actRowBytes: i32, nIn: i32, nOut: i32, nTokens: i32,
  products: usize, nProducts: i32, nWeights: i32, counter: usize, chunk: i32, scratch: usize,
): void {
  const actStride = <usize>actRowBytes;
  const productBytes = <usize>(PRODUCT_WEIGHTS + WEIGHT_FIELDS * nWeights) << 2;
  let p: usize = 0; // the product of the row being quantized (rows are claimed in increasing order)
  for (let t = atomic.add<i32>(counter + 4, 1); t < nTokens; t = atomic.add<i32>(counter + 4, 1)) {
    while (t >= load<i32>(products + p * productBytes) + load<i32>(products + p * productBytes, PRODUCT_TOKENS << 2)) p++;
    const xt = x + <usize>t * (<usize>nIn << 2), at = act + <usize>t * actStride;
    if (widens(type, load<i32>(products + p * productBytes, PRODUCT_TOKENS << 2))) quantizeQ8Blocks(xt, at, nIn, Q8_0_WIDE);
    else quantize_row(type, xt, at, nIn);
    atomic.add<i32>(counter + 8, 1);
  }
  // rows claimed by other threads are being quantized now: wait for them
  while (atomic.load<i32>(counter + 8) < nTokens) {}
  const chunksPerWeight = (nOut + chunk - 1) / chunk;
  const units = nProducts * nWeights * chunksPerWeight;
  for (let u = atomic.add<i32>(counter, 1); u < units; u = atomic.add<i32>(counter, 1)) {
    const product = products + <usize>(u / (nWeights * chunksPerWeight)) * productBytes;
    const weight = product + (<usize>(PRODUCT_WEIGHTS + WEIGHT_FIELDS * (u / chunksPerWeight % nWeights)) << 2);
    const r0 = u % chunksPerWeight * chunk, r1 = min(nOut, r0 + chunk);
    const first = load<i32>(product, PRODUCT_FIRST << 2), tokens = load<i32>(product, PRODUCT_TOKENS << 2);
    const out = <usize>load<i32>(weight, 8), bias = <usize>load<i32>(weight, 12);
    multiplyRows(type, <usize>load<i32>(weight), wRowBytes, act + <usize>first * actStride, actStride, out, nIn, nOut, tokens,
      <usize>load<i32>(weight, 4), r0, r1, scratch);
    if (bias) addBiasColumns(out, nOut, tokens, bias, r0, r1);
  }
}
