// The 256-value super-block formats Q2_K … Q6_K, quantized as ggml-quants.c does: quantize_row_qX_K_ref
// without an importance matrix, quantize_row_qX_K_impl with one.
//
// Super-block layouts (bytes, little-endian; f16 = IEEE half):
//   Q2_K  scales[16] (low nibble scale, high nibble min) | qs[64] (2 bits) | d:f16 | dmin:f16
//         x = d·sc·q − dmin·m over 16 sub-blocks of 16
//   Q3_K  hmask[32] (bit 2 of q) | qs[64] (bits 0-1) | scales[12] (16 six-bit scales) | d:f16
//         x = d·(sc − 32)·(q − 4)
//   Q4_K  d:f16 | dmin:f16 | scales[12] (8 six-bit scales and 8 six-bit mins) | qs[128] (4 bits)
//         x = d·sc·q − dmin·m over 8 sub-blocks of 32
//   Q5_K  d:f16 | dmin:f16 | scales[12] | qh[32] (bit 4 of q) | qs[128] (bits 0-3)
//   Q6_K  ql[128] (bits 0-3) | qh[64] (bits 4-5) | scales[16] int8 | d:f16
//         x = d·sc·(q − 32) over 16 sub-blocks of 16

import * as float32Math from './float32-math.js';
import { fp16ToFp32, fp32ToFp16 } from '../tensor/float16.js';
import { GROUP_MAX_EPS, makeQ3Quants, makeQkxQuants, makeQpQuants, makeQxQuants } from './scale-search.js';
import { Q2_K, Q3_K, Q4_K, Q5_K, Q6_K } from '../tensor/quants/layout.js';
import { QK_K } from '../tensor/ggml-type.js';

// copied into module constants once: calls through an imported binding are slower in the hot loops
const { clamp, f32, nearestInt, toInt8, toUint8 } = float32Math;

export type KQuantType = 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K';

const K_BLOCK_BYTES: Record<KQuantType, number> = { Q2_K: Q2_K.bytes, Q3_K: Q3_K.bytes, Q4_K: Q4_K.bytes, Q5_K: Q5_K.bytes, Q6_K: Q6_K.bytes };

/** Stores x as f16 at out[o..o+2) and returns the stored value as a number. */
function storeF16(out: Uint8Array, o: number, x: number): number {
  const h = fp32ToFp16(x);
  out[o] = h & 0xff;
  out[o + 1] = h >>> 8;
  return fp16ToFp32(h);
}

/** Sum of x² over the super-block, in float. */
function sumSquares(x: Float32Array): number {
  let sum = 0;
  for (let l = 0; l < QK_K; l++) sum = f32(sum + f32(x[l] * x[l]));
  return sum;
}

/** Imatrix weights of one sub-block: w = imatrix·sqrt(σ² + x²); returns their sum. */
function importanceWeights(x: Float32Array, importance: Float32Array, sigma2: number, w: Float32Array): number {
  let sum = 0;
  for (let l = 0; l < x.length; l++) {
    w[l] = f32(importance[l] * f32(Math.sqrt(f32(sigma2 + f32(x[l] * x[l])))));
    sum = f32(sum + w[l]);
  }
  return sum;
}

/** Final levels of an affine sub-block: L = clamp(round((x + m)/d), 0, nmax); kept as found when d is 0. */
function requantizeAffine(x: Float32Array, L: Uint8Array, d: number, m: number, nmax: number): void {
  if (!d) return;
  for (let i = 0; i < x.length; i++) L[i] = clamp(nearestInt(f32(f32(x[i] + m) / d)), 0, nmax);
}

/** Final levels of a symmetric sub-block: L = clamp(round(x/d), −half, half − 1) + half; kept when d is 0. */
function requantizeSymmetric(x: Float32Array, L: Int8Array, d: number, half: number): void {
  if (!d) return;
  for (let i = 0; i < x.length; i++) L[i] = clamp(nearestInt(f32(x[i] / d)), -half, half - 1) + half;
}

