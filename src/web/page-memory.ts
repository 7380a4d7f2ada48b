// Whether a model fits in a page, decided from its GGUF header before any tensor is read: kiln's own estimate of
// inference memory (weights as stored + the f16 KV cache at the chosen context + compute buffers; no runtime
// overhead, the page has already paid its own) against what the page may allocate, and the pieces that must each
// fit one WebAssembly memory (at most 4 GiB): every tensor (placeInArenas puts each whole in one, beside scratch)
// and the KV cache (one memory of its own).

import { estimateInference, type Estimate } from '../estimate/estimate.js';
import { GiB, formatGiB } from '../estimate/format.js';
import type { GGUFHeader } from '../gguf/types.js';
import { ALIGN, SPARE, WEIGHTS_START } from '../kernels/arena.js';
import { MAX_PAGES, PAGE } from '../kernels/wasm-module.js';
import { SCRATCH_RESERVE } from '../kernels/wasm-weights.js';

export class PageMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PageMemoryError';
  }
}

/** What a page may allocate in all, and where that figure comes from (for the message). */
export interface PageLimit {
  bytes: number;
  source: string;
}

/** "12.3 MiB" below a GiB, else "1.23 GiB" */
const size = (bytes: number) => (bytes < GiB ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : formatGiB(bytes));

/** Bytes one WebAssembly memory holds past the kernels' reserved area. */
const MEMORY_BYTES = MAX_PAGES * PAGE - WEIGHTS_START;

/** The estimate of running `header` with `ctx` positions; throws PageMemoryError where the page cannot hold it. */
export function checkPageMemory(header: GGUFHeader, name: string, ctx: number, limit?: PageLimit): Estimate {
  const estimate = estimateInference(header, ctx, 1, 'f16', 0);
  const refuse = (why: string) => new PageMemoryError(`${name} cannot run in this page: ${why}`);
  const largest = header.tensors.reduce((a, b) => (b.nBytes > a.nBytes ? b : a));
  if (largest.nBytes + ALIGN + SPARE > MEMORY_BYTES - SCRATCH_RESERVE) {
    throw refuse(`its tensor "${largest.name}" takes ${size(largest.nBytes)}, more than one WebAssembly memory holds beside its scratch (${size(MEMORY_BYTES - SCRATCH_RESERVE)})`);
  }
  const bytesOf = (id: string) => estimate.terms.find((t) => t.id === id)!.bytes;
  const kv = bytesOf('kv_cache');
  if (kv + SPARE > MEMORY_BYTES) throw refuse(`its KV cache at a context of ${ctx} takes ${size(kv)}, more than one WebAssembly memory holds (${size(MEMORY_BYTES)}): choose a shorter context`);
  if (limit && estimate.total > limit.bytes) {
    throw refuse(`it needs ${size(estimate.total)} at a context of ${ctx} (weights ${size(bytesOf('weights'))}, KV cache ${size(kv)}, ` +
      `compute buffers ${size(bytesOf('activations'))}), more than the ${size(limit.bytes)} it may use (${limit.source})`);
  }
  return estimate;
}
