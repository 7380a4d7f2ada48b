// The serving engine's public contract: requests in, streamed outputs out. The engine (engine.ts) implements
// it on top of the scheduler, block manager and model runner; the server, `kiln run` and `LLM.generate` use it.

import type { SamplingParams } from '../generate/sampler.js';
import type { LogitsProcessor } from '../generate/logits-processor.js';
import type { OutputConstraints } from '../generate/output-constraints.js';
import type { Pooling } from '../models/hparams.js';

export interface RequestParams {
  sampling: Partial<SamplingParams>;
  /** tokens to generate at most; absent: until an end-of-generation token or the context is full */
  maxTokens?: number;
  stop?: string[];
  /** independent completions sharing the prompt's KV blocks */
  n?: number;
  /** log-probabilities of the top k tokens at each step (0 = none) */
  topLogprobs?: number;
  /** generate past end-of-generation tokens (default false) */
  ignoreEos?: boolean;
  /** logit bias and a grammar (plain data, so it crosses to the engine's worker): the first logits processors */
  output?: OutputConstraints;
  /** makes each completion's further logits processors, run in order before the sampling chain (in-process engines only) */
  logitsProcessors?: () => LogitsProcessor[];
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface TokenLogprobs {
  token: number;
  logprob: number;
  top: { token: number; logprob: number }[];
}

/** What one step produced for one of a request's n completions. */
export interface CompletionDelta {
  requestId: string;
  /** which of the n completions */
  index: number;
  /** new tokens since the last delta */
  tokens: number[];
  /** new text since the last delta (complete UTF-8, clear of stop strings) */
  text: string;
  logprobs?: TokenLogprobs[];
  /** set on the last delta of this completion */
  finishReason?: FinishReason;
}

/** times in seconds since the epoch */
export interface RequestMetrics {
  arrivalTime: number;
  firstTokenTime?: number;
  finishedTime?: number;
  promptTokens: number;
  completionTokens: number;
  /** prompt tokens whose KV blocks came from the prefix cache */
  cachedPromptTokens: number;
}

export interface EngineStats {
  running: number;
  /** sequences waiting, counting the n completions of each prompt */
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksFree: number;
  kvBlocksTotal: number;
  /** share of looked-up prompt blocks found in the prefix cache, since start */
  prefixCacheHitRate: number;
  preemptions: number;
}

export interface SubmitRequest {
  /** unique id (generated when absent) */
  id?: string;
  prompt: number[];
  params: RequestParams;
  /** aborting it aborts the request; its blocks are freed in the next step */
  signal?: AbortSignal;
  /** sees each delta as the step produces it (synchronously), before the stream yields it */
  onDelta?: (delta: CompletionDelta) => void;
}

/** One input to embed (vLLM's pooling request): its final hidden states, pooled. */
export interface EmbedRequest {
  /** unique id (generated when absent) */
  id?: string;
  tokens: number[];
  /** default: the model's own (`{arch}.pooling_type`), else mean for an encoder and last for a decoder */
  pooling?: Pooling;
  /** L2-normalize the pooled vector (default true) */
  normalize?: boolean;
  /** aborting it before its step runs rejects the request with RequestAbortedError */
  signal?: AbortSignal;
}

export interface EmbeddingResult {
  requestId: string;
  /** [embeddingLength] */
  embedding: Float32Array;
  metrics: RequestMetrics;
}

/** What the server, `kiln run` and `LLM.generate` see of the engine (implemented in engine.ts). */
export interface ServingEngine {
  /** streams the request's deltas until every one of its n completions has finished */
  submit(request: SubmitRequest): AsyncIterable<CompletionDelta> & { readonly id: string; readonly metrics: RequestMetrics };
  /** queues one input to embed, computed whole in one step beside other requests; resolves to its vector */
  embed(request: EmbedRequest): Promise<EmbeddingResult>;
  abort(id: string): void;
  stats(): EngineStats;
  /** whether the model generates (false: an encoder, which only embeds) */
  readonly generates: boolean;
  /** width of the model's embeddings (its hidden states) */
  readonly embeddingLength: number;
  /** context length per sequence */
  readonly maxModelLength: number;
  /** the inspector's view of the model and its KV blocks, where the engine offers one */
  readonly inspector?: EngineInspector;
  close(): Promise<void>;
}

/** A traced generation for the inspector page: `maxTokens` tokens after the prompt's text. */
export interface TraceRequest {
  prompt: string;
  maxTokens: number;
  sampling: Partial<SamplingParams>;
}

/** The inspector page's access to the engine (src/inspect/routes.ts implements it where the engine runs). */
export interface EngineInspector {
  /** the served model's trace (InspectTrace) on the reference kernels, within the server's limits */
  trace(request: TraceRequest): Promise<unknown>;
  /** the running sequences with their KV block tables and block owners */
  blocks(): Promise<unknown>;
}
