// The plain float formats F32, F16 and BF16 (one value per "block"): decoding, encoding activations, dot products.
// ggml multiplies F16 weights with F16 activations and BF16 with BF16 (the activations converted first), F32 with F32,
// products accumulated in float32 (ggml_vec_dot_f16 / _bf16 / _f32).

import { BF16_TO_FP32, FP16_TO_FP32, fp32ToBf16, fp32ToFp16 } from '../float16.js';
import { float32Alias, readF32, writeF32, writeUint16 } from '../bytes.js';

/** A 16-bit float format: its decoding table (pattern → float32) and encoder (number → pattern). */
export interface HalfFormat {
  readonly toFloat: Float32Array;
  readonly fromFloat: (x: number) => number;
}

export const F16_FORMAT: HalfFormat = { toFloat: FP16_TO_FP32, fromFloat: fp32ToFp16 };
export const BF16_FORMAT: HalfFormat = { toFloat: BF16_TO_FP32, fromFloat: fp32ToBf16 };

/** out[outAt + i] = value i of the n little-endian 16-bit floats at src[at]. */
export function dequantizeHalf(format: HalfFormat, src: Uint8Array, at: number, n: number, out: Float32Array, outAt: number): void {
  const table = format.toFloat;
  for (let i = 0; i < n; i++) out[outAt + i] = table[src[at + 2 * i] | (src[at + 2 * i + 1] << 8)];
}

/** The n values x[xAt…] as little-endian 16-bit floats at out[outAt]. */
export function quantizeHalf(format: HalfFormat, x: Float32Array, xAt: number, n: number, out: Uint8Array, outAt: number): void {
  for (let i = 0; i < n; i++) writeUint16(out, outAt + 2 * i, format.fromFloat(x[xAt + i]));
}

/** Σ w_i·a_i over n 16-bit floats of the same format, in float32 (each product is exact in float32). */
export function dotHalf(format: HalfFormat, w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, n: number): number {
  const table = format.toFloat;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const wi = table[w[wAt + 2 * i] | (w[wAt + 2 * i + 1] << 8)];
    const ai = table[a[aAt + 2 * i] | (a[aAt + 2 * i + 1] << 8)];
    sum = Math.fround(sum + wi * ai);
  }
  return sum;
}

/** out[outAt + i] = the i-th of n little-endian float32 at src[at] (any alignment). */
export function dequantizeF32(src: Uint8Array, at: number, n: number, out: Float32Array, outAt: number): void {
  for (let i = 0; i < n; i++) out[outAt + i] = readF32(src, at + 4 * i);
}

/** The n values x[xAt…] as little-endian float32 at out[outAt]. */
export function quantizeF32(x: Float32Array, xAt: number, n: number, out: Uint8Array, outAt: number): void {
  for (let i = 0; i < n; i++) writeF32(out, outAt + 4 * i, x[xAt + i]);
}

/** Σ w_i·a_i over n float32, accumulated in float32 (a fused multiply-add per step). */
export function dotF32(w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, n: number): number {
  const wf = float32Alias(w, wAt);
  const af = float32Alias(a, aAt);
  let sum = 0;
  if (wf && af) {
    // both aligned: read in place
    const w0 = (w.byteOffset + wAt) / 4;
    const a0 = (a.byteOffset + aAt) / 4;
    for (let i = 0; i < n; i++) sum = Math.fround(sum + wf[w0 + i] * af[a0 + i]);
  } else {
    for (let i = 0; i < n; i++) sum = Math.fround(sum + readF32(w, wAt + 4 * i) * readF32(a, aAt + 4 * i));
  }
  return sum;
}
