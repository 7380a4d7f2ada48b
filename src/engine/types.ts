// The serving engine's public contract: requests in, streamed outputs out. The engine (engine.ts) implements
// it on top of the scheduler, block manager and model runner; the server, `kiln run` and `LLM.generate` use it.

import type { SamplingParams } from '../generate/sampler.js';

export interface RequestParams {
  sampling: Partial<SamplingParams>;
  /** tokens to generate at most */
  maxTokens: number;
  stop?: string[];
  /** independent completions sharing the prompt's KV blocks */
  n?: number;
  /** log-probabilities of the top k tokens at each step (0 = none) */
  topLogprobs?: number;
  /** generate past end-of-generation tokens (default false) */
  ignoreEos?: boolean;
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

export interface RequestMetrics {
  arrivalTime: number;
  firstTokenTime?: number;
  finishedTime?: number;
  promptTokens: number;
  completionTokens: number;
  /** prompt tokens whose KV blocks came from the prefix cache */
  cachedPromptTokens: number;
}
