// The serving engine (vLLM's LLMEngine): requests are submitted at any time and advance together, one
// forward pass per step. A step schedules (scheduler.ts), builds one batch of all scheduled tokens,
// runs the model once, then samples the next token of every sequence whose computed tokens caught up
// with its known ones, checks its stop conditions and streams a CompletionDelta to its request.
// A run loop steps while there is work, yielding to the event loop between steps. Inputs to embed
// (embedding.ts) share the steps: each is computed whole in one, and its pooled hidden states delivered.

import type { Model } from '../generate/model.js';
import type { KVCache } from '../generate/kv-cache.js';
import { DEFAULT_BLOCK_SIZE } from '../generate/kv-cache.js';
import type { ForwardBatch } from '../generate/inference-ops.js';
import { Sampler, SamplingError, logSoftmax, topLogprobs } from '../generate/sampler.js';
import { outputProcessors } from '../generate/output-constraints.js';
import { StopMatcher, StopStringError } from '../generate/stop.js';
import { StreamDecoder } from '../tokenizer/index.js';
import { defaultPooling, POOLINGS } from '../generate/embed.js';
import { BlockManager, BlockTable } from './block-manager.js';
import { Scheduler, type ScheduledChunk } from './scheduler.js';
import { EmbeddingSequence, RequestAbortedError } from './embedding.js';
import type {
  CompletionDelta, EmbeddingResult, EmbedRequest, EngineStats, FinishReason, RequestMetrics, RequestParams, ServingEngine, SubmitRequest,
  TokenLogprobs,
} from './types.js';

