// The serving engine in a worker thread, as the HTTP front end sees it (vLLM's AsyncLLM talking to its EngineCore):
// requests are checked here against the engine's limits (so a bad one is refused at once, before any response is
// written), sent to the worker (engine-worker.ts) and streamed back; the engine's steps never run on this thread,
// so /health and /metrics answer while a long prefill runs. stats() is the worker's latest report.

import { Worker } from 'node:worker_threads';
import type { LoraSpec } from '../generate/lora-adapter.js';
import { checkInput, DeltaQueue, EngineClosedError, InvalidRequestError, resolveParams, type EngineLimits, type EngineOptions } from './engine.js';
import { RequestAbortedError } from './embedding.js';
import type {
  CompletionDelta, EmbeddingResult, EmbedRequest, EngineInspector, EngineStats, RequestMetrics, RequestParams, ServingEngine, SubmitRequest,
  TraceRequest,
} from './types.js';
import type { Pooling } from '../models/hparams.js';

/** How the worker loads its model and sets up its engine. */
export interface WorkerData {
  path: string;
  /** threads of the WASM backend (default: its own choice) */
  threads?: number;
  lora?: LoraSpec[];
  promptAdapter?: string;
  engine: EngineOptions;
}

type SerializedError = { name: string; message: string };

/** front end → worker */
export type ClientMessage =
  | { type: 'submit'; id: string; prompt: number[]; params: RequestParams }
  | { type: 'embed'; id: string; tokens: number[]; pooling?: Pooling; normalize?: boolean }
  | { type: 'abort'; id: string }
  | { type: 'call'; call: number; method: 'trace' | 'blocks'; request?: TraceRequest }
  | { type: 'close' };

/** worker → front end; `stats` rides along with every report of progress */
export type WorkerMessage =
  | { type: 'ready'; limits: EngineLimits; generates: boolean; embeddingLength: number; trainedContext: number; stats: EngineStats }
  | { type: 'deltas'; deltas: CompletionDelta[]; stats: EngineStats }
  | { type: 'finished'; id: string; metrics: RequestMetrics; stats: EngineStats }
  | { type: 'embedded'; id: string; result: EmbeddingResult; stats: EngineStats }
  | { type: 'failed'; id: string; error: SerializedError; stats: EngineStats }
  | { type: 'answer'; call: number; value?: unknown; error?: SerializedError }
  | { type: 'closed' };

/** A request in flight: a stream of deltas or one embedding. */
type Pending =
  | { kind: 'stream'; deltas: DeltaQueue; metrics: RequestMetrics }
  | { kind: 'embed'; resolve: (result: EmbeddingResult) => void; reject: (error: unknown) => void };

/** The worker's error as the class the front end tells apart (the rest keep their name and message). */
function revive(error: SerializedError): Error {
  const revived = error.name === 'RequestAbortedError' ? new RequestAbortedError('') : error.name === 'EngineClosedError' ? new EngineClosedError()
    : ['InvalidRequestError', 'ContextLengthError'].includes(error.name) ? new InvalidRequestError(error.message) : new Error(error.message);
  revived.name = error.name;
  revived.message = error.message;
  return revived;
}

export class EngineClient implements ServingEngine {
  private readonly pending = new Map<string, Pending>();
  private readonly calls = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  private latest: EngineStats;
  private nextId = 0;
  private nextCall = 0;
  private closed = false;
  private exited: Promise<void>;
  readonly inspector: EngineInspector;

  private constructor(
    private readonly worker: Worker, ready: Extract<WorkerMessage, { type: 'ready' }>,
  ) {
    this.limits = ready.limits;
    this.generates = ready.generates;
    this.embeddingLength = ready.embeddingLength;
    this.trainedContext = ready.trainedContext;
    this.latest = ready.stats;
    worker.on('message', (message: WorkerMessage) => this.receive(message));
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    // a worker that dies fails everything in flight
    worker.on('error', (error) => this.failAll(error));
    worker.once('exit', (code) => {
      if (!this.closed) this.failAll(new Error(`the engine's worker thread exited (code ${code})`));
    });
    this.inspector = {
      trace: (request) => this.call('trace', request),
      blocks: () => this.call('blocks'),
    };
  }

  readonly limits: EngineLimits;
  readonly generates: boolean;
  readonly embeddingLength: number;
  /** the context the model was trained for */
  readonly trainedContext: number;
  get maxModelLength(): number { return this.limits.maxModelLength; }

