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
}

export interface ModelOps<T, W> {
  /** rows of the embedding table (dims [dim, nVocab]) for the batch's tokens → [nTokens, dim] */
  embed(table: W): T;
  /** x·Wᵀ (+ bias): x [n, nIn], W dims [nIn, nOut] → [n, nOut] */
  linear(x: T, w: W, bias?: W): T;
  /** RMSNorm then scale by weight: x / sqrt(mean(x²) + eps) ⊙ weight */
  rmsnorm(x: T, weight: W, eps: number): T;
  /** rotary position embedding of every head of x [n, nHeads × headDim] at the batch's positions */
  rope(x: T, nHeads: number, headDim: number, params: RopeParams): T;
  /** causal (grouped-query) attention of q over this layer's keys/values, including those of this batch */
  attention(layer: number, q: T, k: T, v: T, shape: AttentionShape): T;
  /** silu(gate) ⊙ up */
  swiglu(gate: T, up: T): T;
  add(a: T, b: T): T;
  /** Mixtral-style sparse feed-forward: per token, softmax router → top-k experts → weighted sum of SwiGLU experts */
  mixtureOfExperts(layer: number, x: T, experts: ExpertWeights<W>): T;
  /** only the rows whose logits are wanted (e.g. the last token of each sequence) */
  outputRows(x: T): T;
}

/** Router probabilities → chosen experts and their weights, as llama.cpp's build_moe_ffn does. */
export function routeToExperts(logits: Float32Array, nUsed: number, normalize: boolean): { experts: number[]; weights: number[] } {
  // softmax over all experts (in float64 for the sum, as ggml's soft_max)
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l);
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let e = 0; e < logits.length; e++) sum += probs[e] = Math.exp(logits[e] - max);
  for (let e = 0; e < logits.length; e++) probs[e] /= sum;
  // top-k by probability, ties to the lower index
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  const experts = order.slice(0, nUsed);
  let weights = experts.map((e) => probs[e]);
  if (normalize) {
    const total = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => w / total);
  }
  return { experts, weights };
}
