// The engine core's side of the worker protocol (vLLM's EngineCore), the same in a Node worker thread
// (engine-worker.ts) and a page's Web Worker (src/web/engine-worker.ts): it owns the LLMEngine and the inspector and
// answers EngineClient's messages. Between two steps the engine yields, so aborts and new requests arrive; each
// step's outputs go back as one message.

import type { Model } from '../generate/model.js';
import { localInspector } from '../inspect/routes.js';
import { LLMEngine, type EngineOptions } from './engine.js';
import type { ClientMessage, WorkerMessage } from './engine-client.js';
import type { CompletionDelta } from './types.js';

/** The way back to the client, and how the host lets go of it after `close`. */
export interface HostPort {
  post(message: WorkerMessage): void;
  close(): void;
}

/** An error as plain data, to cross to the client. */
export const errorOf = (e: unknown) => ({ name: (e as Error).name ?? 'Error', message: (e as Error).message ?? String(e) });

/** Serves `model` through `port`: posts 'ready' and returns the handler of the client's messages. */
export function hostEngine(model: Model, options: EngineOptions, port: HostPort): (message: ClientMessage) => void {
  const engine = new LLMEngine(model, options);
  const inspector = localInspector(engine);
  const post = port.post;

  /** deltas of the current step, sent together once it is over */
  let outbox: CompletionDelta[] = [];
  let flushing = false;
  function send(delta: CompletionDelta): void {
    outbox.push(delta);
    if (flushing) return;
    flushing = true;
    // runs after the step that produced the delta (the engine's next step is queued behind it)
    setImmediate(() => {
      flushing = false;
      post({ type: 'deltas', deltas: outbox, stats: engine.stats() });
      outbox = [];
    });
  }

  post({ type: 'ready', limits: engine.limits, generates: engine.generates, embeddingLength: engine.embeddingLength, trainedContext: model.hparams.contextLength, stats: engine.stats() });

  return (message) => {
    switch (message.type) {
      case 'submit': {
        const { id, prompt, params } = message;
        try {
          const stream = engine.submit({ id, prompt, params, onDelta: send });
          (async () => {
            for await (const _ of stream); // the deltas go out through onDelta; this ends the request
            setImmediate(() => post({ type: 'finished', id, metrics: stream.metrics, stats: engine.stats() }));
          })().catch((e) => setImmediate(() => post({ type: 'failed', id, error: errorOf(e), stats: engine.stats() })));
        } catch (e) {
          post({ type: 'failed', id, error: errorOf(e), stats: engine.stats() });
        }
        break;
      }
      case 'embed':
        engine.embed({ id: message.id, tokens: message.tokens, pooling: message.pooling, normalize: message.normalize }).then(
          (result) => post({ type: 'embedded', id: message.id, result, stats: engine.stats() }),
          (e) => post({ type: 'failed', id: message.id, error: errorOf(e), stats: engine.stats() }),
        );
        break;
      case 'abort':
        engine.abort(message.id);
        break;
      case 'call':
        (message.method === 'trace' ? inspector.trace(message.request!) : inspector.blocks()).then(
          (value) => post({ type: 'answer', call: message.call, value }),
          (e) => post({ type: 'answer', call: message.call, error: errorOf(e) }),
        );
        break;
      case 'close':
        engine.close().then(() => {
          post({ type: 'closed' });
          port.close();
        });
        break;
    }
  };
}
