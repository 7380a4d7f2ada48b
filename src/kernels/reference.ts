// The reference backend: plain TypeScript, written for clarity. It computes what llama.cpp's CPU backend
// computes — including where ggml rounds: activations are quantized to the weight's `vec_dot_type` before a
// quantized matmul, q and the softmax weights are rounded to f16 against the f16 KV cache — and it is the oracle
// the WASM SIMD backend is checked against.

import type { AttentionCacheView, AttentionShape, AttentionWeights, Backend, RopeParams } from './backend.js';
import type { RopeAngles } from './rope.js';
import { expertSlice, type WeightTensor } from '../tensor/tensor.js';
import { GGMLType, typeInfo } from '../tensor/ggml-type.js';
import { activationRowBytes, dequantizeRow, fp16ToFp32, fp32ToFp16, quantizeRowForDot, vecDot, vecDotType } from '../tensor/index.js';
import { gelu, geluHalfTable, layerNormStats, rmsScale, softcap } from './formulas.js';

/** A Float32Array over an F32 tensor's bytes (copied only if the bytes are not 4-byte aligned). */
export function f32View(w: WeightTensor): Float32Array {
  if (w.type !== GGMLType.F32) throw new Error(`tensor "${w.name}" is ${typeInfo(w.type).name}, expected F32`);
  const { data } = w;
  if (data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  return new Float32Array(new Uint8Array(data).buffer); // a copy (a Buffer's slice() is a view)
}

function matmulF32(out: Float32Array, x: Float32Array, w: Float32Array, nTokens: number, nIn: number, nOut: number): void {
  for (let t = 0; t < nTokens; t++) {
    const xo = t * nIn;
    for (let r = 0; r < nOut; r++) {
      const wo = r * nIn;
      let sum = 0;
      for (let c = 0; c < nIn; c++) sum += w[wo + c] * x[xo + c];
      out[t * nOut + r] = sum;
    }
  }
}

/** F16 weights × f32 activations: each weight row widened to f32, activations kept as they are. */
function matmulHalfRows(out: Float32Array, x: Float32Array, w: WeightTensor, nTokens: number, nIn: number, nOut: number): void {
  const row = new Float32Array(nIn);
  for (let r = 0; r < nOut; r++) {
    dequantizeRow(w.type, w.data.subarray(r * nIn * 2, (r + 1) * nIn * 2), nIn, row);
    for (let t = 0; t < nTokens; t++) {
      let sum = 0;
      for (let c = 0; c < nIn; c++) sum += row[c] * x[t * nIn + c];
      out[t * nOut + r] = sum;
    }
  }
}

/** Quantized (or bf16) matmul: each activation row is converted once to the weight's vec_dot_type. */
function matmulBlocks(out: Float32Array, x: Float32Array, w: WeightTensor, nTokens: number, nIn: number, nOut: number): void {
  const dotType = vecDotType(w.type);
  const actBytes = activationRowBytes(dotType, nIn);
  const act = new Uint8Array(actBytes * nTokens);
  for (let t = 0; t < nTokens; t++) quantizeRowForDot(dotType, x, t * nIn, nIn, act, t * actBytes);
  const { blockSize, typeSize } = typeInfo(w.type);
  const wRowBytes = (nIn / blockSize) * typeSize;
  for (let t = 0; t < nTokens; t++) {
    for (let r = 0; r < nOut; r++) out[t * nOut + r] = vecDot(w.type, w.data, r * wRowBytes, act, t * actBytes, nIn);
  }
}

/**
 * Whether F16 weights meet unrounded f32 activations: llama.cpp's reference runs multiply them through tinyBLAS's
 * F16×F32 path, which takes rows of a multiple of 16 values (AVX-512); other widths go through ggml's vec_dot_f16,
 * with the activations rounded to f16.
 */
export function halfTimesFloat(type: GGMLType, nIn: number): boolean {
  return type === GGMLType.F16 && nIn % 16 === 0;
}

// constants of expF64 (the same as wasm/kernels/elementwise.ts expF64x2)
const EXP_ROUND = 6755399441055744; // 1.5·2^52: adding it rounds to an integer
const LOG2E = 1.4426950408889634;
const LN2_HI = 0.6931471803691238; // ln 2 to 32 bits: n·LN2_HI is exact for the n that occur
const LN2_LO = 1.9082149292705877e-10; // ln 2 − LN2_HI
/** 1/k! for k = 0 … 12 */
const INV_FACTORIAL = Array.from({ length: 13 }, (_, k) => 1 / Array.from({ length: k }, (_, j) => j + 1).reduce((a, b) => a * b, 1));

/**
 * e^t in f64, step for step as the WASM kernels' expF64x2 (so both backends give the same bits; within 2 ulp of
 * Math.exp): t clamped to [−708, 709]; n = round(t·log2 e); r = t − n·ln2 (two parts); e^r by its degree-12 Taylor
 * polynomial (|r| ≤ 0.35: truncation below 2e−16 relative), by Estrin's scheme; times 2^n.
 */
export function expF64(t: number): number {
  if (t < -708) t = -708; // NaN stays NaN
  if (t > 709) t = 709;
  const z = t * LOG2E + EXP_ROUND;
  const n = z - EXP_ROUND;
  const r = t - n * LN2_HI - n * LN2_LO;
  // Σ r^k/k! by Estrin's scheme: pairs, then the powers r², r⁴, r⁸
  const c = INV_FACTORIAL;
  const r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const s0 = c[0] + r + (c[2] + r * c[3]) * r2;
  const s1 = c[4] + r * c[5] + (c[6] + r * c[7]) * r2;
  const s2 = c[8] + r * c[9] + (c[10] + r * c[11]) * r2;
  const p = s0 + s1 * r4 + (s2 + c[12] * r4) * r8;
  return p * 2 ** n;
}

/** Backend.matmulExperts as one `matmul` per slot and weight, of the expert's slice (named `${w.name}[e]`). */
export function matmulExpertsBySlot(matmul: (out: Float32Array, row: Float32Array, w: WeightTensor) => void, outs: Float32Array[],
  x: Float32Array, nRows: number, weights: WeightTensor[], experts: Int32Array): void {
  const [nIn, nOut] = weights[0].dims;
  const slotsPerRow = experts.length / nRows;
  experts.forEach((e, s) => {
    const row = Math.floor(s / slotsPerRow);
    weights.forEach((w, k) => matmul(outs[k].subarray(s * nOut, (s + 1) * nOut), x.subarray(row * nIn, (row + 1) * nIn), expertSlice(w, e)));
  });
}

export class ReferenceBackend implements Backend {
  readonly name = 'reference';

  matmul(out: Float32Array, x: Float32Array, w: WeightTensor, nTokens: number, bias?: Float32Array): void {
    const [nIn, nOut] = w.dims;
    if (w.type === GGMLType.F32) matmulF32(out, x, f32View(w), nTokens, nIn, nOut);
    else if (halfTimesFloat(w.type, nIn)) matmulHalfRows(out, x, w, nTokens, nIn, nOut);
    // every other type goes through the weight's vec_dot_type as ggml does (F16 rows of other widths too)
    else matmulBlocks(out, x, w, nTokens, nIn, nOut);
    if (bias) this.addBias(out, bias, nTokens, nOut);
  }

  matmulMany(outs: Float32Array[], x: Float32Array, weights: WeightTensor[], nTokens: number, biases?: Float32Array[]): void {
    weights.forEach((w, k) => this.matmul(outs[k], x, w, nTokens, biases?.[k]));
  }

  matmulExperts(outs: Float32Array[], x: Float32Array, nRows: number, weights: WeightTensor[], experts: Int32Array): void {
    matmulExpertsBySlot((out, row, w) => this.matmul(out, row, w, 1), outs, x, nRows, weights, experts);
  }

  embedding(out: Float32Array, w: WeightTensor, tokens: Int32Array): void {
    const [dim, nVocab] = w.dims;
    const { blockSize, typeSize } = typeInfo(w.type);
    const rowBytes = (dim / blockSize) * typeSize;
    for (let t = 0; t < tokens.length; t++) {
      const id = tokens[t];
      if (id < 0 || id >= nVocab) throw new RangeError(`token id ${id} is outside the vocabulary (0..${nVocab - 1})`);
      dequantizeRow(w.type, w.data.subarray(id * rowBytes, (id + 1) * rowBytes), dim, out, t * dim);
    }
  }

  rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, nTokens: number, dim: number, eps: number): void {
    for (let t = 0; t < nTokens; t++) {
      const o = t * dim;
      const scale = rmsScale(x, o, dim, eps);
      for (let i = 0; i < dim; i++) out[o + i] = Math.fround(x[o + i] * scale) * weight[i];
    }
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles, p: RopeParams): void {
    const half = p.nDims / 2, first = p.offset ?? 0;
    for (let t = 0; t < nTokens; t++) {
      for (let i = 0; i < half; i++) {
        const cos = angles.cos[t * half + i], sin = angles.sin[t * half + i];
        for (let h = 0; h < nHeads; h++) {
          const base = t * nHeads * headDim + h * headDim + first;
          // pair (a, b): NEOX rotates dims i and i + nDims/2, normal rope dims 2i and 2i+1
          const a = base + (p.neox ? i : 2 * i);
          const b = base + (p.neox ? i + half : 2 * i + 1);
          const x0 = x[a], x1 = x[b];
          x[a] = x0 * cos - x1 * sin;
          x[b] = x0 * sin + x1 * cos;
        }
      }
    }
  }

  attention(out: Float32Array, q: Float32Array, nTokens: number, cache: AttentionCacheView, s: AttentionShape, weights?: AttentionWeights): void {
    const { nHeads, nKvHeads, headDim } = s;
    const valueDim = s.valueDim ?? headDim;
    const group = nHeads / nKvHeads;
    const scale = Math.fround(s.scale);
    const qh = new Float32Array(headDim);
    const acc = new Float64Array(valueDim);
    for (let t = 0; t < nTokens; t++) {
      const slots = cache.slotsFor(t);
      const scores = new Float32Array(slots.length);
      for (let h = 0; h < nHeads; h++) {
        const kvHead = Math.floor(h / group);
        const qOffset = t * nHeads * headDim + h * headDim;
        // q is rounded to f16, as ggml converts it to the f16 cache's vec_dot_type
        for (let d = 0; d < headDim; d++) qh[d] = fp16ToFp32(fp32ToFp16(q[qOffset + d]));
        let max = -Infinity;
        for (let j = 0; j < slots.length; j++) {
          const k = slots[j] * cache.keyStride + kvHead * headDim;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += qh[d] * fp16ToFp32(cache.keys[k + d]);
          // stored as f32: kq, then the soft-cap, then softmax's scale (ggml's order)
          const kq = Math.fround(dot);
          scores[j] = (s.softcap ? softcap(kq, s.softcap) : kq) * scale;
          if (scores[j] > max) max = scores[j];
        }
        // softmax as ggml: e_j = expf(s_j − max) in f32, summed in f64, then scaled by the f32 1/sum
        let sum = 0;
        for (let j = 0; j < slots.length; j++) sum += scores[j] = Math.exp(scores[j] - max);
        const inv = Math.fround(1 / sum);
        if (weights) for (let j = 0; j < slots.length; j++) weights.data[(t * nHeads + h) * weights.stride + j] = scores[j] * inv;
        acc.fill(0);
        for (let j = 0; j < slots.length; j++) {
          // softmax weight rounded to f16 before multiplying the f16 values (ggml's kq · v)
          const p = fp16ToFp32(fp32ToFp16(scores[j] * inv));
          const v = slots[j] * cache.valueStride + kvHead * valueDim;
          for (let d = 0; d < valueDim; d++) acc[d] += p * fp16ToFp32(cache.values[v + d]);
        }
        const outOffset = (t * nHeads + h) * valueDim;
        for (let d = 0; d < valueDim; d++) out[outOffset + d] = acc[d];
      }
    }
  }

  layernorm(out: Float32Array, x: Float32Array, weight: Float32Array, bias: Float32Array, nTokens: number, dim: number, eps: number): void {
    const f = Math.fround;
    for (let t = 0; t < nTokens; t++) {
      const o = t * dim;
      const [mean, scale] = layerNormStats(x, o, dim, eps);
      for (let i = 0; i < dim; i++) out[o + i] = f(f(f(x[o + i] - mean) * scale) * weight[i]) + bias[i];
    }
  }

  swiglu(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    // silu(g) = g / (1 + e^−g) in f64, rounded once to f32 (llama.cpp's references match this rounding)
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      out[i] = (g / (1 + expF64(-g))) * up[i];
    }
  }

  gelu(out: Float32Array, gate: Float32Array, n: number, up?: Float32Array): void {
    const table = geluHalfTable();
    for (let i = 0; i < n; i++) out[i] = up ? gelu(gate[i], table) * up[i] : gelu(gate[i], table);
  }

  softcap(x: Float32Array, n: number, cap: number): void {
    for (let i = 0; i < n; i++) x[i] = softcap(x[i], cap);
  }

  scale(x: Float32Array, n: number, s: number): void {
    const f32 = Math.fround(s);
    for (let i = 0; i < n; i++) x[i] *= f32;
  }

  addInPlace(a: Float32Array, b: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) a[i] += b[i];
  }

  addBias(x: Float32Array, bias: Float32Array, nTokens: number, dim: number): void {
    for (let t = 0; t < nTokens; t++) for (let i = 0; i < dim; i++) x[t * dim + i] += bias[i];
  }
}