export interface EngineOptions {
  /** running sequences at most (default 16) */
  maxNumSeqs?: number;
  /** tokens in one step's batch at most (default 512); an input to embed that is longer runs as a step's first admission */
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

/** The context per sequence when none is asked for: the model's, at most 2048 (KV memory grows with it). */
export function defaultMaxModelLength(model: Model): number {
  return Math.min(model.hparams.contextLength, 2048);
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

/** A prompt that leaves no room in the context to generate (or, when maxTokens is given, not that much room). */
export class ContextLengthError extends InvalidRequestError {
  constructor(readonly promptTokens: number, readonly maxTokens: number | undefined, readonly contextLength: number) {
    super(
      maxTokens === undefined
        ? `the context holds ${contextLength} tokens and the prompt has ${promptTokens}, leaving no room to generate`
        : `the context holds ${contextLength} tokens, but this request needs ${promptTokens + maxTokens} ` +
            `(${promptTokens} in the prompt and ${maxTokens} to generate)`,
    );
    this.name = 'ContextLengthError';
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
export class DeltaQueue {
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

type ResolvedParams = RequestParams & { maxTokens: number; n: number; topLogprobs: number; ignoreEos: boolean };

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
  private readonly scheduler: Scheduler<Sequence | EmbeddingSequence>;
  private readonly maxNumSeqs: number;
  private readonly requests = new Map<string, Request>();
  private readonly embeddings = new Map<string, EmbeddingSequence>();
  private nextId = 0;
  private looping = false;
  private closed = false;
  private idle: (() => void)[] = [];

  constructor(readonly model: Model, options: EngineOptions = {}) {
    const maxNumSeqs = positiveInt('maxNumSeqs', options.maxNumSeqs ?? 16);
    const maxNumBatchedTokens = positiveInt('maxNumBatchedTokens', options.maxNumBatchedTokens ?? 512);
    const blockSize = positiveInt('blockSize', options.blockSize ?? DEFAULT_BLOCK_SIZE);
    // a longer context than the model was trained for runs (rope extrapolates), usually worse: callers warn
    this.maxModelLength = positiveInt('maxModelLength', options.maxModelLength ?? defaultMaxModelLength(model));
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
    const bytesPerBlock = 2 * blockSize * this.model.cacheValuesPerPosition; // f16 keys and values
    return Math.floor(bytes / bytesPerBlock);
  }

  submit(request: SubmitRequest): AsyncIterable<CompletionDelta> & { readonly id: string; readonly metrics: RequestMetrics } {
    if (this.closed) throw new EngineClosedError();
    this.model.requireLanguageModelHead();
    const id = this.requestId(request.id);
    const params = resolveParams(request, this.limits);
    const metrics: RequestMetrics = { arrivalTime: now(), promptTokens: request.prompt.length, completionTokens: 0, cachedPromptTokens: 0 };
    const req = new Request(id, params, metrics, request.onDelta);
    // a prompt adapter's virtual tokens stand before the prompt
    const first = new Sequence(req, 0, [...this.model.promptPrefix, ...request.prompt], new BlockTable(this.cache.blockSize), this.samplerFor(req, 0), this.model);
    req.sequences.push(first);
    this.requests.set(id, req);
    this.scheduler.add(first);
    req.detach = this.follow(request.signal, id);
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

  embed(request: EmbedRequest): Promise<EmbeddingResult> {
    if (this.closed) throw new EngineClosedError();
    const id = this.requestId(request.id);
    const tokens = checkInput(request.tokens, this.limits);
    const pooling = request.pooling ?? defaultPooling(this.model);
    if (!POOLINGS.includes(pooling)) throw new InvalidRequestError(`pooling must be one of ${POOLINGS.join(', ')}, got ${pooling}`);
    const metrics: RequestMetrics = { arrivalTime: now(), promptTokens: tokens.length, completionTokens: 0, cachedPromptTokens: 0 };
    const seq = new EmbeddingSequence(id, tokens, pooling, request.normalize ?? true, this.cache.blockSize, metrics);
    this.embeddings.set(id, seq);
    this.scheduler.add(seq);
    seq.detach = this.follow(request.signal, id);
    this.wake();
    return seq.result;
  }

  get limits(): EngineLimits {
    return { vocabSize: this.model.vocabSize, promptPrefixLength: this.model.promptPrefix.length, maxModelLength: this.maxModelLength, maxNumSeqs: this.maxNumSeqs };
  }

  get generates(): boolean { return this.model.generates; }
  get embeddingLength(): number { return this.model.hparams.embeddingLength; }

  abort(id: string): void {
    const target = this.requests.get(id) ?? this.embeddings.get(id);
    if (!target) return;
    target.aborted = true;
    this.wake();
  }

  /** Aborts request `id` when `signal` fires (now, if it has); returns how to stop listening. */
  private follow(signal: AbortSignal | undefined, id: string): (() => void) | undefined {
    if (!signal) return undefined;
    if (signal.aborted) {
      this.abort(id);
      return undefined;
    }
    const onAbort = () => this.abort(id);
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  private requestId(given: string | undefined): string {
    const id = given ?? `req-${this.nextId++}`;
    if (this.requests.has(id) || this.embeddings.has(id)) throw new InvalidRequestError(`request id ${id} is already running`);
    return id;
  }

  /** whether any request is unfinished */
  private get busy(): boolean { return this.requests.size + this.embeddings.size > 0; }

  stats(): EngineStats {
    const usage = this.blocks.usage();
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waitingWidth,
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
    for (const id of [...this.requests.keys(), ...this.embeddings.keys()]) this.abort(id);
    if (!this.looping) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Steps until every submitted request has finished, without yielding (for synchronous callers). */
  runUntilIdle(): void {
    try {
      while (this.busy) this.step();
    } catch (error) {
      this.failAll(error);
      throw error;
    }
  }

  /** One iteration: schedule, one forward pass, sample and stream; pool and deliver the embeddings. */
  step(): void {
    this.finishAborted();
    const preemptions = this.scheduler.preemptions;
    const chunks = this.scheduler.schedule();
    if (chunks.length === 0) {
      // a step may only preempt; scheduling nothing at all with work queued would spin forever
      if (this.scheduler.hasWork && this.scheduler.preemptions === preemptions) throw new Error('the scheduler made no progress');
      return;
    }
    const { batch, logitRows } = buildBatch(chunks);
    const { hidden, logits } = this.model.forwardOutputs(this.cache, batch, logitRows);
    const vocab = this.model.vocabSize, dim = this.model.hparams.embeddingLength;
    let row = 0, logitRow = 0; // the next output row, and the next row of logits
    for (const { seq, start, count } of chunks) {
      if (seq instanceof EmbeddingSequence) {
        const rows = seq.outputRows.length;
        this.finishEmbedding(seq, hidden.subarray(row * dim, (row + rows) * dim));
        row += rows;
        continue;
      }
      if (seq.done) { // its request failed earlier in this step
        logitRow += start + count === seq.tokens.length ? 1 : 0;
        row += start + count === seq.tokens.length ? 1 : 0;
        continue;
      }
      this.blocks.commit(seq.blocks, seq.tokens, start + count);
      if (!seq.admitted) {
        seq.admitted = true;
        // a prompt's first chunk starts after its cached prefix
        if (seq.index === 0) seq.request.metrics.cachedPromptTokens = start;
      }
      if (start + count < seq.tokens.length) continue; // prefill continues next step
      this.advance(seq, logits.subarray(logitRow * vocab, (logitRow + 1) * vocab));
      row++;
      logitRow++;
    }
  }

  /** Delivers the embedding pooled from its hidden states [outputRows, dim] and frees its blocks. */
  private finishEmbedding(seq: EmbeddingSequence, hidden: Float32Array): void {
    this.scheduler.remove(seq);
    this.embeddings.delete(seq.request.id);
    seq.finish(hidden, this.model.hparams.embeddingLength, now());
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
    if (this.busy) {
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
    for (const s of siblings) if (!s.done) this.sampleNext(s, logits);
  }

  private sampleNext(seq: Sequence, logits: Float32Array): void {
    const { params, metrics } = seq.request;
    let token: number;
    try {
      token = seq.sampler.sample(logits, seq.tokens);
      seq.sampler.accept(token);
    } catch (error) {
      // a logits processor that leaves no token (a grammar no token can continue) fails its request, not the step
      if (!(error instanceof SamplingError)) throw error;
      this.failRequest(seq.request, error);
      return;
    }
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
    for (const seq of [...this.embeddings.values()]) if (seq.aborted) this.dropEmbedding(seq, new RequestAbortedError(seq.request.id));
  }

  /** Ends one request with `error`: its stream throws it, its blocks are freed. */
  private failRequest(req: Request, error: unknown): void {
    for (const seq of req.sequences) {
      if (!seq.done) this.scheduler.remove(seq);
      seq.done = true;
    }
    req.detach?.();
    req.deltas.fail(error);
    this.requests.delete(req.id);
  }

  private dropEmbedding(seq: EmbeddingSequence, error: unknown): void {
    this.scheduler.remove(seq);
    this.embeddings.delete(seq.request.id);
    seq.fail(error);
  }

  /** A failed step fails every request: their streams throw the error, their blocks are freed. */
  private failAll(error: unknown): void {
    for (const req of [...this.requests.values()]) this.failRequest(req, error);
    for (const seq of [...this.embeddings.values()]) this.dropEmbedding(seq, error);
  }

  private samplerFor(req: Request, index: number): Sampler {
    const { seed } = req.params.sampling;
    // completion i of a seeded request draws from seed + i, so n = 1 output equals completion 0 of n > 1
    const processors = [...outputProcessors(req.params.output, this.model.tokenizer, req.params.maxTokens), ...(req.params.logitsProcessors?.() ?? [])];
    return new Sampler({ ...req.params.sampling, seed: seed === undefined ? undefined : seed + index }, this.model.vocabSize, processors);
  }
}

/** What a request is checked against, on whichever side of a thread boundary it is submitted. */
export interface EngineLimits {
  vocabSize: number;
  /** a prompt adapter's virtual tokens before every prompt */
  promptPrefixLength: number;
  maxModelLength: number;
  maxNumSeqs: number;
}

/** an input to embed: token ids of the vocabulary, within the context */
export function checkInput(tokens: readonly number[], limits: EngineLimits): number[] {
  const vocab = limits.vocabSize;
  if (!Array.isArray(tokens) || tokens.length === 0) throw new InvalidRequestError('the input to embed has no tokens');
  const bad = tokens.find((token) => !Number.isInteger(token) || token < 0 || token >= vocab);
  if (bad !== undefined) throw new InvalidRequestError(`input token ${bad} is not an id below ${vocab}`);
  if (tokens.length > limits.maxModelLength) throw new InvalidRequestError(`the input has ${tokens.length} tokens; the context holds ${limits.maxModelLength}`);
  return [...tokens];
}

/** A request's parameters with their defaults, or InvalidRequestError (nothing queued). */
export function resolveParams(request: SubmitRequest, limits: EngineLimits): ResolvedParams {
  const { prompt, params } = request;
  const vocab = limits.vocabSize;
  if (!Array.isArray(prompt) || prompt.length === 0) throw new InvalidRequestError('the prompt has no tokens');
  for (const token of prompt) {
    if (!Number.isInteger(token) || token < 0 || token >= vocab) throw new InvalidRequestError(`prompt token ${token} is not an id below ${vocab}`);
  }
  const virtual = limits.promptPrefixLength;
  if (virtual + prompt.length >= limits.maxModelLength) throw new ContextLengthError(virtual + prompt.length, undefined, limits.maxModelLength);
  const n = params.n ?? 1;
  if (!Number.isSafeInteger(n) || n < 1 || n > limits.maxNumSeqs) throw new InvalidRequestError(`n must be an integer from 1 to ${limits.maxNumSeqs}, got ${n}`);
  // without maxTokens the context bounds the completion
  const maxTokens = params.maxTokens ?? limits.maxModelLength - virtual - prompt.length;
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new InvalidRequestError(`maxTokens must be a positive integer, got ${maxTokens}`);
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
  return { ...params, maxTokens, n, topLogprobs, ignoreEos: params.ignoreEos ?? false };
}

/**
 * One batch of every scheduled chunk's tokens. Its output rows: the last row of each chunk that completes a
 * sequence to generate (`logitRows` numbers those among the output rows), and the rows an embedding pools.
 */
function buildBatch(chunks: ScheduledChunk<Sequence | EmbeddingSequence>[]): { batch: ForwardBatch; logitRows: number[] } {
  const total = chunks.reduce((sum, c) => sum + c.count, 0);
  const batch: ForwardBatch = {
    tokens: new Int32Array(total), // [total]
    positions: new Int32Array(total), // [total]
    sequences: [],
    outputRows: [],
  };
  const logitRows: number[] = [];
  let row = 0;
  for (const { seq, start, count } of chunks) {
    for (let p = start; p < start + count; p++, row++) {
      batch.tokens[row] = seq.tokens[p];
      batch.positions[row] = p;
      batch.sequences.push(seq.blocks);
    }
    // an embedding's chunk is its whole sequence, from position 0
    if (seq instanceof EmbeddingSequence) batch.outputRows.push(...seq.outputRows.map((r) => row - count + r));
    else if (start + count === seq.tokens.length) {
      logitRows.push(batch.outputRows.length);
      batch.outputRows.push(row - 1);
    }
  }
  return { batch, logitRows };
}

function tokenLogprobs(logits: Float32Array, token: number, k: number): TokenLogprobs {
  return { token, logprob: logSoftmax(logits)[token], top: topLogprobs(logits, k) };
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new EngineConfigError(`${name} must be a positive integer, got ${value}`);
  return value;
}
