// A real server for the server tests: stories260K (or a model given) on the engine in its worker thread, as
// `kiln serve` runs it, listening on an ephemeral port of 127.0.0.1.

import { setTimeout } from 'node:timers/promises';
import OpenAI from 'openai';
import { Model } from '../../src/generate/model.js';
import type { EngineOptions } from '../../src/engine/engine.js';
import { EngineClient } from '../../src/engine/engine-client.js';
import type { CompletionDelta, EmbedRequest, FinishReason, ServingEngine, SubmitRequest } from '../../src/engine/types.js';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { KilnServer, type ServerOptions } from '../../src/server/server.js';
import { servedModel } from '../../src/server/openai-api.js';
import { sharedPath } from '../shared.js';

export const MODEL_PATH = sharedPath('data', 'models', 'stories260K.gguf');
export const MODEL_NAME = 'stories260K';

let model: Model | undefined;
export function loadModel(): Model {
  return (model ??= Model.load(MODEL_PATH));
}

/** The engine as the server sees it, recording how each request's completions finished. */
export class RecordingEngine implements ServingEngine {
  /** request id → finish reasons of its completions, in arrival order */
  readonly finishes = new Map<string, FinishReason[]>();

  constructor(readonly inner: EngineClient) {}

  get maxModelLength(): number { return this.inner.maxModelLength; }
  get generates(): boolean { return this.inner.generates; }
  get embeddingLength(): number { return this.inner.embeddingLength; }
  get inspector() { return this.inner.inspector; }
  embed(request: EmbedRequest) { return this.inner.embed(request); }
  stats() { return this.inner.stats(); }
  abort(id: string): void { this.inner.abort(id); }
  close(): Promise<void> { return this.inner.close(); }

  submit(request: SubmitRequest) {
    const stream = this.inner.submit(request);
    const finishes: FinishReason[] = [];
    this.finishes.set(stream.id, finishes);
    return {
      id: stream.id,
      metrics: stream.metrics,
      async *[Symbol.asyncIterator](): AsyncGenerator<CompletionDelta> {
        for await (const delta of stream) {
          if (delta.finishReason) finishes.push(delta.finishReason);
          yield delta;
        }
      },
    };
  }
}

export interface TestServer {
  server: KilnServer;
  engine: RecordingEngine;
  baseURL: string;
  client: OpenAI;
  close(): Promise<void>;
}

export async function startServer(
  engineOptions: EngineOptions = {}, serverOptions: Partial<Omit<ServerOptions, 'engine' | 'model'>> = {},
  served: { path: string; name: string } = { path: MODEL_PATH, name: MODEL_NAME },
): Promise<TestServer> {
  const engine = new RecordingEngine(await EngineClient.start({ path: served.path, engine: { maxModelLength: 256, ...engineOptions } }));
  const server = new KilnServer({ engine, model: servedModel(readGGUFHeader(served.path), served.name), ...serverOptions });
  const { port } = await server.listen(0, '127.0.0.1');
  const baseURL = `http://127.0.0.1:${port}`;
  // a loaded machine may take long to answer: the test's own timeout guards against a hang
  const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: serverOptions.apiKey ?? 'unused', maxRetries: 0, timeout: 600_000 });
  return {
    server, engine, baseURL, client,
    async close() {
      await server.close();
      await engine.close();
    },
  };
}

/**
 * Polls until `check` holds; fails, naming `what`, only after 5 minutes: what it waits for takes milliseconds, so
 * the limit catches a state that never comes, however loaded the machine.
 */
export async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 300_000;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`waited 5 minutes for ${what}`);
    await setTimeout(5);
  }
}
