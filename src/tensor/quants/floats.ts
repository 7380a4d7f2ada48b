// The plain float formats F32, F16 and BF16 (one value per "block"): decoding, encoding activations, dot products.
// ggml multiplies F16 weights with F16 activations and BF16 with BF16 (the activations converted first), F32 with F32,
// products accumulated in float32 (ggml_vec_dot_f16 / _bf16 / _f32).

import { BF16_TO_FP32, FP16_TO_FP32, fp32ToBf16, fp32ToFp16 } from '../float16.js';
import { float32Alias, writeF32, writeUint16 } from '../bytes.js';

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

// The float dot products keep four float32 partial sums, over i % 4, added pairwise at the end (ggml's x86 code keeps
// 32 in SIMD lanes): a fused multiply-add per value, as ggml's, and four independent chains for speed.

/** Σ w_i·a_i over n 16-bit floats of the same format, in float32 (each product is exact in float32). */
export function dotHalf(format: HalfFormat, w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, n: number): number {
  const table = format.toFloat;
  const f32 = Math.fround;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let p = wAt, q = aAt; // byte positions of value i
  const n4 = n - (n % 4);
  for (let i = 0; i < n4; i += 4, p += 8, q += 8) {
    s0 = f32(s0 + table[w[p] | (w[p + 1] << 8)] * table[a[q] | (a[q + 1] << 8)]);
    s1 = f32(s1 + table[w[p + 2] | (w[p + 3] << 8)] * table[a[q + 2] | (a[q + 3] << 8)]);
    s2 = f32(s2 + table[w[p + 4] | (w[p + 5] << 8)] * table[a[q + 4] | (a[q + 5] << 8)]);
    s3 = f32(s3 + table[w[p + 6] | (w[p + 7] << 8)] * table[a[q + 6] | (a[q + 7] << 8)]);
  }
  for (let i = n4; i < n; i++, p += 2, q += 2) s0 = f32(s0 + table[w[p] | (w[p + 1] << 8)] * table[a[q] | (a[q + 1] << 8)]);
  return f32(f32(s0 + s2) + f32(s1 + s3));
}

/** out[outAt + i] = the i-th of n little-endian float32 at src[at]. */
export function dequantizeF32(src: Uint8Array, at: number, n: number, out: Float32Array, outAt: number): void {
  const [values, first] = float32Row(src, at, n);
  out.set(values.subarray(first, first + n), outAt);
}

/** The n values x[xAt…] as little-endian float32 at out[outAt]. */
export function quantizeF32(x: Float32Array, xAt: number, n: number, out: Uint8Array, outAt: number): void {
  const alias = float32Alias(out, outAt);
  if (alias) alias.set(x.subarray(xAt, xAt + n), (out.byteOffset + outAt) / 4);
  else for (let i = 0; i < n; i++) writeF32(out, outAt + 4 * i, x[xAt + i]);
}

/** Σ w_i·a_i over n float32, in float32 as dotHalf. */
export function dotF32(w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, n: number): number {
  const [wf, w0] = float32Row(w, wAt, n);
  const [af, a0] = float32Row(a, aAt, n);
  const f32 = Math.fround;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const n4 = n - (n % 4);
  for (let i = 0; i < n4; i += 4) {
    s0 = f32(s0 + wf[w0 + i] * af[a0 + i]);
    s1 = f32(s1 + wf[w0 + i + 1] * af[a0 + i + 1]);
    s2 = f32(s2 + wf[w0 + i + 2] * af[a0 + i + 2]);
    s3 = f32(s3 + wf[w0 + i + 3] * af[a0 + i + 3]);
  }
  for (let i = n4; i < n; i++) s0 = f32(s0 + wf[w0 + i] * af[a0 + i]);
  return f32(f32(s0 + s2) + f32(s1 + s3));
}

/** The n float32 at bytes[at] as (array, index of the first): read in place when aligned, else copied. */
function float32Row(bytes: Uint8Array, at: number, n: number): [Float32Array, number] {
  const alias = float32Alias(bytes, at);
  if (alias) return [alias, (bytes.byteOffset + at) / 4];
  // new Uint8Array(view) copies; a Buffer's slice() would be a view whose .buffer is the whole pool
  return [new Float32Array(new Uint8Array(bytes.subarray(at, at + 4 * n)).buffer), 0];
}
