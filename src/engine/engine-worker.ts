// The engine core's thread (vLLM's EngineCore process): it loads the model, owns the LLMEngine (scheduler, block
// manager, model runner) and the inspector, and speaks to EngineClient (engine-client.ts) in messages. Between two
// steps the engine yields, so aborts and new requests arrive; each step's outputs go back as one message.

import { parentPort, workerData } from 'node:worker_threads';
import { Model } from '../generate/model.js';
import { createBackend } from '../kernels/select.js';
import { localInspector } from '../inspect/routes.js';
import { LLMEngine } from './engine.js';
import type { ClientMessage, WorkerData, WorkerMessage } from './engine-client.js';
import type { CompletionDelta } from './types.js';

const port = parentPort!;
const { path, threads, lora, promptAdapter, engine: engineOptions } = workerData as WorkerData;
const model = Model.load(path, { backend: createBackend(undefined, threads), lora, promptAdapter });
const engine = new LLMEngine(model, engineOptions);
const inspector = localInspector(engine);

const post = (message: WorkerMessage) => port.postMessage(message);
const errorOf = (e: unknown) => ({ name: (e as Error).name ?? 'Error', message: (e as Error).message ?? String(e) });

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

port.on('message', (message: ClientMessage) => {
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
});

post({ type: 'ready', limits: engine.limits, generates: engine.generates, embeddingLength: engine.embeddingLength, trainedContext: model.hparams.contextLength, stats: engine.stats() });
