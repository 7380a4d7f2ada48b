// Embedding requests in the serving engine (vLLM's pooling requests). An input is scheduled like a prompt but
// computed whole in one step (scheduler.ts), beside the other requests' chunks; its batch rows give the final
// hidden states that its pooling reads, which are pooled (src/generate/embed.ts) as soon as the step has run,
// and its KV blocks are freed in that same step.

import type { Pooling } from '../models/hparams.js';
import { poolEmbedding, pooledRows } from '../generate/embed.js';
import { BlockTable } from './block-manager.js';
import type { SchedulableSequence } from './scheduler.js';
import type { EmbeddingResult, RequestMetrics } from './types.js';

/** The request was aborted before its step ran. */
export class RequestAbortedError extends Error {
  constructor(readonly requestId: string) {
    super(`request ${requestId} was aborted`);
    this.name = 'RequestAbortedError';
  }
}

/** One input to embed, from its arrival until its vector is delivered. */
export class EmbeddingSequence implements SchedulableSequence {
  readonly width = 1;
  readonly whole = true;
  /** as a generation request's completion 0 (the inspector lists running sequences by request and index) */
  readonly index = 0;
  readonly request: { readonly id: string };
  readonly blocks: BlockTable;
  /** rows of the sequence (= of its chunk, which starts at position 0) whose hidden states the pooling reads */
  readonly outputRows: number[];
  readonly result: Promise<EmbeddingResult>;
  aborted = false;
  /** stops listening to the request's abort signal */
  detach?: () => void;
  private settle!: { resolve: (result: EmbeddingResult) => void; reject: (error: unknown) => void };

  constructor(
    id: string, readonly tokens: readonly number[], readonly pooling: Pooling, readonly normalize: boolean,
    blockSize: number, readonly metrics: RequestMetrics,
  ) {
    this.request = { id };
    this.blocks = new BlockTable(blockSize);
    this.outputRows = pooledRows(tokens.length, pooling);
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
  }


  /** Pools the hidden states [outputRows.length, dim] of its step and delivers the vector. */
  finish(hidden: Float32Array, dim: number, finishedTime: number): void {
    this.metrics.finishedTime = finishedTime;
    this.detach?.();
    this.settle.resolve({ requestId: this.request.id, embedding: poolEmbedding(hidden, dim, this.pooling, this.normalize), metrics: this.metrics });
  }

  fail(error: unknown): void {
    this.detach?.();
    this.settle.reject(error);
  }
}
