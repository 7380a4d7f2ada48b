// The compute backend: every numeric kernel a model's forward pass needs, on plain Float32Arrays.
// Activations are row-major matrices [rows, cols] (one row per token). Weights stay in their stored
// block format (WeightTensor); a backend may repack them once in `prepare`.
// Backends: `reference` (plain TypeScript, the oracle) and, later, WASM SIMD with worker threads.

import type { WeightTensor } from '../tensor/tensor.js';
import type { GGUFModelFile, TensorReader } from '../gguf/model-file.js';
import type { GGUFHeader } from '../gguf/types.js';
import type { RopeAngles } from './rope.js';

export interface RopeParams {
  /** number of leading dims of each head that are rotated (`rope.dimension_count`) */
  nDims: number;
  /** θ_i = pos · freqScale · base^(−2i/nDims) */
  freqBase: number;
  freqScale: number;
  /** NEOX pairs dims (i, i + nDims/2); normal rope pairs (2i, 2i+1) */
  neox: boolean;
  /** optional per-pair divisors of θ (llama3's `rope_freqs.weight`), length nDims/2 */
  freqFactors?: Float32Array;
  /** first rotated dim of each head (default 0; DeepSeek's decoupled rope rotates the last dims of a head) */
  offset?: number;
  /** YaRN context extension (with freqScale = 1 / the scaling factor), see rope.ts */
  yarn?: YarnParams;
}

/** YaRN (Peng et al. 2023) as llama.cpp applies it: `{arch}.rope.scaling.*` with type "yarn". */
export interface YarnParams {
  /** the context the model was pre-trained with (`rope.scaling.original_context_length`) */
  originalContext: number;
  /** how much of the extrapolated frequency to mix in (llama.cpp's yarn_ext_factor: 1 for YaRN models) */
  extFactor: number;
  /** magnitude multiplier of cos/sin before YaRN's own 1 + 0.1·ln(1/freqScale) (llama.cpp's attn_factor) */
  attnFactor: number;
  /** rotations per original context above which a pair extrapolates, below which it interpolates (32, 1) */
  betaFast: number;
  betaSlow: number;
}

/** Where the keys and values of one attention call live (see generate/kv-cache.ts). */
export interface AttentionCacheView {
  /** f16 keys of this layer: [slot, keyStride], kv head h's key at h·headDim */
  keys: Uint16Array;
  /** f16 values of this layer: [slot, valueStride], kv head h's value at h·valueDim (may be `keys` itself: MLA) */
  values: Uint16Array;
  /** halfs per slot in `keys` and in `values` */
  keyStride: number;
  valueStride: number;
  /**
   * for batch row t: the cache slot of each of its visible positions 0..n-1, in order. Rows of one sequence return
   * views of one array, which a backend may use to read the sequence's cache rows once for all of them.
   */
  slotsFor(row: number): Int32Array;
}

/** Where attention reports its softmax weights (for inspection): row t, head h, key j at data[(t·nHeads + h)·stride + j]. */
export interface AttentionWeights {
  /** [nTokens, nHeads, stride] */
  data: Float32Array;
  /** at least the longest row's visible positions */
  stride: number;
}

export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  /** per-head width of q and k */
  headDim: number;
  /** per-head width of v (default headDim) */
  valueDim?: number;
  /** multiplies q·k before softmax (1/sqrt(headDim) unless the model says otherwise) */
  scale: number;
  /** soft-cap c of the scores: s → c·tanh(s/c) before softmax (gemma2); absent: none */
  softcap?: number;
}

export interface Backend {
  readonly name: string;

  /** optional: places a model's tensors (each read by `read`) where this backend computes on them */
  placeTensors?(path: string, header: GGUFHeader, read: TensorReader): GGUFModelFile;

  /** optional: zeroed storage for `count` f16 values (the KV cache) placed where this backend's attention reads it */
  allocateHalfs?(count: number): Uint16Array;

  /** out[t, r] = Σ_c W[r, c] · x[t, c] (+ bias[r], added in f32): x [nTokens, nIn], W dims [nIn, nOut], out [nTokens, nOut] */
  matmul(out: Float32Array, x: Float32Array, w: WeightTensor, nTokens: number, bias?: Float32Array): void;

