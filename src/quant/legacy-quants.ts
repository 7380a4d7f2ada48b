// The 32-value block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, quantized as ggml-quants.c does:
// quantize_row_qX_Y_ref without an importance matrix, quantize_row_qX_Y_impl with one.
//
// Block layouts (little-endian, f16 = IEEE half):
//   Q4_0  d:f16 | qs[16]                 x = d·(q − 8),   q = 4 bits: value j in the low nibble of qs[j], j+16 high
//   Q4_1  d:f16 m:f16 | qs[16]           x = d·q + m
//   Q5_0  d:f16 | qh:u32 | qs[16]        x = d·(q − 16),  q = 5 bits: low 4 as Q4, bit 4 of value j in qh bit j
//   Q5_1  d:f16 m:f16 | qh:u32 | qs[16]  x = d·q + m
//   Q8_0  d:f16 | qs[32] int8            x = d·q

import * as float32Math from './float32-math.js';
import { fp32ToFp16 } from '../tensor/float16.js';
import { makeQkxQuants, makeQxQuants } from './scale-search.js';
import * as layout from '../tensor/quants/layout.js';

// copied into module constants once: calls through an imported binding are slower in the hot loops
const { f32, roundAwayFromZero } = float32Math;

const QK = layout.QK32;

function writeF16(out: Uint8Array, o: number, x: number): void {
  const h = fp32ToFp16(x);
  out[o] = h & 0xff;
  out[o + 1] = h >>> 8;
}

/** Packs 32 levels into a block: low nibbles at qs (value j in the low nibble of byte j, value j+16 in its
 *  high nibble) and, for the 5-bit types, bit 4 of value j into bit j of the u32 at qh. */
function packLevels(lay: layout.Block32Layout, L: ArrayLike<number>, out: Uint8Array, o: number): void {
  for (let j = 0; j < 16; j++) out[o + lay.qs + j] = (L[j] & 0x0f) | ((L[j + 16] & 0x0f) << 4);
  if (lay.qh < 0) return;
  let qh = 0;
  for (let j = 0; j < 32; j++) qh |= ((L[j] >> 4) & 1) << j;
  for (let k = 0; k < 4; k++) out[o + lay.qh + k] = (qh >>> (8 * k)) & 0xff;
}

/** quantize_row_q4_0_ref / q5_0_ref: d = (value of largest magnitude) / −2^(bits−1), q = trunc(x/d + 2^(bits−1) + ½). */
function quantizeSymmetricRef(lay: layout.Block32Layout, bits: 4 | 5, x: Float32Array, out: Uint8Array, o: number, L: Uint8Array): void {
  const half = 1 << (bits - 1);
  let amax = 0, max = 0;
  for (let j = 0; j < QK; j++) {
    if (amax < Math.abs(x[j])) { amax = Math.abs(x[j]); max = x[j]; }
  }
  const d = f32(max / -half);
  const id = d ? f32(1 / d) : 0;
  writeF16(out, o + lay.d, d);
  const offset = half + 0.5; // 8.5f or 16.5f
  for (let j = 0; j < QK; j++) L[j] = Math.min(2 * half - 1, Math.trunc(f32(f32(x[j] * id) + offset)));
  packLevels(lay, L, out, o);
}

/** quantize_row_q4_1_ref / q5_1_ref: d = (max − min)/(2^bits − 1), m = min, q = trunc((x − min)/d + ½). */
function quantizeAffineRef(lay: layout.Block32Layout, bits: 4 | 5, x: Float32Array, out: Uint8Array, o: number, L: Uint8Array): void {
  let min = Infinity, max = -Infinity;
  for (let j = 0; j < QK; j++) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const levels = (1 << bits) - 1;
  const d = f32(f32(max - min) / levels);
  const id = d ? f32(1 / d) : 0;
  writeF16(out, o + lay.d, d);
  writeF16(out, o + lay.m, min);
  for (let j = 0; j < QK; j++) {
    const q = Math.trunc(f32(f32(f32(x[j] - min) * id) + 0.5));
    // q4_1 clamps to 15; q5_1 stores the uint8 as is
    L[j] = bits === 4 ? Math.min(15, q) : q & 0xff;
  }
  packLevels(lay, L, out, o);
}

