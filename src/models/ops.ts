// The vocabulary model code is written in. A forward pass is a function of `ModelOps<T, W>`, generic over
// the activation type T and the weight type W, so that the same model file runs
//   - inference (T = float buffers computed by a Backend, W = weights in their stored block format, with a KV cache),
//   - training (T = autograd nodes, W = trainable parameters) — see src/train.
// Positions, sequences and the KV cache are the implementation's business: model code only says what to compute.

import type { AttentionShape, RopeParams } from '../kernels/backend.js';

export interface ExpertWeights<W> {
  /** router: dims [dim, nExpert] */
  router: W;
  /** stacked expert matrices: gate/up dims [dim, nFF, nExpert], down dims [nFF, dim, nExpert] */
  gate: W;
  up: W;
  down: W;
  /** experts run per token */
  nUsed: number;
  /** renormalize the chosen experts' router probabilities to sum to 1 (Mixtral) */
  normalizeWeights: boolean;
  /** multiplies the chosen experts' weights (DeepSeek's expert_weights_scale; default 1) */
  weightScale?: number;
}

/** Multi-head latent attention (DeepSeek-V2): heads, their q/k parts and the compressed key-value width. */
export interface LatentAttentionShape {
  nHeads: number;
  /** per-head q/k dims without rope, and the roped dims that follow them in each q head */
  nopeDim: number;
  ropeDim: number;
  /** width of the compressed key-value latent (`kv_lora_rank`) */
  kvRank: number;
  /** per-head value width */
  valueDim: number;
  /** multiplies q·k before softmax */
  scale: number;
}

/** Which keys a query sees: its own and earlier positions (causal), only the last `window` of those, or all. */
export type AttentionMask = { kind: 'causal' } | { kind: 'window'; window: number } | { kind: 'bidirectional' };

export interface ModelOps<T, W> {
  /**
   * rows of an embedding table (dims [dim, nRows]) → [nTokens, dim]: the batch's tokens (the default), the batch's
   * positions (learned position embeddings), or one row number for every token (a token-type row)
   */
  embed(table: W, rows?: 'tokens' | 'positions' | number): T;
  /** x·Wᵀ (+ bias): x [n, nIn], W dims [nIn, nOut] → [n, nOut] */
  linear(x: T, w: W, bias?: W): T;
  /**
   * a fused projection's parts: x·W_iᵀ (+ bias_i) for the consecutive row blocks W_i of W (dims [nIn, Σ widths]) of
   * `widths` (a fused qkv or gate-up weight) → [n, widths[i]] each; the same as columns of linear(x, w, bias)
   */
  linearSplit(x: T, w: W, widths: readonly number[], bias?: W): T[];
  /**
   * x·W_iᵀ (+ bias_i) for several weights of one input (a layer's k and v, gate and up) → [n, nOut_i] each; the same
   * as linear for each, where weights of one type and shape can share a pass (one quantization of x, one job)
   */
  linears(x: T, ws: readonly W[], biases?: readonly (W | undefined)[]): T[];
  /** columns [start, start + width) of x [n, cols] → [n, width] */
  columns(x: T, start: number, width: number): T;
  /** RMSNorm then scale by weight: x / sqrt(mean(x²) + eps) ⊙ weight */
  rmsnorm(x: T, weight: W, eps: number): T;
  /** LayerNorm: (x − mean(x)) / sqrt(var(x) + eps) ⊙ weight + bias */
  layernorm(x: T, weight: W, bias: W, eps: number): T;
  /** rotary position embedding of every head of x [n, nHeads × headDim] at the batch's positions */
  rope(x: T, nHeads: number, headDim: number, params: RopeParams): T;
  /**
   * (grouped-query) attention of q over this layer's keys/values, including those of this batch, under `mask`:
   * q [n, nHeads × headDim], k [n, nKvHeads × headDim], v [n, nKvHeads × valueDim] → [n, nHeads × valueDim]
   */
  attention(layer: number, q: T, k: T, v: T, shape: AttentionShape, mask?: AttentionMask): T;
  /**
   * causal multi-head latent attention: q [n, nHeads × (nopeDim + ropeDim)] (rope applied), the normed latent
   * [n, kvRank] and the shared roped key [n, ropeDim] of this batch; kvB dims [kvRank, nHeads × (nopeDim + valueDim)]
   * expands a latent into each head's key (nope part) and value. → [n, nHeads × valueDim]
   */
  latentAttention(layer: number, q: T, latent: T, kRope: T, kvB: W, shape: LatentAttentionShape): T;
  /** silu(gate) ⊙ up */
  swiglu(gate: T, up: T): T;
  /** gelu(gate) ⊙ up (GeGLU), gelu in its tanh form */
  geglu(gate: T, up: T): T;
  /** gelu(x), the tanh form */
  gelu(x: T): T;
  /** c · tanh(x / c) */
  softcap(x: T, cap: number): T;
  /** s · x */
  scale(x: T, s: number): T;
  add(a: T, b: T): T;
  /** sparse feed-forward: per token, softmax router → top-k experts → weighted sum of SwiGLU experts */
  mixtureOfExperts(layer: number, x: T, experts: ExpertWeights<W>): T;
  /** only the rows whose outputs are wanted (e.g. the last token of each sequence) */
  outputRows(x: T): T;
  /**
   * The end of a layer (→ x): of the activations made since the last call (or the pass's start), only x is used
   * again, so an implementation may reuse the others' memory for the next layer's; the training tape keeps them all.
   */
  endLayer(x: T): T;
}

/** Router probabilities → chosen experts and their weights, as llama.cpp's build_moe_ffn does. */
export function routeToExperts(logits: Float32Array, nUsed: number, normalize: boolean, scale = 1): { experts: number[]; weights: number[] } {
  // softmax over all experts (in float64 for the sum, as ggml's soft_max)
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l);
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let e = 0; e < logits.length; e++) sum += probs[e] = Math.exp(logits[e] - max);
  for (let e = 0; e < logits.length; e++) probs[e] /= sum;
  // top-k by probability, ties to the lower index: k passes, each taking the most probable expert not yet taken
  const taken = new Uint8Array(logits.length);
  const experts: number[] = [];
  let weights: number[] = [];
  for (let k = 0; k < Math.min(nUsed, logits.length); k++) {
    let best = -1;
    for (let e = 0; e < logits.length; e++) if (!taken[e] && (best < 0 || probs[e] > probs[best])) best = e;
    taken[best] = 1;
    experts.push(best);
    weights.push(probs[best]);
  }
  if (normalize) {
    const total = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => w / total);
  }
  if (scale !== 1) weights = weights.map((w) => Math.fround(w) * Math.fround(scale));
  return { experts, weights };
}
