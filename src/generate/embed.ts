// Sentence embeddings from a model's final hidden states: pooled over the sequence (mean, first token = CLS, or
// last token), then optionally L2-normalized — as llama.cpp's llama-embedding does.

import type { Pooling } from '../models/hparams.js';
import type { Model } from './model.js';
import { ContextOverflowError, SingleSequence } from './generate.js';

export const POOLINGS: readonly Pooling[] = ['mean', 'cls', 'last'];

/** Pools hidden states [n, dim] of one sequence into one vector [dim] (the mean summed in f64). */
export function poolHidden(hidden: Float32Array, n: number, dim: number, pooling: Pooling): Float32Array {
  if (pooling === 'cls') return hidden.slice(0, dim);
  if (pooling === 'last') return hidden.slice((n - 1) * dim, n * dim);
  const sum = new Float64Array(dim);
  for (let t = 0; t < n; t++) for (let i = 0; i < dim; i++) sum[i] += hidden[t * dim + i];
  return Float32Array.from(sum, (v) => v / n);
}

/** x / ‖x‖₂ in place (a zero vector stays zero) */
export function normalizeL2(x: Float32Array): Float32Array {
  let sum = 0;
  for (const v of x) sum += v * v;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < x.length; i++) x[i] /= norm;
  return x;
}

/** The rows of an n-token sequence whose final hidden states `pooling` reads: all (mean), the first (cls), the last. */
export function pooledRows(n: number, pooling: Pooling): number[] {
  if (pooling === 'cls') return [0];
  if (pooling === 'last') return [n - 1];
  return Array.from({ length: n }, (_, i) => i);
}

/** The embedding of one sequence from the hidden states [rows, dim] of its pooledRows: pooled, then L2-normalized unless told not to. */
export function poolEmbedding(hidden: Float32Array, dim: number, pooling: Pooling, normalize = true): Float32Array {
  const pooled = poolHidden(hidden, hidden.length / dim, dim, pooling);
  return normalize ? normalizeL2(pooled) : pooled;
}

/** The pooling a model asks for (bert.pooling_type), else the one that suits it: mean for encoders, last for decoders. */
export function defaultPooling(model: Model): Pooling {
  return model.hparams.pooling ?? (model.hparams.causal ? 'last' : 'mean');
}

export class EmptyInputError extends Error {
  constructor() {
    super('cannot embed an empty input: it has no tokens');
    this.name = 'EmptyInputError';
  }
}

/** The embedding of one token sequence, pooled and (by default) L2-normalized. */
export function embedTokens(model: Model, tokens: readonly number[], options: { pooling?: Pooling; normalize?: boolean } = {}): Float32Array {
  if (tokens.length === 0) throw new EmptyInputError();
  if (tokens.length > model.hparams.contextLength) throw new ContextOverflowError(tokens.length, model.hparams.contextLength);
  const pooling = options.pooling ?? defaultPooling(model);
  // the whole sequence in one batch (an encoder's positions see each other); last-token pooling needs only that row
  const hidden = new SingleSequence(model, tokens.length).feedHidden(tokens, pooling !== 'last');
  return poolEmbedding(hidden, model.hparams.embeddingLength, pooling, options.normalize);
}
