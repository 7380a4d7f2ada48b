// Running a model over one sequence: teacher-forced evaluation of a prompt and perplexity, and `generate`,
// a synchronous single-request front of the serving engine (src/engine), which is the one generation loop.

import type { Model } from './model.js';
import { BlockPool, SequenceBlocks, type KVCache } from './kv-cache.js';
import type { ForwardBatch, ForwardObserver } from './inference-ops.js';
import type { SamplingParams } from './sampler.js';
import { LLMEngine } from '../engine/engine.js';
import type { FinishReason } from '../engine/types.js';
import { expSum } from '../kernels/formulas.js';

export class ContextOverflowError extends Error {
  constructor(readonly needed: number, readonly contextLength: number) {
    super(`prompt and generation need ${needed} positions, but the context holds ${contextLength}`);
    this.name = 'ContextOverflowError';
  }
}

/** One sequence in its own cache: feeds tokens and returns the logits after each fed token that asks for them. */
export class SingleSequence {
  readonly cache: KVCache;
  private readonly pool: BlockPool;
  private readonly blocks: SequenceBlocks;

  constructor(private readonly model: Model, readonly contextLength: number) {
    this.cache = model.createCache(contextLength);
    this.pool = new BlockPool(this.cache.nBlocks);
    this.blocks = new SequenceBlocks(this.cache.blockSize);
  }

  get length(): number { return this.blocks.length; }

  /** Feeds `tokens` as one batch; returns logits [rows wanted, vocab] (all rows, or only the last). */
  feed(tokens: readonly number[], allLogits = false, observer?: ForwardObserver): Float32Array {
    return this.run(tokens, allLogits, (cache, batch) => this.model.forward(cache, batch, observer));
  }

  /** Feeds `tokens` as one batch; returns the final hidden states [rows wanted, dim] (all rows, or only the last). */
  feedHidden(tokens: readonly number[], allRows = true): Float32Array {
    return this.run(tokens, allRows, (cache, batch) => this.model.hiddenStates(cache, batch));
  }

  private run(tokens: readonly number[], allRows: boolean, forward: (cache: KVCache, batch: ForwardBatch) => Float32Array): Float32Array {
    const n = tokens.length;
    const start = this.blocks.length;
    if (start + n > this.contextLength) throw new ContextOverflowError(start + n, this.contextLength);
    this.pool.ensureCapacity(this.blocks, start + n);
    const out = forward(this.cache, {
      tokens: Int32Array.from(tokens),
      positions: Int32Array.from(tokens, (_, i) => start + i),
      sequences: new Array(n).fill(this.blocks),
      outputRows: allRows ? Array.from(tokens, (_, i) => i) : [n - 1],
    });
    this.blocks.length += n;
    return out;
  }

  reset(): void {
    this.pool.releaseAll(this.blocks);
  }
}

/** Logits after every prompt position (teacher forcing), [n, vocab]. */
export function evaluate(model: Model, tokens: readonly number[]): Float32Array {
  return new SingleSequence(model, tokens.length).feed(tokens, true);
}

/** log p(target) under softmax(logits), in float64 */
export function logProbability(logits: Float32Array, offset: number, nVocab: number, target: number): number {
  const [max, sum] = expSum(logits, offset, nVocab);
  return logits[offset + target] - max - Math.log(sum);
}

export interface PerplexityResult {
  ppl: number;
  /** standard error of the ppl estimate */
  pplError: number;
  chunks: number;
  scoredTokens: number;
}

/** The first position scored in a chunk of `ctx` tokens: only the second half counts (as llama.cpp). */
export function firstScored(ctx: number): number {
  return ctx >> 1;
}

/**
 * The chunks perplexity scores: the text tokenized once (with the special tokens the model adds), cut into chunks of
 * `ctx` tokens (at most `maxChunks`); where the model begins texts with BOS, each chunk's first token is replaced by
 * BOS (as llama-perplexity does; a gpt2 vocabulary, which adds no BOS, keeps its chunks as they are).
 */
