// IQ4_NL and IQ4_XS, quantized as ggml-quants.c's quantize_iq4_nl / quantize_iq4_xs: both run
// quantize_row_iq4_nl_impl (with ntry = 7) with or without an importance matrix; ggml has no other quantizer for them.
//
// Block layouts (little-endian, f16 = IEEE half; K = KVALUES_IQ4NL, 16 int8 levels from −127 to 113):
//   IQ4_NL  d:f16 | qs[16]                                    x = d·K[q], q = 4 bits (nibbles as Q4_0)
//   IQ4_XS  d:f16 | scales_h:u16 | scales_l[4] | qs[128]      x = d·(s_j − 32)·K[q] over 8 sub-blocks j of 32,
//           s_j 6 bits: low nibble in scales_l[j/2] (high nibble for odd j), high 2 bits at bit 2j of scales_h

import * as float32Math from './float32-math.js';
import { fp32ToFp16 } from '../tensor/float16.js';
import { writeUint16 } from '../tensor/bytes.js';
import { GROUP_MAX_EPS } from './scale-search.js';
import { IQ4_NL, IQ4_XS, KVALUES_IQ4NL as K, QK32 } from '../tensor/quants/layout.js';
import { QK_K } from '../tensor/ggml-type.js';

// copied into module constants once: calls through an imported binding are slower in the hot loops
const { f32, clamp } = float32Math;

/** Scales tried around the first guess: (K[0] + t)/max for t = −NTRY … NTRY (quantize_iq4_nl / _xs pass 7). */
const NTRY = 7;

/** fp16 of the NaN that x86 computes for 0/0 (sign set): a block whose importances are all zero gets this scale. */
const X86_NAN_F16 = 0xfe00;

/** best_index_int8: the index of the level nearest x, by bisection (the upper one on a tie; 15 for NaN). */
function nearestLevel(x: number): number {
  if (x <= K[0]) return 0;
  if (x >= K[15]) return 15;
  let lo = 0, hi = 15;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (x < K[mid]) hi = mid;
    else lo = mid;
  }
  return f32(x - K[hi - 1]) < f32(K[hi] - x) ? hi - 1 : hi;
}

/** ggml's nearest_int bit for bit: the low mantissa bits of x + 1.5·2^23 in float32 (0 for NaN; no range check). */
function nearestIntBits(x: number): number {
  bits[0] = x + 12582912;
  return (bitsU32[0] & 0x007fffff) - 0x00400000;
}
const bits = new Float32Array(1);
const bitsU32 = new Uint32Array(bits.buffer);

/** Weighted fit of x to levels q = K[l], l nearest x·id: [Σ w·q·x, Σ w·q²]. */
function fitLevels(x: Float32Array, w: Float32Array, id: number): [number, number] {
  let sumqx = 0, sumq2 = 0;
  for (let j = 0; j < x.length; j++) {
    const l = nearestLevel(f32(id * x[j]));
    const wq = f32(w[j] * K[l]);
    sumqx = f32(sumqx + f32(wq * x[j]));
    sumq2 = f32(sumq2 + f32(wq * K[l]));
  }
  return [sumqx, sumq2];
}

/**
 * The scale of one block of 32 (the search of quantize_row_iq4_nl_impl): levels for d = max/127 give the
 * least-squares scale; then for each of the 2·NTRY + 1 scales max/(K[0] + t) the least-squares scale of its levels
 * replaces the best one when it fits better. 0 for a block of zeros (largest |x| below GROUP_MAX_EPS); NaN when every
 * weight is zero.
 */
function blockScale(x: Float32Array, w: Float32Array): number {
  let amax = 0, max = 0;
  for (let j = 0; j < x.length; j++) {
    const ax = Math.abs(x[j]);
    if (ax > amax) { amax = ax; max = x[j]; }
  }
  if (amax < GROUP_MAX_EPS) return 0;
  let [sumqx, sumq2] = fitLevels(x, w, f32(1 / f32(-max / K[0])));
  let d = f32(sumqx / sumq2);
  let best = f32(d * sumqx);
  for (let t = -NTRY; t <= NTRY; t++) {
    [sumqx, sumq2] = fitLevels(x, w, f32((t + K[0]) / max));
    if (sumq2 > 0 && f32(sumqx * sumqx) > f32(best * sumq2)) {
      d = f32(sumqx / sumq2);
      best = f32(d * sumqx);
    }
  }
  return d;
}

/** Weights of the values of one block: x², or with an imatrix importance·sqrt(σ² + x²), σ² = 2·mean x² of the super-block. */
function blockWeights(x: Float32Array, importance: Float32Array | undefined, sigma2: number, w: Float32Array): void {
  for (let j = 0; j < x.length; j++) {
    const x2 = f32(x[j] * x[j]);
    w[j] = importance ? f32(importance[j] * f32(Math.sqrt(f32(sigma2 + x2)))) : x2;
  }
}

