// Scalar formulas shared by the reference backend and training's autograd, each written once, in llama.cpp's
// float32 arithmetic (Math.fround marks every f32 rounding ggml makes), so that kiln reproduces its values; and the
// f64 softmax that losses, perplexity, KL divergence and sampling share.

import { fp16ToFp32, fp32ToFp16 } from '../tensor/float16.js';

const GELU_COEF_A = Math.fround(0.044715);
const SQRT_2_OVER_PI = Math.fround(0.7978845608028654);

/** gelu(x) = ½x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²))), the tanh form, in f32 steps (ggml_gelu_f32) */
export function geluF32(x: number): number {
  const f = Math.fround;
  const inner = f(f(SQRT_2_OVER_PI * x) * f(1 + f(f(GELU_COEF_A * x) * x)));
  return f(f(f(0.5 * x) * f(1 + f(Math.tanh(inner)))));
}

/** d gelu / dx of the tanh form (for training) */
export function geluDerivative(x: number): number {
  const u = 0.7978845608028654 * x * (1 + 0.044715 * x * x);
  const t = Math.tanh(u);
  const du = 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
}

let geluTable: Float32Array | undefined;

/** gelu of every f16 value, rounded to f16 (ggml's ggml_table_gelu_f16): [65536] indexed by the f16 bits */
export function geluHalfTable(): Float32Array {
  if (!geluTable) {
    geluTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) geluTable[h] = fp16ToFp32(fp32ToFp16(geluF32(fp16ToFp32(h))));
  }
  return geluTable;
}

/**
 * gelu as llama.cpp's CPU backend evaluates it (GGML_GELU_FP16): 0 at or below −10, x at or above 10, else the
 * table entry of x rounded to f16 — so differences from the exact formula are f16 roundings, and kiln matches them.
 */
export function gelu(x: number, table = geluHalfTable()): number {
  if (x <= -10) return 0;
  if (x >= 10) return x;
  return table[fp32ToFp16(x)];
}

/** c·tanh(x/c) in ggml's steps: scale by the f32 1/c, tanh, scale by c */
export function softcap(x: number, cap: number): number {
  const f = Math.fround;
  return f(f(Math.tanh(f(x * f(1 / cap)))) * f(cap));
}

/** RMS norm's scale of one row: 1/sqrt(mean(x²) + eps), the squares summed in f64, the mean and scale rounded to f32 */
export function rmsScale(x: Float32Array, offset: number, dim: number, eps: number): number {
  let sumSq = 0;
  for (let i = 0; i < dim; i++) sumSq += x[offset + i] * x[offset + i];
  return Math.fround(1 / Math.sqrt(Math.fround(sumSq / dim) + eps));
}

/**
 * LayerNorm statistics of one row as ggml_norm computes them: the mean summed in f64, the centred values' squares
 * (each an f32 product) summed in f64, scale = 1/sqrt(var + eps) in f32. Returns [mean, scale].
 */
export function layerNormStats(x: Float32Array, offset: number, dim: number, eps: number): [number, number] {
  const f = Math.fround;
  let sum = 0;
  for (let i = 0; i < dim; i++) sum += x[offset + i];
  const mean = f(sum / dim);
  let sum2 = 0;
  for (let i = 0; i < dim; i++) {
    const v = f(x[offset + i] - mean);
    sum2 += f(v * v);
  }
  return [mean, f(1 / f(Math.sqrt(f(f(sum2 / dim) + f(eps)))))];
}

/**
 * The f64 softmax of x[offset .. offset + n) / temperature, unnormalized: returns [max, sum] with max the largest
 * x_i / T and sum = Σ e^(x_i/T − max); each e^(x_i/T − max) goes to out[i] where `out` is given. So softmax_i =
 * e^(x_i/T − max) / sum and ln Σ e^(x_i/T) = max + ln sum.
 */
export function expSum(x: Float32Array, offset: number, n: number, out?: Float64Array, temperature = 1): [number, number] {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, x[offset + i] / temperature);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[offset + i] / temperature - max);
    if (out) out[i] = e;
    sum += e;
  }
  return [max, sum];
}

/** ln Σ e^x_i over x[offset .. offset + n) in f64, stably (max + ln Σ e^(x_i − max)); −∞ when every x_i is −∞ */
export function logSumExp(x: Float32Array, offset: number, n: number): number {
  const [max, sum] = expSum(x, offset, n);
  return max === -Infinity ? -Infinity : max + Math.log(sum);
}