export function perplexityChunks(model: Model, text: string, ctx: number, maxChunks = Infinity): number[][] {
  const tokens = model.tokenizer.encode(text, { addSpecial: true, parseSpecial: false });
  const nChunks = Math.min(maxChunks, Math.floor(tokens.length / ctx));
  if (nChunks < 1) throw new Error(`text has ${tokens.length} tokens, fewer than one chunk of ${ctx}`);
  const bos = model.tokenizer.addBos ? model.tokenizer.bosId : null;
  return Array.from({ length: nChunks }, (_, c) => {
    const chunk = tokens.slice(c * ctx, (c + 1) * ctx);
    if (bos !== null) chunk[0] = bos;
    return chunk;
  });
}

/**
 * Perplexity by llama.cpp's method: over perplexityChunks, positions firstScored(ctx) .. ctx−2 of each chunk
 * predict the next token. `onLogits` sees each chunk's tokens and logits [ctx, vocab] (for KL divergence).
 */
export function perplexity(
  model: Model, text: string, ctx: number, maxChunks = Infinity, onChunk?: (i: number, n: number, ppl: number) => void,
  onLogits?: (chunk: number, tokens: readonly number[], logits: Float32Array) => void,
): PerplexityResult {
  const chunks = perplexityChunks(model, text, ctx, maxChunks);
  const first = firstScored(ctx);
  const nVocab = model.vocabSize;
  let nll = 0, nll2 = 0, count = 0;
  chunks.forEach((chunk, c) => {
    const logits = evaluate(model, chunk);
    for (let i = first; i < ctx - 1; i++) {
      const lp = -logProbability(logits, i * nVocab, nVocab, chunk[i + 1]);
      nll += lp;
      nll2 += lp * lp;
      count++;
    }
    onLogits?.(c, chunk, logits);
    onChunk?.(c + 1, chunks.length, Math.exp(nll / count));
  });
  const mean = nll / count;
  const variance = nll2 / count - mean * mean;
  const ppl = Math.exp(mean);
  return { ppl, pplError: count > 1 ? ppl * Math.sqrt(variance / (count - 1)) : 0, chunks: chunks.length, scoredTokens: count };
}

export interface GenerateOptions {
  /** tokens to generate at most; absent: until an end-of-generation token or the context is full */
  maxTokens?: number;
  sampling: Partial<SamplingParams>;
  stop?: string[];
  /** called with each piece of text as soon as it is complete UTF-8 and clear of stop strings */
  onText?: (text: string) => void;
  /** context length to allocate (default: the model's, capped to a prompt adapter's virtual tokens + prompt + maxTokens when that is given) */
  contextLength?: number;
  /** end at an end-of-generation token (default true) */
  stopAtEog?: boolean;
}

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  /** seconds spent in prefill and in decoding */
  prefillSeconds: number;
  decodeSeconds: number;
}

/** One prompt, one completion, synchronously: a single request run to the end in its own serving engine. */
export function generate(model: Model, promptTokens: number[], options: GenerateOptions): GenerateResult {
  const { maxTokens } = options;
  // a prompt adapter's virtual tokens stand before the prompt (the engine puts them there); at least one token must fit after it
  const needed = model.promptPrefix.length + promptTokens.length + (maxTokens ?? 1);
  const ctx = options.contextLength ?? Math.min(model.hparams.contextLength, model.promptPrefix.length + promptTokens.length + (maxTokens ?? Infinity));
  if (needed > ctx) throw new ContextOverflowError(needed, ctx);
  const engine = new LLMEngine(model, { maxNumSeqs: 1, maxModelLength: ctx, enablePrefixCaching: false });
  const tokens: number[] = [];
  let text = '';
  let finishReason: FinishReason = 'length';
  const stream = engine.submit({
    prompt: promptTokens,
    params: { sampling: options.sampling, maxTokens, stop: options.stop, ignoreEos: options.stopAtEog === false },
    onDelta: (delta) => {
      tokens.push(...delta.tokens);
      text += delta.text;
      if (delta.text) options.onText?.(delta.text);
      if (delta.finishReason) finishReason = delta.finishReason;
    },
  });
  engine.runUntilIdle();
  const { arrivalTime, firstTokenTime = arrivalTime, finishedTime = firstTokenTime } = stream.metrics;
  return { promptTokens, tokens, text, finishReason, prefillSeconds: firstTokenTime - arrivalTime, decodeSeconds: finishedTime - firstTokenTime };
}