  /** Starts the worker, which loads the model; resolves once its engine is ready (rejects if loading fails). */
  static start(data: WorkerData): Promise<EngineClient> {
    const worker = import.meta.url.endsWith('.ts')
      // run from the sources (tsx): a worker does not inherit tsx's loader, so it registers it before the .ts entry
      ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); ` +
        `return import(${JSON.stringify(new URL('./engine-worker.ts', import.meta.url).href)}); })`, { eval: true, workerData: data })
      : new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: data });
    return new Promise((resolve, reject) => {
      const fail = (error: unknown) => reject(error);
      worker.once('error', fail);
      worker.once('exit', (code) => reject(new Error(`the engine's worker thread exited (code ${code}) before it was ready`)));
      worker.once('message', (message: WorkerMessage) => {
        worker.off('error', fail);
        worker.removeAllListeners('exit');
        if (message.type === 'ready') resolve(new EngineClient(worker, message));
      });
    });
  }

  submit(request: SubmitRequest): AsyncIterable<CompletionDelta> & { readonly id: string; readonly metrics: RequestMetrics } {
    if (this.closed) throw new EngineClosedError();
    if (!this.generates) throw new InvalidRequestError('the model only embeds: it has no language-model head');
    // functions cannot be posted to the worker: constraints travel as plain data (params.output)
    if (request.params.logitsProcessors) throw new InvalidRequestError('logits processors run only in an in-process engine; give params.output to the worker');
    const id = this.requestId(request.id);
    resolveParams(request, this.limits); // throws before anything is queued
    const metrics: RequestMetrics = { arrivalTime: Date.now() / 1000, promptTokens: request.prompt.length, completionTokens: 0, cachedPromptTokens: 0 };
    const deltas = new DeltaQueue();
    this.pending.set(id, { kind: 'stream', deltas, metrics });
    this.post({ type: 'submit', id, prompt: request.prompt, params: request.params });
    const detach = this.follow(request.signal, id);
    const client = this;
    return {
      id,
      metrics,
      async *[Symbol.asyncIterator]() {
        try {
          for (let delta = await deltas.next(); delta; delta = await deltas.next()) {
            request.onDelta?.(delta);
            yield delta;
          }
        } finally {
          detach?.();
          if (!deltas.ended) client.abort(id); // the consumer stopped listening
        }
      },
    };
  }

  embed(request: EmbedRequest): Promise<EmbeddingResult> {
    if (this.closed) throw new EngineClosedError();
    const id = this.requestId(request.id);
    const tokens = checkInput(request.tokens, this.limits);
    return new Promise((resolve, reject) => {
      const detach = this.follow(request.signal, id);
      const settle = <T>(fn: (value: T) => void) => (value: T) => {
        detach?.();
        fn(value);
      };
      this.pending.set(id, { kind: 'embed', resolve: settle(resolve), reject: settle(reject) });
      this.post({ type: 'embed', id, tokens, pooling: request.pooling, normalize: request.normalize });
    });
  }

  abort(id: string): void {
    if (this.pending.has(id)) this.post({ type: 'abort', id });
  }

  stats(): EngineStats {
    return this.latest;
  }

  /** Aborts every request, stops the worker's engine and ends the thread. */
  async close(): Promise<void> {
    if (this.closed) return this.exited;
    this.closed = true;
    this.post({ type: 'close' });
    await this.exited;
  }

  private receive(message: WorkerMessage): void {
    if ('stats' in message) this.latest = message.stats;
    switch (message.type) {
      case 'deltas':
        for (const delta of message.deltas) {
          const pending = this.pending.get(delta.requestId);
          if (pending?.kind === 'stream') pending.deltas.push(delta);
        }
        break;
      case 'finished': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (pending?.kind !== 'stream') break;
        Object.assign(pending.metrics, message.metrics);
        pending.deltas.end();
        break;
      }
      case 'embedded': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (pending?.kind === 'embed') pending.resolve(message.result);
        break;
      }
      case 'failed': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        const error = revive(message.error);
        if (pending?.kind === 'stream') pending.deltas.fail(error);
        else pending?.reject(error);
        break;
      }
      case 'answer': {
        const call = this.calls.get(message.call);
        this.calls.delete(message.call);
        if (message.error) call?.reject(revive(message.error));
        else call?.resolve(message.value);
        break;
      }
    }
  }

  private call(method: 'trace' | 'blocks', request?: TraceRequest): Promise<unknown> {
    if (this.closed) return Promise.reject(new EngineClosedError());
    const call = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(call, { resolve, reject });
      this.post({ type: 'call', call, method, request });
    });
  }

  private post(message: ClientMessage): void {
    this.worker.postMessage(message);
  }

  /** Aborts request `id` when `signal` fires (now, if it has); returns how to stop listening. */
  private follow(signal: AbortSignal | undefined, id: string): (() => void) | undefined {
    if (!signal) return undefined;
    const onAbort = () => this.abort(id);
    if (signal.aborted) {
      queueMicrotask(onAbort);
      return undefined;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  private requestId(given: string | undefined): string {
    const id = given ?? `req-${this.nextId++}`;
    if (this.pending.has(id)) throw new InvalidRequestError(`request id ${id} is already running`);
    return id;
  }

  private failAll(error: unknown): void {
    for (const pending of this.pending.values()) {
      if (pending.kind === 'stream') pending.deltas.fail(error);
      else pending.reject(error);
    }
    this.pending.clear();
    for (const call of this.calls.values()) call.reject(error);
    this.calls.clear();
  }
}
