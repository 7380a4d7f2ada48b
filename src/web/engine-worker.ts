// The engine in a page's Web Worker (bundled by web/build.mjs with the browser platform): the page sends the File
// the user chose, the fetched kernels and the thread count; the worker starts the kernel threads (Web Workers sharing
// its WebAssembly memories), loads the model and then serves it through the
// same protocol as `kiln serve`'s worker thread (engine-host.ts), plus 'generate', which tokenizes text here, 'chat',
// a conversation put through the model's chat template as `kiln chat` does, and 'inspect', the inspector page's trace
// request checked as kiln serve's /inspect/api checks it.

import { Model } from '../generate/model.js';
import { WasmBackend } from '../kernels/wasm.js';
import { errorOf, hostEngine } from '../engine/engine-host.js';
import type { ClientMessage, WorkerMessage } from '../engine/engine-client.js';
import type { RequestParams } from '../engine/types.js';
import { installKernels, watchReads } from '../platform/browser.js';
import { readGGUFHeader } from '../gguf/reader.js';
import { modelFromGGUF } from '../estimate/model.js';
import { checkPageMemory, type PageLimit } from './page-memory.js';
import { inspectRequest } from '../inspect/routes.js';
import { ChatTemplate, chatPromptTokens, type ChatMessage } from '../generate/chat-template.js';

/** page → worker: first 'load', then the engine's messages, 'generate' (a text prompt) or 'chat' (a conversation) */
export type PageMessage =
  | { type: 'load'; file: Blob; kernels: Record<string, Uint8Array>; threads: number; context: number; limit?: PageLimit }
  | { type: 'generate'; id: string; text: string; params: RequestParams }
  | { type: 'chat'; id: string; messages: ChatMessage[]; params: RequestParams }
  /** the inspector page's trace request ({prompt, n, sampling}), checked as kiln serve checks it */
  | { type: 'inspect'; call: number; body: unknown }
  | ClientMessage;

/** worker → page: load progress and the engine's messages ('ready' once loaded) */
export type PageReply =
  | { type: 'progress'; done: number; total: number }
  | { type: 'load-failed'; error: { name: string; message: string } }
  | { type: 'loaded'; architecture: string; backend: string; threads: number; parameters: number; context: number; needs: number }
  | { type: 'prompt'; id: string; tokens: number[] }
  /** a prompt that could not be made (a chat template that fails to render) */
  | { type: 'refused'; id: string; error: { name: string; message: string } }
  | WorkerMessage;

declare const self: { postMessage(message: PageReply): void; onmessage: ((event: { data: PageMessage }) => void) | null; close(): void };

let model: Model | undefined;
let handle: ((message: ClientMessage) => void) | undefined;
let template: ChatTemplate | undefined;

/**
 * Loads the model in `threads` threads with a context of `asked` positions at most (the trained context if shorter),
 * once its header shows that the page can hold it within `limit`.
 */
async function load({ file, kernels, threads, context: asked, limit }: Extract<PageMessage, { type: 'load' }>): Promise<void> {
  installKernels(kernels);
  watchReads((done, total) => self.postMessage({ type: 'progress', done, total }));
  const name = (file as Blob & { name?: string }).name ?? 'the model';
  const header = readGGUFHeader(file);
  const context = Math.min(asked, modelFromGGUF(header).shape.ctxTrain ?? asked);
  const { total: needs } = checkPageMemory(header, name, context, limit);
  const backend = await WasmBackend.start({ threads });
  model = Model.load(file, { backend });
  template = ChatTemplate.forModel(model.file.metadata, model.tokenizer);
  const parameters = model.file.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
  self.postMessage({ type: 'loaded', architecture: model.hparams.arch, backend: backend.name, threads: backend.threads, parameters, context, needs });
  handle = hostEngine(model, { maxNumSeqs: 1, maxModelLength: context }, { post: (message) => self.postMessage(message), close: () => self.close() });
}

self.onmessage = ({ data }) => {
  if (data.type === 'load') {
    load(data).catch((e) => self.postMessage({ type: 'load-failed', error: errorOf(e) }));
  } else if (data.type === 'generate' || data.type === 'chat') {
    let tokens: number[];
    try {
      tokens = data.type === 'chat'
        ? chatPromptTokens(model!.tokenizer, template!.render(data.messages))
        : model!.tokenizer.encode(data.text, { addSpecial: true, parseSpecial: true });
    } catch (e) {
      return self.postMessage({ type: 'refused', id: data.id, error: errorOf(e) });
    }
    self.postMessage({ type: 'prompt', id: data.id, tokens });
    handle!({ type: 'submit', id: data.id, prompt: tokens, params: data.params });
  } else if (data.type === 'inspect') {
    try {
      handle!({ type: 'call', call: data.call, method: 'trace', request: inspectRequest(data.body) });
    } catch (e) {
      self.postMessage({ type: 'answer', call: data.call, error: errorOf(e) });
    }
  } else {
    handle!(data);
  }
};