function sigma2Of(x: Float32Array): number {
  let sum = 0;
  for (let j = 0; j < x.length; j++) sum = f32(sum + f32(x[j] * x[j]));
  return f32(sum * (2 / x.length));
}

/** Final levels of a block for scale d: nearest to x/d (all 8, level 1, when d is 0). */
function requantize(x: Float32Array, d: number, L: Uint8Array): void {
  const id = d !== 0 ? f32(1 / d) : 0; // NaN ≠ 0, as in C
  for (let j = 0; j < x.length; j++) L[j] = nearestLevel(f32(id * x[j]));
}

/** Nibble packing of every 32 levels: level j in the low nibble of byte j, level j+16 in its high nibble. */
function packNibbles(L: Uint8Array, out: Uint8Array, o: number): void {
  for (let i = 0; i < L.length / 32; i++) {
    for (let j = 0; j < 16; j++) out[o + 16 * i + j] = L[32 * i + j] | (L[32 * i + 16 + j] << 4);
  }
}

function storeScale(out: Uint8Array, o: number, d: number): void {
  writeUint16(out, o, Number.isNaN(d) ? X86_NAN_F16 : fp32ToFp16(d));
}

/** One IQ4_NL block of 32 values at out[o..]. */
function quantizeBlockIQ4_NL(x: Float32Array, importance: Float32Array | undefined, out: Uint8Array, o: number, w: Float32Array, L: Uint8Array): void {
  blockWeights(x, importance, importance ? sigma2Of(x) : 0, w);
  const d = blockScale(x, w);
  storeScale(out, o + IQ4_NL.d, d);
  requantize(x, d, L);
  packNibbles(L, out, o + IQ4_NL.qs);
}

/**
 * One IQ4_XS super-block of 256 values at out[o..]: a scale per sub-block of 32 as for IQ4_NL, then those scales as
 * 6-bit multiples l of d = −(the scale of largest magnitude)/32, and the levels again for each d·l.
 */
function quantizeBlockIQ4_XS(x: Float32Array, importance: Float32Array | undefined, out: Uint8Array, o: number, w: Float32Array, L: Uint8Array): void {
  const nSub = QK_K / 32;
  const scales = new Float32Array(nSub);
  const sigma2 = importance ? sigma2Of(x) : 0;
  let maxScale = 0, amaxScale = 0;
  for (let ib = 0; ib < nSub; ib++) {
    const xb = x.subarray(32 * ib, 32 * ib + 32);
    blockWeights(xb, importance?.subarray(32 * ib, 32 * ib + 32), sigma2, w);
    scales[ib] = blockScale(xb, w);
    if (Math.abs(scales[ib]) > amaxScale) { amaxScale = Math.abs(scales[ib]); maxScale = scales[ib]; }
  }
  const d = f32(-maxScale / 32);
  storeScale(out, o + IQ4_XS.d, d);
  const id = d !== 0 ? f32(1 / d) : 0;
  let scalesH = 0;
  out.fill(0, o + IQ4_XS.scalesL, o + IQ4_XS.scalesL + nSub / 2);
  for (let ib = 0; ib < nSub; ib++) {
    const l = clamp(nearestIntBits(f32(id * scales[ib])), -32, 31);
    requantize(x.subarray(32 * ib, 32 * ib + 32), f32(d * l), L);
    packNibbles(L, out, o + IQ4_XS.qs + 16 * ib);
    out[o + IQ4_XS.scalesL + (ib >> 1)] |= ((l + 32) & 15) << (4 * (ib & 1));
    scalesH |= ((l + 32) >> 4) << (2 * ib);
  }
  writeUint16(out, o + IQ4_XS.scalesH, scalesH);
}

export type IQ4Type = 'IQ4_NL' | 'IQ4_XS';

/** Quantizes one row of n values (n a multiple of 32 for IQ4_NL, 256 for IQ4_XS) to `type` at out[o..];
 *  `importance` holds the n imatrix column weights when given. */
export function quantizeRowIQ4(type: IQ4Type, x: Float32Array, n: number, out: Uint8Array, o: number, importance?: Float32Array): void {
  const [size, bytes, quantize] = type === 'IQ4_NL' ? [QK32, IQ4_NL.bytes, quantizeBlockIQ4_NL] : [QK_K, IQ4_XS.bytes, quantizeBlockIQ4_XS];
  const w = new Float32Array(32);
  const L = new Uint8Array(32);
  for (let b = 0; b < n / size; b++) {
    quantize(x.subarray(b * size, (b + 1) * size), importance?.subarray(b * size, (b + 1) * size), out, o + b * bytes, w, L);
  }
}