/** 2-bit packing of Q2_K/Q3_K: byte l of each 32-byte group holds values l, l+32, l+64, l+96 of 128. */
function pack2Bits(L: ArrayLike<number>, out: Uint8Array, o: number): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      out[o + j / 4 + l] = (L[j + l] & 3) | ((L[j + l + 32] & 3) << 2) | ((L[j + l + 64] & 3) << 4) | ((L[j + l + 96] & 3) << 6);
    }
  }
}

// ---- Q2_K ----

function quantizeQ2K(x: Float32Array, out: Uint8Array, o: number, importance?: Float32Array): void {
  const L = new Uint8Array(QK_K);
  const Laux = new Uint8Array(16);
  const w = new Float32Array(16);
  const scales = new Float32Array(16), mins = new Float32Array(16);
  const sc = out.subarray(o + Q2_K.scales, o + Q2_K.scales + 16);
  let d: number, dmin: number;
  if (!importance) {
    // quantize_row_q2_K_ref: weights |x|, 4-bit scales and mins relative to the largest of each
    for (let j = 0; j < 16; j++) {
      const xs = x.subarray(16 * j, 16 * j + 16);
      for (let l = 0; l < 16; l++) w[l] = Math.abs(xs[l]);
      const fit = makeQkxQuants(16, 3, xs, w, L.subarray(16 * j, 16 * j + 16), Laux, -0.5, 0.1, 15, true);
      scales[j] = fit.scale;
      mins[j] = fit.min;
    }
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 16; j++) {
      if (scales[j] > maxScale) maxScale = scales[j];
      if (mins[j] > maxMin) maxMin = mins[j];
    }
    sc.fill(0);
    if (maxScale > 0) {
      const iscale = f32(15 / maxScale);
      for (let j = 0; j < 16; j++) sc[j] = nearestInt(f32(iscale * scales[j]));
      d = storeF16(out, o + Q2_K.d, f32(maxScale / 15));
    } else {
      d = storeF16(out, o + Q2_K.d, 0);
    }
    if (maxMin > 0) {
      const iscale = f32(15 / maxMin);
      for (let j = 0; j < 16; j++) sc[j] |= nearestInt(f32(iscale * mins[j])) << 4;
      dmin = storeF16(out, o + Q2_K.dmin, f32(maxMin / 15));
    } else {
      dmin = storeF16(out, o + Q2_K.dmin, 0);
    }
  } else {
    // quantize_row_q2_K_impl: imatrix weights, then scales and mins fitted with the same weights
    const sigma2 = f32(sumSquares(x) / QK_K);
    const sw = new Float32Array(16);
    for (let j = 0; j < 16; j++) {
      const xs = x.subarray(16 * j, 16 * j + 16);
      sw[j] = importanceWeights(xs, importance.subarray(16 * j, 16 * j + 16), sigma2, w);
      const fit = makeQkxQuants(16, 3, xs, w, L.subarray(16 * j, 16 * j + 16), Laux, -0.9, 0.05, 36, false);
      scales[j] = fit.scale;
      mins[j] = fit.min;
    }
    const Ls = new Uint8Array(16), Lm = new Uint8Array(16);
    d = storeF16(out, o + Q2_K.d, makeQpQuants(16, 15, scales, Ls, sw));
    dmin = storeF16(out, o + Q2_K.dmin, makeQpQuants(16, 15, mins, Lm, sw));
    for (let j = 0; j < 16; j++) sc[j] = Ls[j] | (Lm[j] << 4);
  }
  for (let j = 0; j < 16; j++) {
    requantizeAffine(x.subarray(16 * j, 16 * j + 16), L.subarray(16 * j, 16 * j + 16),
      f32(d * (sc[j] & 0xf)), f32(dmin * (sc[j] >> 4)), 3);
  }
  pack2Bits(L, out, o + Q2_K.qs);
}

// ---- Q3_K ----

