// Contrastive training of a sentence-embedding model (InfoNCE with in-batch negatives, as in SimCSE / E5):
// a batch holds B pairs (a_i, b_i) of texts that belong together; each text's embedding is the mean of its final
// hidden states over its real tokens, L2-normalized; with S = A·Bᵀ / τ [B, B] the loss is
//   ½ · (CE(S, diag) + CE(Sᵀ, diag)),
// pulling each a_i towards its own b_i and away from the batch's other texts. Sequences are padded to the batch's
// seqLen at the end: a decoder's causal attention keeps padding out of the real positions, and pooling skips it.

import { Rng } from '../generate/rng.js';
import { Var, backward, crossEntropy, gatherRows, linear, scale } from './autograd.js';
import { allocFloats, floatsMark, releaseFloats, setTrainingThreads } from './backend.js';
import { AdamW, learningRate } from './optim.js';
import { TrainOps } from './train-ops.js';
import { weightedSum } from './distill.js';
import type { TrainModel } from './llama-model.js';

/** Mean of each sequence's first lengths[s] rows of `hidden` [nSeq · seqLen, dim] → [nSeq, dim] */
export function meanPoolRows(hidden: Var, seqLen: number, lengths: readonly number[]): Var {
  const dim = hidden.cols, nSeq = lengths.length;
  const out = allocFloats(nSeq * dim);
  for (let s = 0; s < nSeq; s++) {
    for (let t = 0; t < lengths[s]; t++) for (let j = 0; j < dim; j++) out[s * dim + j] += hidden.value[(s * seqLen + t) * dim + j] / lengths[s];
  }
  return new Var(out, nSeq, dim, [hidden], (g) => {
    const dh = hidden.gradient();
    for (let s = 0; s < nSeq; s++) {
      for (let t = 0; t < lengths[s]; t++) for (let j = 0; j < dim; j++) dh[(s * seqLen + t) * dim + j] += g[s * dim + j] / lengths[s];
    }
  });
}

/** each row x / ‖x‖₂ → same shape; backward: (g − y·(g·y)) / ‖x‖ */
export function normalizeRows(x: Var): Var {
  const n = x.rows, d = x.cols;
  const out = allocFloats(n * d, false);
  const norms = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += x.value[r * d + j] ** 2;
    norms[r] = Math.sqrt(sum) || 1;
    for (let j = 0; j < d; j++) out[r * d + j] = x.value[r * d + j] / norms[r];
  }
  return new Var(out, n, d, [x], (g) => {
    const dx = x.gradient();
    for (let r = 0; r < n; r++) {
      let gy = 0;
      for (let j = 0; j < d; j++) gy += g[r * d + j] * out[r * d + j];
      for (let j = 0; j < d; j++) dx[r * d + j] += (g[r * d + j] - out[r * d + j] * gy) / norms[r];
    }
  });
}

/** InfoNCE over normalized embeddings a, b [B, dim] whose rows pair up → a scalar [1, 1] */
export function infoNCE(a: Var, b: Var, temperature: number): Var {
  const diagonal = Int32Array.from({ length: a.rows }, (_, i) => i);
  const forward = crossEntropy(scale(linear(a, b), 1 / temperature), diagonal);
  const reverse = crossEntropy(scale(linear(b, a), 1 / temperature), diagonal);
  return weightedSum([[forward, 0.5], [reverse, 0.5]]);
}

export interface ContrastiveOptions {
  steps: number;
  /** pairs per step */
  batchSize: number;
  /** tokens per text at most (longer ones are cut) */
  seqLen: number;
  lr: number;
  warmup: number;
  /** τ of the softmax over similarities */
  temperature: number;
  weightDecay: number;
  threads: number;
  seed: number;
  onProgress?: (p: { step: number; steps: number; loss: number }) => void;
}

/** The loss of one batch of token pairs, through the model's forward; gradients flow when `train`. */
export function contrastiveLoss(model: TrainModel, pairs: readonly [number[], number[]][], seqLen: number, temperature: number): Var {
  const texts = [...pairs.map((p) => p[0]), ...pairs.map((p) => p[1])].map((t) => t.slice(0, seqLen));
  const tokens = new Int32Array(texts.length * seqLen); // padded with token 0 after each text
  texts.forEach((t, s) => tokens.set(t, s * seqLen));
  const { hidden } = model.bound.forward(new TrainOps(tokens, texts.length, seqLen));
  const pooled = normalizeRows(meanPoolRows(hidden, seqLen, texts.map((t) => t.length)));
  const B = pairs.length;
  return infoNCE(gatherRows(pooled, Array.from({ length: B }, (_, i) => i)), gatherRows(pooled, Array.from({ length: B }, (_, i) => B + i)), temperature);
}

/**
 * Trains `model` in place for `o.steps` steps of AdamW (cosine schedule, gradient clip 1) on the batches
 * `batch(rng)` draws; returns the loss of each step.
 */
export function trainContrastive(model: TrainModel, batch: (rng: Rng, size: number) => [number[], number[]][], o: ContrastiveOptions): number[] {
  setTrainingThreads(o.threads);
  const rng = new Rng(o.seed);
  const optimizer = new AdamW(model.params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: o.weightDecay });
  const schedule = { lr: o.lr, minLr: o.lr / 10, warmupSteps: o.warmup, totalSteps: o.steps };
  const losses: number[] = [];
  for (let step = 0; step < o.steps; step++) {
    const mark = floatsMark();
    const loss = contrastiveLoss(model, batch(rng, o.batchSize), o.seqLen, o.temperature);
    backward(loss);
    losses.push(loss.value[0]);
    releaseFloats(mark);
    optimizer.step(learningRate(step, schedule), 1);
    optimizer.zeroGrad();
    o.onProgress?.({ step: step + 1, steps: o.steps, loss: losses[step] });
  }
  return losses;
}