  /**
   * optional: matmul of one input with several weights of one type and shape (a fused projection's parts) in one
   * pass: outs[k] = x·W_kᵀ (+ biases[k]) [nTokens, nOut] for each W_k of `weights` (dims [nIn, nOut]); without it a
   * fused projection is one matmul, split afterwards
   */
  matmulMany?(outs: Float32Array[], x: Float32Array, weights: WeightTensor[], nTokens: number, biases?: Float32Array[]): void;

  /**
   * Products with stacked expert weights (ggml's mul_mat_id), for each weight W_k of `weights` (dims [nIn, nOut,
   * nExpert], all of one type and shape): outs[k][s] = W_k[experts[s]] · x[⌊s / (nSlots / nRows)⌋] for each slot s of
   * `experts` [nSlots]: a row serves nSlots / nRows consecutive slots (a token's chosen experts), or each slot has its
   * own (nRows = nSlots). x [nRows, nIn], outs[k] [nSlots, nOut]; each slot's product is matmul's.
   */
  matmulExperts(outs: Float32Array[], x: Float32Array, nRows: number, weights: WeightTensor[], experts: Int32Array): void;

  /** out[t] = row tokens[t] of the embedding table w (dims [dim, nVocab]), dequantized */
  embedding(out: Float32Array, w: WeightTensor, tokens: Int32Array): void;

  /** out[t, i] = x[t, i] / sqrt(mean_i(x[t]²) + eps) · weight[i]: x, out [nTokens, dim] */
  rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, nTokens: number, dim: number, eps: number): void;

  /** rotates each head of x in place by the rows' angles (see rope.ts): x [nTokens, nHeads × headDim] */
  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles, params: RopeParams): void;

  /**
   * out[t, h] = Σ_j softmax_j(cap(scale · q[t, h] · k[j, h'])) · v[j, h'] over the cached positions j visible to row t
   * (the mask — causal, sliding window or bidirectional — is in `cache.slotsFor`), h' = h / (nHeads / nKvHeads)
   * (grouped-query attention), cap the optional soft-cap. q [nTokens, nHeads × headDim] f32, out [nTokens, nHeads × valueDim].
   * `weights`, when given, receives the softmax weights; a backend that cannot report them leaves it untouched.
   */
  attention(out: Float32Array, q: Float32Array, nTokens: number, cache: AttentionCacheView, shape: AttentionShape, weights?: AttentionWeights): void;

  /** out[t, i] = (x[t, i] − mean(x[t])) / sqrt(var(x[t]) + eps) · weight[i] + bias[i]: x, out [nTokens, dim] */
  layernorm(out: Float32Array, x: Float32Array, weight: Float32Array, bias: Float32Array, nTokens: number, dim: number, eps: number): void;

  /** out = silu(gate) ⊙ up, silu(x) = x / (1 + e^−x) */
  swiglu(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;

  /** out = gelu(gate) ⊙ up (GeGLU); without `up`, out = gelu(gate). gelu: the tanh form, see formulas.ts */
  gelu(out: Float32Array, gate: Float32Array, n: number, up?: Float32Array): void;

  /** x = c·tanh(x/c) in place (soft-capped logits) */
  softcap(x: Float32Array, n: number, cap: number): void;

  /** x = s·x in place */
  scale(x: Float32Array, n: number, s: number): void;

  /** a += b (element-wise, first n values) */
  addInPlace(a: Float32Array, b: Float32Array, n: number): void;

  /** x[t, i] += bias[i] for every row */
  addBias(x: Float32Array, bias: Float32Array, nTokens: number, dim: number): void;
}

/** Values per chunk of the optimizer's kernels: the squared norm is summed per chunk, the chunks added in order. */
export const OPTIMIZER_CHUNK = 8192;

/** One trainable tensor for the optimizer: its values, gradient and AdamW moments (same length). */
export interface OptimizerTensor {
  value: Float32Array;
  grad: Float32Array;
  m: Float32Array;
  v: Float32Array;
  /** whether weight decay applies (matrices, not norm weights or biases) */
  decayed: boolean;
}

/** One AdamW step's numbers: c1 = 1 − β1^t and c2 = 1 − β2^t are the bias corrections, `scale` the clipping factor. */
export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  c1: number;
  c2: number;
  scale: number;
}

/**
 * The kernels training needs beyond a forward pass (src/train/autograd.ts), the backward of each op beside its
 * forward: activations and parameters come from `allocFloats`, so that a backend computes on them where they are.
 * The forward ops that inference has (rmsnorm, rope, swiglu) are Backend's own.
 */