/** Packs 16 six-bit values (0..63) into Q3_K's 12 scale bytes: low nibbles in bytes 0-7, top 2 bits in 8-11. */
function packQ3Scales(ls: ArrayLike<number>, scales: Uint8Array): void {
  scales.fill(0);
  for (let j = 0; j < 16; j++) {
    const l = ls[j];
    if (j < 8) scales[j] = l & 0xf;
    else scales[j - 8] |= (l & 0xf) << 4;
    scales[8 + (j % 4)] |= (l >> 4) << (2 * (j >> 2));
  }
}

function q3Scale(scales: Uint8Array, j: number): number {
  const low = j < 8 ? scales[j] & 0xf : scales[j - 8] >> 4;
  return (low | (((scales[8 + (j % 4)] >> (2 * (j >> 2))) & 3) << 4)) - 32;
}

function quantizeQ3K(x: Float32Array, out: Uint8Array, o: number, importance?: Float32Array): void {
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  const scaleBytes = out.subarray(o + Q3_K.scales, o + Q3_K.scales + 12);
  let d: number;
  if (!importance) {
    // quantize_row_q3_K_ref: x²-weighted levels per sub-block, scales to 6 bits relative to the largest
    let maxScale = 0, amax = 0;
    for (let j = 0; j < 16; j++) {
      scales[j] = makeQ3Quants(16, 4, x.subarray(16 * j, 16 * j + 16), L.subarray(16 * j, 16 * j + 16));
      const a = Math.abs(scales[j]);
      if (a > amax) { amax = a; maxScale = scales[j]; }
    }
    if (maxScale) {
      const iscale = f32(-32 / maxScale);
      const ls = new Array<number>(16);
      for (let j = 0; j < 16; j++) ls[j] = clamp(toInt8(nearestInt(f32(iscale * scales[j]))), -32, 31) + 32;
      packQ3Scales(ls, scaleBytes);
      d = storeF16(out, o + Q3_K.d, f32(1 / iscale));
    } else {
      scaleBytes.fill(0);
      d = storeF16(out, o + Q3_K.d, 0);
    }
  } else {
    // quantize_row_q3_K_impl: imatrix-weighted levels, then the 16 scales fitted with make_qx_quants
    const sigma2 = f32(f32(2 * sumSquares(x)) / QK_K);
    const w = new Float32Array(16), sw = new Float32Array(16);
    for (let j = 0; j < 16; j++) {
      const xs = x.subarray(16 * j, 16 * j + 16);
      sw[j] = importanceWeights(xs, importance.subarray(16 * j, 16 * j + 16), sigma2, w);
      scales[j] = makeQxQuants(16, 4, xs, L.subarray(16 * j, 16 * j + 16), w);
    }
    const Ls = new Int8Array(16);
    const dBlock = makeQxQuants(16, 32, scales, Ls, sw);
    packQ3Scales(Ls, scaleBytes);
    d = storeF16(out, o + Q3_K.d, dBlock);
  }
  for (let j = 0; j < 16; j++) {
    requantizeSymmetric(x.subarray(16 * j, 16 * j + 16), L.subarray(16 * j, 16 * j + 16), f32(d * q3Scale(scaleBytes, j)), 4);
  }
  // bit 2 of value j goes to hmask[j % 32], bit j / 32
  const hmask = out.subarray(o + Q3_K.hmask, o + Q3_K.hmask + 32);
  hmask.fill(0);
  for (let j = 0; j < QK_K; j++) {
    if (L[j] > 3) {
      hmask[j % 32] |= 1 << (j >> 5);
      L[j] -= 4;
    }
  }
  pack2Bits(L, out, o + Q3_K.qs);
}

// ---- Q4_K and Q5_K ----

/** Packs 8 six-bit scales and 8 six-bit mins into 12 bytes (get_scale_min_k4 reads them back). */
function packScalesMinsK4(ls: ArrayLike<number>, lm: ArrayLike<number>, s: Uint8Array): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
      s[j - 4] |= (ls[j] >> 4) << 6;
      s[j] |= (lm[j] >> 4) << 6;
    }
  }
}

