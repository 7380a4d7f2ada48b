// `kiln serve`'s HTTP server (node:http): an OpenAI-compatible API over a ServingEngine (generation and
// embeddings; a model that only embeds refuses generation), a health check, Prometheus metrics and the web chat page. Every failure is answered with OpenAI's error JSON and the
// server goes on serving.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../kernels/wasm-module.js';
import { ChatTemplateError } from '../generate/chat-template.js';
import { SamplingError } from '../generate/sampler.js';
import type { ServingEngine } from '../engine/types.js';
import { InvalidRequestError } from '../engine/engine.js';
import { ApiError, invalidRequest, notFound } from './errors.js';
import { ServerMetrics } from './metrics.js';
import { errorBody, handleChatCompletions, handleCompletions, sendJson, type ApiContext, type ServedModel } from './openai-api.js';
import { handleEmbeddings } from './embeddings.js';
import { inspectRoutes } from '../inspect/routes.js';

export interface ServerOptions {
  engine: ServingEngine;
  model: ServedModel;
  /** when set, /v1/* requests must carry `Authorization: Bearer <apiKey>` */
  apiKey?: string;
  /** engine requests allowed to wait for a slot before new ones are turned away with 429 (default 64) */
  maxWaiting?: number;
  /** largest request body in bytes (default 1 MiB) */
  maxBodyBytes?: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, arrival: number) => Promise<void> | void;

export class KilnServer {
  readonly http: Server;
  readonly metrics = new ServerMetrics();
  private readonly ctx: ApiContext;
  private readonly routes: Map<string, Map<string, Handler>>;
  private readonly maxBodyBytes: number;
  private readonly created = Math.floor(Date.now() / 1000);
  private chatPage: Buffer | undefined;

  constructor(private readonly options: ServerOptions) {
    this.ctx = { engine: options.engine, model: options.model, metrics: this.metrics, maxWaiting: options.maxWaiting ?? 64 };
    this.maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
    const json = (fn: (ctx: ApiContext, body: unknown, res: ServerResponse, arrival: number) => Promise<void>): Handler =>
      async (req, res, arrival) => fn(this.ctx, await this.readJson(req), res, arrival);
    const generation = (fn: Parameters<typeof json>[0]): Handler => (options.engine.generates ? json(fn) : () => {
      throw invalidRequest(`the model "${options.model.name}" only embeds (it has no language-model head): use /v1/embeddings`, 'model', 'model_not_supported');
    });
    // path → method → handler
    this.routes = new Map<string, Map<string, Handler>>([
      ['/', new Map([['GET', (_req, res) => this.sendChatPage(res)]])],
      ['/health', new Map([['GET', (_req, res) => sendJson(res, 200, { status: 'ok' })]])],
      ['/metrics', new Map([['GET', (_req, res) => this.sendMetrics(res)]])],
      ['/v1/models', new Map([['GET', (_req, res) => sendJson(res, 200, { object: 'list', data: [this.modelCard()] })]])],
      [`/v1/models/${options.model.name}`, new Map([['GET', (_req, res) => sendJson(res, 200, this.modelCard())]])],
      ['/v1/completions', new Map([['POST', generation(handleCompletions)]])],
      ['/v1/chat/completions', new Map([['POST', generation(handleChatCompletions)]])],
      ['/v1/embeddings', new Map([['POST', json(handleEmbeddings)]])],
    ]);
    // the inspector and estimator pages and their APIs (src/inspect/routes.ts)
    for (const [path, methods] of inspectRoutes(options.engine, (req) => this.readJson(req))) this.routes.set(path, methods);
    this.http = createServer((req, res) => {
      // handle() answers every error itself; this is the net under a failure to answer one
      this.handle(req, res).catch((e) => {
        console.error(`kiln serve: ${(e as Error).stack ?? e}`);
        res.destroy();
      });
    });
  }

  /** Starts listening; port 0 picks a free port. Resolves with the bound address. */
  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting connections and closes the open ones (streams in flight are cut, which aborts them). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrival = performance.now();
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const methods = this.routes.get(path);
    const route = methods ? path : path.startsWith('/v1/models/') ? '/v1/models/{id}' : 'other';
    // 499 (nginx's "client closed request"): the client left before any answer was sent
    res.on('close', () => this.metrics.countRequest(route, res.headersSent ? res.statusCode : 499));
    try {
      if (!methods) {
        throw path.startsWith('/v1/models/')
          ? notFound(`the model "${path.slice('/v1/models/'.length)}" does not exist`, 'model_not_found')
          : notFound(`no route ${req.method} ${path}`, 'unknown_route');
      }
      const handler = methods.get(req.method ?? '');
      if (!handler) {
        res.setHeader('Allow', [...methods.keys()].join(', '));
        throw new ApiError(405, `${req.method} is not allowed on ${path}; use ${[...methods.keys()].join(' or ')}`, 'invalid_request_error', null, 'method_not_allowed');
      }
      if (path.startsWith('/v1/')) this.authorize(req);
      await handler(req, res, arrival);
    } catch (e) {
      this.sendError(res, e);
    }
  }

  private authorize(req: IncomingMessage): void {
    const key = this.options.apiKey;
    if (key === undefined) return;
    const given = Buffer.from(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
    const expected = Buffer.from(key);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError(401, 'a valid API key is required: send "Authorization: Bearer <key>"', 'authentication_error', null, 'invalid_api_key');
    }
  }

  /** The body as JSON; at most maxBodyBytes (413 beyond, checked before reading when Content-Length says so). */
  private async readJson(req: IncomingMessage): Promise<unknown> {
    const tooLarge = () => new ApiError(413, `the request body is larger than ${this.maxBodyBytes} bytes`, 'invalid_request_error', null, 'body_too_large');
    if (Number(req.headers['content-length'] ?? 0) > this.maxBodyBytes) throw tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.maxBodyBytes) throw tooLarge();
      chunks.push(chunk);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      throw invalidRequest(`the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json');
    }
  }

  private sendError(res: ServerResponse, e: unknown): void {
    if (res.destroyed) return; // the client left (while sending its body, say): nobody to answer
    // errors in the request's content found below the API layer (template, sampling, engine checks) are the client's
    const clientsFault = e instanceof ChatTemplateError || e instanceof SamplingError || e instanceof InvalidRequestError;
    const error = clientsFault ? invalidRequest((e as Error).message) : e;
    if (!(error instanceof ApiError)) console.error(`kiln serve: ${(e as Error).stack ?? e}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = error instanceof ApiError ? error.status : 500;
    // a body too large is not worth reading: close the connection after answering; other unread bodies are drained
    if (status === 413) res.setHeader('Connection', 'close');
    else res.req.resume();
    sendJson(res, status, errorBody(error));
  }

  private modelCard(): object {
    return { id: this.options.model.name, object: 'model', created: this.created, owned_by: 'kiln', max_model_len: this.options.engine.maxModelLength };
  }

  private sendMetrics(res: ServerResponse): void {
    const text = this.metrics.render(this.options.engine.stats());
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(text);
  }

  private sendChatPage(res: ServerResponse): void {
    this.chatPage ??= readFileSync(join(packageRoot(), 'web', 'chat.html'));
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': this.chatPage.length });
    res.end(this.chatPage);
  }
}