export interface TrainingBackend extends Backend {
  /** `n` floats, zeroed unless `zero` is false, valid until `releaseFloats` to a mark taken before them */
  allocFloats(n: number, zero?: boolean): Float32Array;
  floatsMark(): number;
  releaseFloats(mark: number): void;

  /**
   * c[m, n] = op(a)·op(b), or c += op(a)·op(b) when `accumulate`: op(a) = a [m, k], or aᵀ of a [k, m] with `transA`;
   * op(b) = b [k, n], or bᵀ of b [n, k] with `transB` (not both transposed)
   */
  gemm(c: Float32Array, a: Float32Array, b: Float32Array, m: number, n: number, k: number, transA: boolean, transB: boolean, accumulate: boolean): void;

  /** rmsnorm's gradients, added: with r the row's scale and u = g ⊙ weight, dx += r·u − x·r³/dim·Σ(u ⊙ x), dweight += Σ_rows g ⊙ x·r */
  rmsnormBackward(dx: Float32Array, dweight: Float32Array, g: Float32Array, x: Float32Array, weight: Float32Array, nTokens: number, dim: number, eps: number): void;

  /** rope's gradient, added: dx += g rotated by −θ (the rotation is orthogonal), dims outside the rotated ones passed through */
  ropeBackward(dx: Float32Array, g: Float32Array, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles, params: RopeParams): void;

  /**
   * Σ g² over the tensors' gradients in f64, deterministic at any thread count: each tensor in chunks of
   * OPTIMIZER_CHUNK values, a chunk's values 4i + k summed in lane k, then (s0 + s2) + (s1 + s3), then its last
   * count % 4 values in order; the chunks added in order.
   */
  sumSquares(tensors: OptimizerTensor[]): number;

  /**
   * AdamW (decoupled decay, bias-corrected), each gradient first scaled by step.scale and rounded to f32:
   * m = β1·m + (1 − β1)·g, v = β2·v + (1 − β2)·g·g (rounded to f32), w −= lr·(m/c1)/(sqrt(v/c2) + eps) + lr·λ·w in f64.
   */
  adamw(tensors: OptimizerTensor[], step: AdamWStep): void;

  /**
   * The softmax of each row r of logits [rows, cols] whose target (targets[r]) is not negative, in f64 into probs
   * [rows, cols] (other rows untouched): m = max_c x_c, e_c = expF64(x_c − m) (reference.ts), s = Σ_c e_c (even c and odd c in two sums added
   * at the end, an odd last value after them), p_c = e_c / s.
   */
  crossEntropyForward(logits: Float32Array, targets: Int32Array, rows: number, cols: number, probs: Float64Array): void;

  /** The cross-entropy's gradient times k, added: dlogits[r, c] += k·p_c (f64, rounded once), then dlogits[r, t] −= k */
  crossEntropyBackward(dlogits: Float32Array, probs: Float64Array, targets: Int32Array, rows: number, cols: number, k: number): void;

  /** swiglu's gradients, added: dgate += g·up·σ(gate)·(1 + gate·(1 − σ(gate))), dup += g·silu(gate) */
  swigluBackward(dgate: Float32Array, dup: Float32Array, g: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;

  /**
   * Causal attention within each of nSeq sequences of seqLen consecutive rows (no cache, every row's output):
   * out[s, h] = Σ_{j ≤ s} P[s, j]·v[j, h'], P = softmax_j(scale · q[s, h]·k[j, h']), h' = h / (nHeads / nKvHeads).
   * q, out [n, nHeads·headDim]; k, v [n, nKvHeads·headDim]; probs [nSeq, nHeads, seqLen, seqLen] receives P (kept
   * for the backward pass; entries above the diagonal are not written).
   */
  attentionForward(out: Float32Array, probs: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, nSeq: number, seqLen: number, shape: AttentionShape): void;

  /** attentionForward's gradients from g = d/d out, added into dq, dk, dv: dS = scale · P ⊙ (g·vᵀ − Σ_j P·(g·vᵀ)) */
  attentionBackward(dq: Float32Array, dk: Float32Array, dv: Float32Array, g: Float32Array, probs: Float32Array, q: Float32Array,
    k: Float32Array, v: Float32Array, nSeq: number, seqLen: number, shape: AttentionShape): void;
}
