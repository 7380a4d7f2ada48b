// Fake quantization: values rounded onto a scheme's grid and mapped back to floats, with the scales (and zero
// points) used. Scales are float32 and never rounded further, so the result is exactly what the scheme stores.
//   integer symmetric:  s = amax / qmax, qmax = 2^(b−1) − 1, q = clamp(round(x/s), −qmax, qmax), x̂ = q·s
//   integer asymmetric: s = (max − min) / (2^b − 1) over a range widened to hold 0, z = round(−min/s),
//                       q = clamp(round(x/s) + z, 0, 2^b − 1), x̂ = (q − z)·s
//   FP8:                s = amax / fp8 max, x̂ = fp8(x/s)·s
// Every group of the scheme is a contiguous run of the row-major data (a tensor, a row, or groupSize values of
// a row), so one loop over runs serves all three granularities.

import { roundHalfEven } from '../../tensor/index.js';
import { decodeFp8, encodeFp8 } from './fp8.js';
import { fp8FormatOf, integerBits, SchemeError, describeScheme, type QuantScheme } from './scheme.js';

export interface FakeQuantized {
  /** the dequantized values, same shape as the input */
  values: Float32Array;
  /** one scale per group, in order */
  scales: Float32Array;
  /** one zero point per group (asymmetric schemes), else empty */
  zeroPoints: Int32Array;
  /** values per group */
  groupLength: number;
}

/** Values one scale covers, for data of `total` values in rows of `nPerRow`. */
export function groupLength(scheme: QuantScheme, nPerRow: number, total: number): number {
  if (scheme.granularity === 'tensor') return total;
  if (scheme.granularity === 'channel') return nPerRow;
  if (nPerRow % scheme.groupSize !== 0) {
    throw new SchemeError(`${describeScheme(scheme)}: rows of ${nPerRow} values do not split into groups of ${scheme.groupSize}`);
  }
  return scheme.groupSize;
}

/** Rounds x[from, to) with a fixed scale (and zero point) into out[from, to). */
export function quantizeRun(scheme: QuantScheme, x: Float32Array, from: number, to: number, scale: number, zeroPoint: number, out: Float32Array): void {
  if (scale === 0) { out.fill(0, from, to); return; }
  const fp8 = fp8FormatOf(scheme.format);
  if (fp8) {
    for (let i = from; i < to; i++) out[i] = decodeFp8(encodeFp8(x[i] / scale, fp8), fp8) * scale;
    return;
  }
  const bits = integerBits(scheme.format)!;
  const [qmin, qmax] = scheme.symmetric ? [-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
  for (let i = from; i < to; i++) {
    const q = Math.min(qmax, Math.max(qmin, roundHalfEven(x[i] / scale) + zeroPoint));
    out[i] = (q - zeroPoint) * scale;
  }
}

/** The scale and zero point covering a range [lo, hi] (lo ≤ 0 ≤ hi is not required). */
export function rangeParams(scheme: QuantScheme, lo: number, hi: number): { scale: number; zeroPoint: number } {
  const fp8 = fp8FormatOf(scheme.format);
  const bits = integerBits(scheme.format);
  if (scheme.symmetric || !bits) {
    const amax = Math.max(Math.abs(lo), Math.abs(hi));
    return { scale: Math.fround(amax / (fp8 ? fp8.max : 2 ** (bits! - 1) - 1)), zeroPoint: 0 };
  }
  const min = Math.min(lo, 0), max = Math.max(hi, 0);
  const levels = 2 ** bits - 1;
  const scale = Math.fround((max - min) / levels);
  return { scale, zeroPoint: scale === 0 ? 0 : Math.min(levels, Math.max(0, roundHalfEven(-min / scale))) };
}

/** Fake-quantizes row-major data (rows of `nPerRow` values) under `scheme`. */
export function fakeQuantize(x: Float32Array, nPerRow: number, scheme: QuantScheme): FakeQuantized {
  const length = groupLength(scheme, nPerRow, x.length);
  const nGroups = Math.ceil(x.length / length);
  const values = new Float32Array(x.length);
  const scales = new Float32Array(nGroups);
  const zeroPoints = new Int32Array(scheme.symmetric ? 0 : nGroups);
  for (let g = 0; g < nGroups; g++) {
    const from = g * length, to = Math.min(x.length, from + length);
    let lo = Infinity, hi = -Infinity;
    for (let i = from; i < to; i++) { lo = Math.min(lo, x[i]); hi = Math.max(hi, x[i]); }
    const { scale, zeroPoint } = rangeParams(scheme, lo, hi);
    scales[g] = scale;
    if (!scheme.symmetric) zeroPoints[g] = zeroPoint;
    quantizeRun(scheme, x, from, to, scale, zeroPoint, values);
  }
  return { values, scales, zeroPoints, groupLength: length };
}

/**
 * Bits a packed form of the scheme would take for `total` values in rows of `nPerRow`: b bits per value
 * (8 for FP8) plus a float32 scale and, if asymmetric, a b-bit zero point per group. kiln stores simulated
 * schemes as F32, so this is the size the scheme stands for, not the file's.
 */
export function packedBits(scheme: QuantScheme, nPerRow: number, total: number): number {
  const valueBits = integerBits(scheme.format) ?? 8;
  const nGroups = Math.ceil(total / groupLength(scheme, nPerRow, total));
  return total * valueBits + nGroups * (32 + (scheme.symmetric ? 0 : valueBits));
}