/** quantize_row_q8_0_ref: d = max|x|/127, q = roundf(x/d). */
function quantizeBlockQ8_0(x: Float32Array, out: Uint8Array, o: number): void {
  let amax = 0;
  for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[j]));
  const d = f32(amax / 127);
  const id = d ? f32(1 / d) : 0;
  writeF16(out, o + layout.Q8_0.d, d);
  for (let j = 0; j < QK; j++) out[o + layout.Q8_0.qs + j] = roundAwayFromZero(f32(x[j] * id)) & 0xff;
}

/** Importance weights of one block for the imatrix variants: w = imatrix·sqrt(σ² + x²), σ² = mean x² of the row. */
function blockWeights(x: Float32Array, importance: Float32Array, sigma2: number, w: Float32Array): void {
  for (let j = 0; j < QK; j++) w[j] = f32(importance[j] * f32(Math.sqrt(f32(sigma2 + f32(x[j] * x[j])))));
}

/** Mean of x² over a whole row (float accumulation, as the _impl functions do). */
function rowSigma2(x: Float32Array, n: number): number {
  let sum = 0;
  for (let j = 0; j < n; j++) sum = f32(sum + f32(x[j] * x[j]));
  return f32(sum / n);
}

export type LegacyType = 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0';

const LAYOUTS: Record<LegacyType, layout.Block32Layout> = { Q4_0: layout.Q4_0, Q4_1: layout.Q4_1, Q5_0: layout.Q5_0, Q5_1: layout.Q5_1, Q8_0: layout.Q8_0 };

/** Quantizes one row of n values (n a multiple of 32) to `type` at out[o..]. With `importance` (n values,
 *  the imatrix column weights) Q4_0…Q5_1 use ggml's weighted search; Q8_0 never does. */
export function quantizeRowLegacy(
  type: LegacyType, x: Float32Array, n: number, out: Uint8Array, o: number, importance?: Float32Array,
): void {
  const lay = LAYOUTS[type];
  const L = new Uint8Array(QK);
  const Ls = new Int8Array(QK);
  const Laux = new Uint8Array(QK);
  const w = new Float32Array(QK);
  const sigma2 = importance && type !== 'Q8_0' ? rowSigma2(x, n) : 0;
  for (let b = 0; b < n / QK; b++) {
    const xb = x.subarray(b * QK, (b + 1) * QK);
    const ob = o + b * lay.bytes;
    if (type === 'Q8_0') { quantizeBlockQ8_0(xb, out, ob); continue; }
    const bits = type === 'Q4_0' || type === 'Q4_1' ? 4 : 5;
    const symmetric = lay.m < 0;
    if (!importance) {
      if (symmetric) quantizeSymmetricRef(lay, bits, xb, out, ob, L);
      else quantizeAffineRef(lay, bits, xb, out, ob, L);
      continue;
    }
    blockWeights(xb, importance.subarray(b * QK, (b + 1) * QK), sigma2, w);
    if (symmetric) {
      // quantize_row_q4_0_impl / q5_0_impl: x ≈ d·(L − nmax)
      writeF16(out, ob + lay.d, makeQxQuants(QK, 1 << (bits - 1), xb, Ls, w));
      packLevels(lay, Ls, out, ob);
    } else {
      // quantize_row_q4_1_impl / q5_1_impl: x ≈ d·L − min
      const fit = makeQkxQuants(QK, (1 << bits) - 1, xb, w, L, Laux, -0.9, 0.05, 36, false);
      writeF16(out, ob + lay.d, fit.scale);
      writeF16(out, ob + lay.m, -fit.min);
      packLevels(lay, L, out, ob);
    }
  }
}
