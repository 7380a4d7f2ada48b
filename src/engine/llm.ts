// The offline API, shaped like vLLM's: `new LLM({ model }).generate(prompts, new SamplingParams({...}))`
// runs every prompt through one engine at once and resolves to their outputs in prompt order; `embed(inputs)`
// does the same for sentence embeddings.

import { Model, type LoadOptions } from '../generate/model.js';
import type { SamplingParams as SamplerParams } from '../generate/sampler.js';
import type { Pooling } from '../models/hparams.js';
import { LLMEngine, type EngineOptions } from './engine.js';
import type { CompletionDelta, FinishReason, RequestMetrics, RequestParams, TokenLogprobs } from './types.js';

/** vLLM's sampling parameters, with vLLM's defaults. */
export interface SamplingParamsInit {
  /** completions per prompt */
  n?: number;
  temperature?: number;
  top_p?: number;
  /** 0 or −1: off */
  top_k?: number;
  min_p?: number;
  seed?: number;
  max_tokens?: number;
  stop?: string | string[];
  /** log-probabilities of this many most likely tokens at each step */
  logprobs?: number;
  ignore_eos?: boolean;
  /** divides positive (multiplies negative) logits of tokens already in prompt or output */
  repetition_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
}

export class SamplingParams {
  n = 1;
  temperature = 1.0;
  top_p = 1.0;
  top_k = 0;
  min_p = 0;
  seed: number | undefined = undefined;
  max_tokens = 16;
  stop: string[] = [];
  logprobs = 0;
  ignore_eos = false;
  repetition_penalty = 1.0;
  presence_penalty = 0;
  frequency_penalty = 0;

  constructor(init: SamplingParamsInit = {}) {
    const { stop, ...rest } = init;
    Object.assign(this, Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined)));
    if (stop !== undefined) this.stop = typeof stop === 'string' ? [stop] : [...stop];
  }

  /** the engine's form of these parameters */
  toRequestParams(): RequestParams {
    const sampling: Partial<SamplerParams> = {
      temperature: this.temperature,
      top_p: this.top_p,
      top_k: this.top_k,
      min_p: this.min_p,
      seed: this.seed,
      repeat_penalty: this.repetition_penalty,
      repeat_last_n: -1, // vLLM's penalties look at the whole sequence
      presence_penalty: this.presence_penalty,
      frequency_penalty: this.frequency_penalty,
    };
    return { sampling, maxTokens: this.max_tokens, stop: this.stop, n: this.n, topLogprobs: this.logprobs, ignoreEos: this.ignore_eos };
  }
}

export interface CompletionOutput {
  index: number;
  text: string;
  token_ids: number[];
  finish_reason: FinishReason;
  /** one entry per generated token, when SamplingParams.logprobs > 0 */
  logprobs?: TokenLogprobs[];
}

export interface RequestOutput {
  request_id: string;
  prompt: string;
  prompt_token_ids: number[];
  /** the n completions, by index */
  outputs: CompletionOutput[];
  metrics: RequestMetrics;
}

export interface EmbedOptions {
  /** default: the model's own, else mean for an encoder and last for a decoder */
  pooling?: Pooling;
  /** L2-normalize each vector (default true) */
  normalize?: boolean;
}

/** vLLM's EmbeddingRequestOutput: one input and its vector. */
export interface EmbeddingRequestOutput {
  request_id: string;
  /** the text, or null for an input given as token ids */
  prompt: string | null;
  prompt_token_ids: number[];
  outputs: { embedding: Float32Array };
  metrics: RequestMetrics;
}

/** The model (a GGUF path, loaded with the LoadOptions given: backend, lora, promptAdapter; or a loaded model) and the engine's options. */
export interface LLMOptions extends EngineOptions, LoadOptions {
  model: string | Model;
}

export class LLM {
  readonly model: Model;
  readonly engine: LLMEngine;

  constructor({ model, backend, lora, promptAdapter, ...options }: LLMOptions) {
    if (typeof model !== 'string' && (backend || lora || promptAdapter)) {
      throw new TypeError('backend, lora and promptAdapter apply when LLM loads the model from a path; pass them to Model.load instead');
    }
    this.model = typeof model === 'string' ? Model.load(model, { backend, lora, promptAdapter }) : model;
    this.engine = new LLMEngine(this.model, options);
  }

  /** Completes every prompt (tokenized with BOS, as `kiln run` does); outputs are in prompt order. */
  generate(prompts: string | string[], params: SamplingParams = new SamplingParams()): Promise<RequestOutput[]> {
    const list = typeof prompts === 'string' ? [prompts] : prompts;
    const requestParams = params.toRequestParams();
    return Promise.all(list.map((prompt) => this.complete(prompt, requestParams)));
  }

  /**
   * Embeds every input — texts (tokenized with the model's special tokens, e.g. [CLS] … [SEP]) or token-id
   * arrays — through the engine at once; outputs are in input order.
   */
  embed(inputs: string | string[] | number[] | number[][], options: EmbedOptions = {}): Promise<EmbeddingRequestOutput[]> {
    const list: (string | number[])[] = typeof inputs === 'string' ? [inputs]
      : inputs.length > 0 && inputs.every((x) => typeof x === 'number') ? [inputs as number[]] : inputs as (string | number[])[];
    const tokenized = list.map((input) => (typeof input === 'string' ? this.model.tokenizer.encode(input, { addSpecial: true, parseSpecial: true }) : input));
    return Promise.all(tokenized.map(async (tokens, i) => {
      const { requestId, embedding, metrics } = await this.engine.embed({ tokens, ...options });
      const input = list[i];
      return { request_id: requestId, prompt: typeof input === 'string' ? input : null, prompt_token_ids: tokens, outputs: { embedding }, metrics };
    }));
  }

  close(): Promise<void> {
    return this.engine.close();
  }

  private async complete(prompt: string, params: RequestParams): Promise<RequestOutput> {
    const promptTokens = this.model.tokenizer.encode(prompt, { addSpecial: true, parseSpecial: true });
    const stream = this.engine.submit({ prompt: promptTokens, params });
    const outputs = await collectCompletions(stream, params.n ?? 1);
    return { request_id: stream.id, prompt, prompt_token_ids: promptTokens, outputs, metrics: stream.metrics };
  }
}

/** Gathers a request's deltas into its n completions; `onDelta` sees each delta as it arrives. */
export async function collectCompletions(
  stream: AsyncIterable<CompletionDelta>, n: number, onDelta?: (delta: CompletionDelta) => void,
): Promise<CompletionOutput[]> {
  const outputs: CompletionOutput[] = Array.from({ length: n }, (_, index) => ({ index, text: '', token_ids: [], finish_reason: 'length' }));
  for await (const delta of stream) {
    onDelta?.(delta);
    const out = outputs[delta.index];
    out.text += delta.text;
    out.token_ids.push(...delta.tokens);
    if (delta.logprobs) (out.logprobs ??= []).push(...delta.logprobs);
    if (delta.finishReason) out.finish_reason = delta.finishReason;
  }
  return outputs;
}
