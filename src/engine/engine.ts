// The serving engine (vLLM's LLMEngine): requests are submitted at any time and advance together, one
// forward pass per step. A step schedules (scheduler.ts), builds one batch of all scheduled tokens,
// runs the model once, then samples the next token of every sequence whose computed tokens caught up
// with its known ones, checks its stop conditions and streams a CompletionDelta to its request.
// A run loop steps while there is work, yielding to the event loop between steps.

import type { Model } from '../generate/model.js';
import type { KVCache } from '../generate/kv-cache.js';
import { DEFAULT_BLOCK_SIZE } from '../generate/kv-cache.js';
import type { ForwardBatch } from '../generate/inference-ops.js';
import { Sampler, SamplingError, logSoftmax, topLogprobs } from '../generate/sampler.js';
import { StopMatcher, StopStringError } from '../generate/stop.js';
import { StreamDecoder } from '../tokenizer/index.js';
import { BlockManager, BlockTable } from './block-manager.js';
import { Scheduler, type ScheduledChunk } from './scheduler.js';
import type {
  CompletionDelta, EngineStats, FinishReason, RequestMetrics, RequestParams, ServingEngine, SubmitRequest, TokenLogprobs,
} from './types.js';

export interface EngineOptions {
  /** running sequences at most (default 16) */
  maxNumSeqs?: number;
  /** tokens in one step's batch at most (default 512) */
  maxNumBatchedTokens?: number;
  /** context length per sequence (default: the model's, at most 2048) */
  maxModelLength?: number;
  /** KV blocks in the pool (default: enough for maxNumSeqs full contexts, or what kvCacheBytes holds) */
  numBlocks?: number;
  /** size budget of the KV cache, used when numBlocks is not given */
  kvCacheBytes?: number;
  /** positions per KV block (default 16) */
  blockSize?: number;
  /** reuse the KV blocks of prompt prefixes seen before (default true) */
  enablePrefixCaching?: boolean;
}

export class EngineConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineConfigError';
  }
}

/** A request the engine cannot run (its tokens, lengths or parameters); nothing was queued. */
export class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

export class EngineClosedError extends Error {
  constructor() {
    super('the engine is closed');
    this.name = 'EngineClosedError';
  }
}

/** seconds since the epoch, sub-millisecond */
const now = (): number => (performance.timeOrigin + performance.now()) / 1000;

/** Deltas of one request, waiting for its consumer. */
class DeltaQueue {
  private readonly items: CompletionDelta[] = [];
  private done = false;
  private error: unknown;
  private wake: (() => void) | undefined;

  push(delta: CompletionDelta): void { this.items.push(delta); this.notify(); }
  end(): void { this.done = true; this.notify(); }
  fail(error: unknown): void { this.error = error; this.done = true; this.notify(); }
  get ended(): boolean { return this.done; }