/** get_scale_min_k4: scale and min of sub-block j. */
function scaleMinK4(j: number, s: Uint8Array): [number, number] {
  if (j < 4) return [s[j] & 63, s[j + 4] & 63];
  return [(s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
}

/** Q4_K / Q5_K scales, mins, d, dmin and the final levels L (8 sub-blocks of 32); returns L. */
function quantizeK4Scales(bits: 4 | 5, x: Float32Array, out: Uint8Array, o: number, importance?: Float32Array): Uint8Array {
  const nmax = (1 << bits) - 1;
  const L = new Uint8Array(QK_K);
  const Laux = new Uint8Array(32);
  const w = new Float32Array(32);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  const s = out.subarray(o + Q4_K.scales, o + Q4_K.scales + 12); // same place in Q5_K
  let d: number, dmin: number;
  if (!importance) {
    // quantize_row_q4_K_ref / q5_K_ref: weights av_x + |x| with av_x the sub-block's rms
    for (let j = 0; j < 8; j++) {
      const xs = x.subarray(32 * j, 32 * j + 32);
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f32(sumX2 + f32(xs[l] * xs[l]));
      const avX = f32(Math.sqrt(f32(sumX2 / 32)));
      for (let l = 0; l < 32; l++) w[l] = f32(avX + Math.abs(xs[l]));
      const fit = bits === 4
        ? makeQkxQuants(32, nmax, xs, w, L.subarray(32 * j, 32 * j + 32), Laux, -1, 0.1, 20, false)
        : makeQkxQuants(32, nmax, xs, w, L.subarray(32 * j, 32 * j + 32), Laux, -0.5, 0.1, 15, false);
      scales[j] = fit.scale;
      mins[j] = fit.min;
    }
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      if (scales[j] > maxScale) maxScale = scales[j];
      if (mins[j] > maxMin) maxMin = mins[j];
    }
    const invScale = maxScale > 0 ? f32(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f32(63 / maxMin) : 0;
    const ls = new Array<number>(8), lm = new Array<number>(8);
    for (let j = 0; j < 8; j++) {
      ls[j] = Math.min(63, toUint8(nearestInt(f32(invScale * scales[j]))));
      lm[j] = Math.min(63, toUint8(nearestInt(f32(invMin * mins[j]))));
    }
    packScalesMinsK4(ls, lm, s);
    d = storeF16(out, o + Q4_K.d, f32(maxScale / 63));
    dmin = storeF16(out, o + Q4_K.dmin, f32(maxMin / 63));
  } else {
    // quantize_row_q4_K_impl / q5_K_impl: imatrix weights, scales and mins fitted with make_qp_quants
    const sigma2 = f32(f32(2 * sumSquares(x)) / QK_K);
    const sw = new Float32Array(8);
    for (let j = 0; j < 8; j++) {
      const xs = x.subarray(32 * j, 32 * j + 32);
      sw[j] = importanceWeights(xs, importance.subarray(32 * j, 32 * j + 32), sigma2, w);
      const fit = makeQkxQuants(32, nmax, xs, w, L.subarray(32 * j, 32 * j + 32), Laux, -0.9, 0.05, 36, false);
      scales[j] = fit.scale;
      mins[j] = fit.min;
    }
    const ls = new Uint8Array(8), lm = new Uint8Array(8);
    const dBlock = makeQpQuants(8, 63, scales, ls, sw);
    const mBlock = makeQpQuants(8, 63, mins, lm, sw);
    packScalesMinsK4(ls, lm, s);
    d = storeF16(out, o + Q4_K.d, dBlock);
    dmin = storeF16(out, o + Q4_K.dmin, mBlock);
  }
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(j, s);
    requantizeAffine(x.subarray(32 * j, 32 * j + 32), L.subarray(32 * j, 32 * j + 32), f32(d * sc), f32(dmin * m), nmax);
  }
  return L;
}

function quantizeQ4K(x: Float32Array, out: Uint8Array, o: number, importance?: Float32Array): void {
  out.fill(0, o + Q4_K.scales, o + Q4_K.scales + 12);
  const L = quantizeK4Scales(4, x, out, o, importance);
  // each 32-byte group holds 64 values: j in the low nibbles, j+32 in the high
  for (let j = 0; j < QK_K; j += 64) {
    for (let l = 0; l < 32; l++) out[o + Q4_K.qs + j / 2 + l] = L[j + l] | (L[j + l + 32] << 4);
  }
}

function quantizeQ5K(x: Float32Array, out: Uint8Array, o: number, importance?: Float32Array): void {
  out.fill(0, o + Q5_K.scales, o + Q5_K.scales + 12);
  const L = quantizeK4Scales(5, x, out, o, importance);
  const qh = out.subarray(o + Q5_K.qh, o + Q5_K.qh + 32);
  qh.fill(0);
  // low nibbles as Q4_K; bit 4 of values n+j and n+j+32 (n = 0, 64, …) in bits 2n/64 and 2n/64+1 of qh[j]
  for (let n = 0, bit = 0; n < QK_K; n += 64, bit += 2) {
    for (let j = 0; j < 32; j++) {
      let l1 = L[n + j], l2 = L[n + j + 32];
      if (l1 > 15) { l1 -= 16; qh[j] |= 1 << bit; }
      if (l2 > 15) { l2 -= 16; qh[j] |= 2 << bit; }
      out[o + Q5_K.qs + n / 2 + j] = l1 | (l2 << 4);
    }
  }
}

// ---- Q6_K ----

/** quantize_row_q6_K_ref / _impl: make_qx_quants per 16 values (weights x², or the imatrix itself),
 *  8-bit scales relative to the largest. */
function quantizeQ6K(x: Float32Array, out: Uint8Array, o: number, importance?: Float32Array): void {
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  let maxScale = 0, maxAbsScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const weights = importance ? importance.subarray(16 * ib, 16 * ib + 16) : null;
    scales[ib] = makeQxQuants(16, 32, x.subarray(16 * ib, 16 * ib + 16), L.subarray(16 * ib, 16 * ib + 16), weights);
    const a = Math.abs(scales[ib]);
    if (a > maxAbsScale) { maxAbsScale = a; maxScale = scales[ib]; }
  }
  out.fill(0, o, o + Q6_K.bytes);
  if (maxAbsScale < GROUP_MAX_EPS) return;
  const iscale = f32(-128 / maxScale);
  const d = storeF16(out, o + Q6_K.d, f32(1 / iscale));
  const sc = new Int8Array(out.buffer, out.byteOffset + o + Q6_K.scales, 16);
  for (let ib = 0; ib < 16; ib++) sc[ib] = Math.min(127, nearestInt(f32(iscale * scales[ib])));
  for (let j = 0; j < 16; j++) {
    requantizeSymmetric(x.subarray(16 * j, 16 * j + 16), L.subarray(16 * j, 16 * j + 16), f32(d * sc[j]), 32);
  }
  // per 128 values: ql holds bits 0-3 (values l and l+64 in byte l, l+32 and l+96 in byte l+32), qh bits 4-5
  for (let j = 0, ql = o + Q6_K.ql, qh = o + Q6_K.qh; j < QK_K; j += 128, ql += 64, qh += 32) {
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
      out[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
      out[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
      out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

const K_QUANTIZERS: Record<KQuantType, (x: Float32Array, out: Uint8Array, o: number, importance?: Float32Array) => void> = {
  Q2_K: quantizeQ2K, Q3_K: quantizeQ3K, Q4_K: quantizeQ4K, Q5_K: quantizeQ5K, Q6_K: quantizeQ6K,
};

/** Quantizes one row of n values (n a multiple of 256) to `type` at out[o..]; `importance` holds the n
 *  imatrix column weights when given. */
export function quantizeRowK(type: KQuantType, x: Float32Array, n: number, out: Uint8Array, o: number, importance?: Float32Array): void {
  const quantize = K_QUANTIZERS[type];
  const blockBytes = K_BLOCK_BYTES[type];
  for (let b = 0; b < n / QK_K; b++) {
    quantize(x.subarray(b * QK_K, (b + 1) * QK_K), out, o + b * blockBytes, importance?.subarray(b * QK_K, (b + 1) * QK_K));
  }
}
