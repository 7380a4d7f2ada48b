// Running a model over token chunks and comparing its next-token distributions with a base model's: the
// shared step of quant-report (whole quantized models) and the sensitivity search (one tensor quantized).

import { evaluate, firstScored } from '../generate/generate.js';
import { Model } from '../generate/model.js';
import type { GGUFModelFile } from '../gguf/model-file.js';
import type { Backend } from '../kernels/backend.js';
import { createBackend } from '../kernels/select.js';
import { WasmBackend } from '../kernels/wasm.js';
import { KLDStats, type KLDSummary } from './kld.js';

/** Runs fn with a backend of its own, released afterwards (with every weight copied into it). */
export function withBackend<T>(fn: (backend: Backend) => T): T {
  const backend = createBackend();
  try {
    return fn(backend);
  } finally {
    if (backend instanceof WasmBackend) backend.close();
  }
}

/** Runs fn on a Model of `file` with a backend of its own; `wrap` may put a layer around the backend. */
export function withModel<T>(file: GGUFModelFile, fn: (model: Model) => T, wrap: (b: Backend) => Backend = (b) => b): T {
  return withBackend((backend) => fn(new Model(file, wrap(backend))));
}

/** The scored positions' logits of each chunk: [ctx − 1 − firstScored(ctx), vocab] per chunk. */
export function scoredLogits(model: Model, chunks: readonly number[][]): Float32Array[] {
  return chunks.map((chunk) => {
    const ctx = chunk.length;
    return evaluate(model, chunk).slice(firstScored(ctx) * model.vocabSize, (ctx - 1) * model.vocabSize);
  });
}

/**
 * KL divergence and the rest of KLDSummary of `model` against the base over the same chunks; `baseScored(c)` gives
 * chunk c's scored logits of the base (from memory or a logits file).
 */
export function compareWithBase(model: Model, chunks: readonly number[][], baseScored: (chunk: number) => Float32Array, onChunk?: (done: number) => void): KLDSummary {
  const stats = new KLDStats(model.vocabSize);
  chunks.forEach((chunk, c) => {
    stats.addChunk(baseScored(c), evaluate(model, chunk), chunk);
    onChunk?.(c + 1);
  });
  return stats.summary();
}