  async next(): Promise<CompletionDelta | undefined> {
    for (;;) {
      const item = this.items.shift();
      if (item) return item;
      if (this.error !== undefined) throw this.error;
      if (this.done) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

type ResolvedParams = RequestParams & { n: number; topLogprobs: number; ignoreEos: boolean };

class Request {
  readonly sequences: Sequence[] = [];
  readonly deltas = new DeltaQueue();
  /** completions that have finished */
  finished = 0;
  aborted = false;
  /** stops listening to the request's abort signal */
  detach?: () => void;

  constructor(
    readonly id: string, readonly params: ResolvedParams, readonly metrics: RequestMetrics,
    readonly onDelta?: (delta: CompletionDelta) => void,
  ) {}

  push(delta: CompletionDelta): void {
    this.onDelta?.(delta);
    this.deltas.push(delta);
  }
}

/** One completion: its tokens, blocks, sampler and text state. */
class Sequence {
  /** completions still to fork off this one when its prompt's first token is sampled */
  forks: number;
  generated = 0;
  /** whether a chunk of it was ever scheduled */
  admitted = false;
  done = false;
  readonly decoder: StreamDecoder;
  readonly stop: StopMatcher;

  constructor(
    readonly request: Request, readonly index: number, readonly tokens: number[], readonly blocks: BlockTable,
    readonly sampler: Sampler, model: Model,
  ) {
    this.forks = index === 0 ? request.params.n - 1 : 0;
    this.decoder = new StreamDecoder(model.tokenizer);
    this.stop = new StopMatcher(request.params.stop ?? []);
  }

  get width(): number { return 1 + this.forks; }
}

export class LLMEngine implements ServingEngine {
  readonly maxModelLength: number;
  readonly cache: KVCache;
  readonly blocks: BlockManager;
  private readonly scheduler: Scheduler<Sequence>;
  private readonly maxNumSeqs: number;
  private readonly requests = new Map<string, Request>();
  private nextId = 0;
  private looping = false;
  private closed = false;
  private idle: (() => void)[] = [];

  constructor(readonly model: Model, options: EngineOptions = {}) {
    const maxNumSeqs = positiveInt('maxNumSeqs', options.maxNumSeqs ?? 16);
    const maxNumBatchedTokens = positiveInt('maxNumBatchedTokens', options.maxNumBatchedTokens ?? 512);
    const blockSize = positiveInt('blockSize', options.blockSize ?? DEFAULT_BLOCK_SIZE);
    // a longer context than the model was trained for runs (rope extrapolates), usually worse: callers warn
    this.maxModelLength = positiveInt('maxModelLength', options.maxModelLength ?? Math.min(model.hparams.contextLength, 2048));
    const blocksPerSequence = Math.ceil(this.maxModelLength / blockSize);
    const numBlocks = positiveInt('numBlocks', options.numBlocks ?? this.blocksForBudget(options.kvCacheBytes, blockSize) ?? maxNumSeqs * blocksPerSequence);
    if (numBlocks < blocksPerSequence) {
      throw new EngineConfigError(`${numBlocks} KV blocks cannot hold one sequence of ${this.maxModelLength} positions (${blocksPerSequence} blocks)`);
    }
    this.cache = model.createCache(numBlocks * blockSize, blockSize);
    this.blocks = new BlockManager(this.cache, options.enablePrefixCaching ?? true);
    this.scheduler = new Scheduler(this.blocks, { maxNumSeqs, maxNumBatchedTokens });
    this.maxNumSeqs = maxNumSeqs;
  }

  /** blocks that fit in `bytes`, if a budget was given */
  private blocksForBudget(bytes: number | undefined, blockSize: number): number | undefined {
    if (bytes === undefined) return undefined;
    const hp = this.model.hparams;
    const bytesPerBlock = 2 * hp.blockCount * blockSize * hp.headCountKv * (hp.keyLength + hp.valueLength); // f16 K and V
    return Math.floor(bytes / bytesPerBlock);
  }

  submit(request: SubmitRequest): AsyncIterable<CompletionDelta> & { readonly id: string; readonly metrics: RequestMetrics } {
    if (this.closed) throw new EngineClosedError();
    const id = request.id ?? `req-${this.nextId++}`;
    if (this.requests.has(id)) throw new InvalidRequestError(`request id ${id} is already running`);
    const params = this.checkParams(request);
    const metrics: RequestMetrics = { arrivalTime: now(), promptTokens: request.prompt.length, completionTokens: 0, cachedPromptTokens: 0 };
    const req = new Request(id, params, metrics, request.onDelta);
    // a prompt adapter's virtual tokens stand before the prompt
    const first = new Sequence(req, 0, [...this.model.promptPrefix, ...request.prompt], new BlockTable(this.cache.blockSize), this.samplerFor(req, 0), this.model);
    req.sequences.push(first);
    this.requests.set(id, req);
    this.scheduler.add(first);
    const signal = request.signal;
    if (signal?.aborted) req.aborted = true;
    else if (signal) {
      const onAbort = () => this.abort(id);
      signal.addEventListener('abort', onAbort, { once: true });
      req.detach = () => signal.removeEventListener('abort', onAbort);
    }
    this.wake();
    const engine = this;
    return {
      id,
      metrics,
      async *[Symbol.asyncIterator]() {
        try {
          for (let delta = await req.deltas.next(); delta; delta = await req.deltas.next()) yield delta;
        } finally {
          if (!req.deltas.ended) engine.abort(id); // the consumer stopped listening
        }
      },
    };
  }

  abort(id: string): void {
    const req = this.requests.get(id);
    if (!req) return;
    req.aborted = true;
    this.wake();
  }

  stats(): EngineStats {
    const usage = this.blocks.usage();
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waiting.length,
      kvBlocksUsed: usage.used,
      kvBlocksFree: usage.free,
      kvBlocksTotal: usage.total,
      prefixCacheHitRate: this.scheduler.prefixCacheHitRate,
      preemptions: this.scheduler.preemptions,
    };
  }

  /** Running sequences, oldest first, read-only (the inspector page shows their KV block tables). */
  get running(): readonly { readonly request: { readonly id: string }; readonly index: number; readonly tokens: readonly number[]; readonly blocks: BlockTable }[] { return this.scheduler.running; }

  /** Aborts every request and resolves once the run loop has stopped. */
  close(): Promise<void> {
    this.closed = true;
    for (const id of this.requests.keys()) this.abort(id);
    if (!this.looping) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Steps until every submitted request has finished, without yielding (for synchronous callers). */
  runUntilIdle(): void {
    try {
      while (this.requests.size > 0) this.step();
    } catch (error) {
      this.failAll(error);
      throw error;
    }
  }

  /** One iteration: schedule, one forward pass, sample and stream. */
  step(): void {
    this.finishAborted();
    const preemptions = this.scheduler.preemptions;
    const chunks = this.scheduler.schedule();
    if (chunks.length === 0) {
      // a step may only preempt; scheduling nothing at all with work queued would spin forever
      if (this.scheduler.hasWork && this.scheduler.preemptions === preemptions) throw new Error('the scheduler made no progress');
      return;
    }
    const logits = this.model.forward(this.cache, buildBatch(chunks));
    const vocab = this.model.vocabSize;
    let row = 0;
    for (const { seq, start, count } of chunks) {
      this.blocks.commit(seq.blocks, seq.tokens, start + count);
      if (!seq.admitted) {
        seq.admitted = true;
        // a prompt's first chunk starts after its cached prefix
        if (seq.index === 0) seq.request.metrics.cachedPromptTokens = start;
      }
      if (start + count < seq.tokens.length) continue; // prefill continues next step
      this.advance(seq, logits.subarray(row * vocab, (row + 1) * vocab));
      row++;
    }
  }

  private wake(): void {
    if (this.looping) return;
    this.looping = true;
    setImmediate(this.loop);
  }

  private readonly loop = (): void => {
    try {
      this.step();
    } catch (error) {
      this.failAll(error);
    }
    if (this.requests.size > 0) {
      setImmediate(this.loop);
      return;
    }
    this.looping = false;
    for (const resolve of this.idle.splice(0)) resolve();
  };

  /** The sequence's computed tokens caught up: sample its next token (forking n > 1 completions first). */
  private advance(seq: Sequence, logits: Float32Array): void {
    const req = seq.request;
    req.metrics.firstTokenTime ??= now();
    const siblings = [seq];
    for (; seq.forks > 0; seq.forks--) {
      const index = req.params.n - seq.forks;
      const child = new Sequence(req, index, [...seq.tokens], this.blocks.fork(seq.blocks), this.samplerFor(req, index), this.model);
      req.sequences.push(child);
      this.scheduler.addRunning(child);
      siblings.push(child);
    }
    for (const s of siblings) this.sampleNext(s, logits);
  }

  private sampleNext(seq: Sequence, logits: Float32Array): void {
    const { params, metrics } = seq.request;
    const token = seq.sampler.sample(logits, seq.tokens);
    seq.sampler.accept(token);
    if (!params.ignoreEos && this.model.tokenizer.isEog(token)) {
      this.finish(seq, 'stop', { tokens: [], text: seq.stop.flush(seq.decoder.flush()) });
      return;
    }
    seq.tokens.push(token);
    seq.generated++;
    metrics.completionTokens++;
    const logprobs = params.topLogprobs > 0 ? [tokenLogprobs(logits, token, params.topLogprobs)] : undefined;
    const piece = seq.stop.push(seq.decoder.push(token));
    const delta = { tokens: [token], text: piece.text, logprobs };
    if (piece.stopped) this.finish(seq, 'stop', delta);
    else if (seq.generated >= params.maxTokens || seq.tokens.length >= this.maxModelLength) {
      this.finish(seq, 'length', { ...delta, text: delta.text + seq.stop.flush(seq.decoder.flush()) });
    } else this.emit(seq, delta);
  }

  private emit(seq: Sequence, delta: Omit<CompletionDelta, 'requestId' | 'index'>): void {
    const out: CompletionDelta = { requestId: seq.request.id, index: seq.index, tokens: delta.tokens, text: delta.text };
    if (delta.logprobs) out.logprobs = delta.logprobs;
    if (delta.finishReason) out.finishReason = delta.finishReason;
    seq.request.push(out);
  }

  /** Emits the completion's last delta and frees its blocks; ends the request after its last completion. */
  private finish(seq: Sequence, reason: FinishReason, delta: Omit<CompletionDelta, 'requestId' | 'index' | 'finishReason'>): void {
    seq.done = true;
    this.scheduler.remove(seq);
    this.emit(seq, { ...delta, finishReason: reason });
    const req = seq.request;
    req.finished++;
    // an aborted prompt that never forked ends its unborn completions as well
    for (; seq.forks > 0; seq.forks--) {
      req.push({ requestId: req.id, index: req.params.n - seq.forks, tokens: [], text: '', finishReason: reason });
      req.finished++;
    }
    if (req.finished < req.params.n) return;
    req.metrics.finishedTime = now();
    this.requests.delete(req.id);
    req.detach?.();
    req.deltas.end();
  }

  private finishAborted(): void {
    for (const req of [...this.requests.values()]) {
      if (!req.aborted) continue;
      for (const seq of req.sequences) if (!seq.done) this.finish(seq, 'abort', { tokens: [], text: '' });
    }
  }

  /** A failed step fails every request: their streams throw the error, their blocks are freed. */
  private failAll(error: unknown): void {
    for (const req of this.requests.values()) {
      for (const seq of req.sequences) if (!seq.done) this.scheduler.remove(seq);
      req.detach?.();
      req.deltas.fail(error);
    }
    this.requests.clear();
  }

  private samplerFor(req: Request, index: number): Sampler {
    const { seed } = req.params.sampling;
    // completion i of a seeded request draws from seed + i, so n = 1 output equals completion 0 of n > 1
    return new Sampler({ ...req.params.sampling, seed: seed === undefined ? undefined : seed + index }, this.model.vocabSize);
  }

  private checkParams(request: SubmitRequest): ResolvedParams {
    const { prompt, params } = request;
    const vocab = this.model.vocabSize;
    if (!Array.isArray(prompt) || prompt.length === 0) throw new InvalidRequestError('the prompt has no tokens');
    for (const token of prompt) {
      if (!Number.isInteger(token) || token < 0 || token >= vocab) throw new InvalidRequestError(`prompt token ${token} is not an id below ${vocab}`);
    }
    const virtual = this.model.promptPrefix.length;
    if (virtual + prompt.length >= this.maxModelLength) {
      const tokens = virtual ? `${prompt.length} tokens after ${virtual} virtual ones` : `${prompt.length} tokens`;
      throw new InvalidRequestError(`the prompt has ${tokens}; the context holds ${this.maxModelLength}, leaving no room to generate`);
    }
    const n = params.n ?? 1;
    if (!Number.isSafeInteger(n) || n < 1 || n > this.maxNumSeqs) throw new InvalidRequestError(`n must be an integer from 1 to ${this.maxNumSeqs}, got ${n}`);
    if (!Number.isSafeInteger(params.maxTokens) || params.maxTokens < 1) throw new InvalidRequestError(`maxTokens must be a positive integer, got ${params.maxTokens}`);
    const topLogprobs = params.topLogprobs ?? 0;
    if (!Number.isSafeInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > vocab) {
      throw new InvalidRequestError(`topLogprobs must be an integer from 0 to ${vocab}, got ${topLogprobs}`);
    }
    try {
      new Sampler(params.sampling, vocab);
      new StopMatcher(params.stop ?? []);
    } catch (error) {
      if (error instanceof SamplingError || error instanceof StopStringError) throw new InvalidRequestError(error.message);
      throw error;
    }
    return { ...params, n, topLogprobs, ignoreEos: params.ignoreEos ?? false };
  }
}

/** One batch of every scheduled chunk's tokens; the logits wanted are the last row of each chunk that completes its sequence. */
function buildBatch(chunks: ScheduledChunk<Sequence>[]): ForwardBatch {
  const total = chunks.reduce((sum, c) => sum + c.count, 0);
  const batch: ForwardBatch = {
    tokens: new Int32Array(total), // [total]
    positions: new Int32Array(total), // [total]
    sequences: [],
    outputRows: [],
  };
  let row = 0;
  for (const { seq, start, count } of chunks) {
    for (let p = start; p < start + count; p++, row++) {
      batch.tokens[row] = seq.tokens[p];
      batch.positions[row] = p;
      batch.sequences.push(seq.blocks);
    }
    if (start + count === seq.tokens.length) batch.outputRows.push(row - 1);
  }
  return batch;
}

function tokenLogprobs(logits: Float32Array, token: number, k: number): TokenLogprobs {
  return { token, logprob: logSoftmax(logits)[token], top: topLogprobs(logits, k) };
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new EngineConfigError(`${name} must be a positive integer, got ${value}`);
  return value;
}
