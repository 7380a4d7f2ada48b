// `kiln serve`'s HTTP front end (fastify): an OpenAI-compatible API over a ServingEngine (generation and
// embeddings; a model that only embeds refuses generation), a health check, Prometheus metrics, the web chat page
// and the inspector. It validates, enqueues and streams; the engine (in a worker thread for `kiln serve`) computes.
//
// Every request passes one gate before its route runs: a well-formed request target, an allowed Host (DNS
// rebinding), the API key. Bodies are JSON only (415 otherwise), at most maxBodyBytes (413, also before
// `100 Continue`), checked against the endpoint's schema (params.ts). Every failure is answered with OpenAI's
// error JSON and the server goes on serving.

import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import type { IncomingMessage, ServerResponse } from 'node:http';
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
import { errorBody, handleChatCompletions, handleCompletions, type ApiContext, type ServedModel } from './openai-api.js';
import { handleEmbeddings } from './embeddings.js';
import { CHAT_SCHEMA, COMPLETION_SCHEMA, EMBEDDING_SCHEMA, schemaError, type SchemaError } from './params.js';
import { inspectRoutes } from '../inspect/routes.js';

export interface ServerOptions {
  engine: ServingEngine;
  model: ServedModel;
  /** when set, every request must carry `Authorization: Bearer <apiKey>` (the scheme in any case) */
  apiKey?: string;
  /** answer /health without the API key (for probes that cannot send one) */
  openHealth?: boolean;
  /** sequences (prompts × n) allowed to wait for a slot before new requests are turned away with 429 (default 64) */
  maxWaiting?: number;
  /** sequences (prompts × n) one request may ask for (default 64; 400 beyond) */
  maxRequestSequences?: number;
  /** largest request body in bytes (default 1 MiB) */
  maxBodyBytes?: number;
  /** origins allowed cross-site requests (CORS; default none) */
  corsOrigins?: string[];
  /** Host names accepted besides the bound address and, on loopback, localhost (DNS rebinding) */
  allowedHosts?: string[];
  /** ms to receive a request's headers (default 10 s) and its whole body (default 60 s) */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

export class KilnServer {
  readonly app: FastifyInstance;
  readonly metrics = new ServerMetrics();
  private readonly ctx: ApiContext;
  /** path → methods, for 405's Allow */
  private readonly methods = new Map<string, string[]>();
  private readonly maxBodyBytes: number;
  private readonly created = Math.floor(Date.now() / 1000);
  /** Host names allowed, lower case; undefined: any (bound to a public address with no --allowed-hosts) */
  private hosts: Set<string> | undefined;
  private chatPage: Buffer | undefined;

  constructor(private readonly options: ServerOptions) {
    this.ctx = {
      engine: options.engine, model: options.model, metrics: this.metrics,
      maxWaiting: options.maxWaiting ?? 64, maxRequestSequences: options.maxRequestSequences ?? 64,
    };
    this.maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    this.app = Fastify({
      bodyLimit: this.maxBodyBytes,
      requestTimeout: options.requestTimeoutMs ?? 60_000,
      http: { headersTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout) },
      // types, ranges and unknown parameters are errors: no coercion, no defaults filled in, nothing removed
      ajv: { customOptions: { coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, verbose: true } },
      return503OnClosing: false,
    });
    this.app.server.on('checkContinue', (req, res) => this.checkContinue(req, res));
    this.app.setErrorHandler((error, _request, reply) => this.sendError(error as Error, reply));
    this.app.setNotFoundHandler((request) => this.notFound(request));
    this.app.removeAllContentTypeParsers(); // JSON only: a form or text/plain body (what pages send without a preflight) gets 415
    this.app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, body === '' ? undefined : JSON.parse(body as string)); // no body: the route's schema says what was missing
      } catch (e) {
        done(invalidRequest(`the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'), undefined);
      }
    });
    if (options.corsOrigins?.length) {
      this.app.register(cors, { origin: options.corsOrigins, methods: ['GET', 'POST'], allowedHeaders: ['Authorization', 'Content-Type'] });
    }
    this.app.addHook('onRequest', async (request, reply) => {
      // 499 (nginx's "client closed request"): the client left before any answer was sent
      const route = request.routeOptions.url?.replace(':id', '{id}') ?? 'other';
      reply.raw.on('close', () => this.metrics.countRequest(route, reply.raw.headersSent ? reply.raw.statusCode : 499));
      this.gate(request);
    });
    this.routes();
  }

  /** Starts listening; port 0 picks a free port. Resolves with the bound address. */
  async listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    await this.app.listen({ port, host });
    const address = this.app.server.address() as AddressInfo;
    const allowed = this.options.allowedHosts?.map((h) => h.toLowerCase());
    const bound = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    if (isLoopback(address.address) || allowed) this.hosts = new Set([bound, ...LOOPBACK_NAMES, ...(allowed ?? [])]);
    return address;
  }

  /** Stops accepting connections and closes the open ones (streams in flight are cut, which aborts them). */
  async close(): Promise<void> {
    this.app.server.closeAllConnections();
    await this.app.close();
  }

  private routes(): void {
    const { engine, model } = this.options;
    const generation = <B>(handler: (ctx: ApiContext, body: B, reply: FastifyReply, arrival: number) => Promise<void>) =>
      async (request: FastifyRequest, reply: FastifyReply) => {
        if (!engine.generates) {
          throw invalidRequest(`the model "${model.name}" only embeds (it has no language-model head): use /v1/embeddings`, 'model', 'model_not_supported');
        }
        await handler(this.ctx, request.body as B, reply, performance.now() - reply.elapsedTime);
      };
    this.route('GET', '/', (_request, reply) => this.sendChatPage(reply));
    // the in-page engine: cross-origin isolated (COOP/COEP), as a page must be for its workers to share memory
    this.route('GET', '/local', (_request, reply) => sendIsolated(reply, join(packageRoot(), 'web', 'local.html')));
    // the inspector in /local's frame, on the page's model
    this.route('GET', '/local/inspect', (_request, reply) => sendIsolated(reply, join(packageRoot(), 'web', 'inspect.html')));
    this.route('GET', '/local/:asset', (request, reply) => {
      const { asset } = request.params as { asset: string };
      if (!LOCAL_ASSETS.includes(asset)) throw notFound(`no file ${JSON.stringify(asset.slice(0, 100))} in /local`, 'not_found');
      sendIsolated(reply, join(packageRoot(), 'build', 'web', asset));
    });
    this.route('GET', '/health', (_request, reply) => reply.send({ status: 'ok' }));
    this.route('GET', '/metrics', (_request, reply) => {
      reply.type('text/plain; version=0.0.4; charset=utf-8').send(this.metrics.render(engine.stats()));
    });
    this.route('GET', '/v1/models', (_request, reply) => reply.send({ object: 'list', data: [this.modelCard()] }));
    this.route('GET', '/v1/models/:id', (request, reply) => {
      const { id } = request.params as { id: string };
      if (id !== model.name) throw notFound(`the model "${id}" does not exist`, 'model_not_found');
      reply.send(this.modelCard());
    });
    this.route('POST', '/v1/completions', generation(handleCompletions), COMPLETION_SCHEMA);
    this.route('POST', '/v1/chat/completions', generation(handleChatCompletions), CHAT_SCHEMA);
    this.route('POST', '/v1/embeddings', (request, reply) => handleEmbeddings(this.ctx, request.body as never, reply), EMBEDDING_SCHEMA);
    // the inspector and estimator pages and their APIs (src/inspect/routes.ts)
    for (const { method, url, handler } of inspectRoutes(engine, model)) this.route(method, url, handler);
  }

  private route(method: 'GET' | 'POST', url: string, handler: (request: FastifyRequest, reply: FastifyReply) => unknown, body?: object): void {
    this.app.route({ method, url, handler: async (request, reply) => handler(request, reply), ...(body ? { schema: { body } } : {}) });
    this.methods.set(url, [...(this.methods.get(url) ?? []), method]);
  }

  /** Before any route: a well-formed target, an allowed Host, the API key. */
  private gate(request: FastifyRequest): void {
    if (!request.url.startsWith('/') || !URL.canParse(request.url, 'http://localhost')) {
      throw invalidRequest(`the request target ${JSON.stringify(request.url.slice(0, 100))} is not a valid path`, null, 'invalid_url');
    }
    const host = request.headers.host?.toLowerCase();
    if (this.hosts && host !== undefined && !this.hosts.has(hostname(host))) {
      throw new ApiError(403, `the Host "${host.slice(0, 100)}" is not allowed; start the server with --allowed-hosts to allow it`, 'invalid_request_error', null, 'host_not_allowed');
    }
    // a CORS preflight carries no credentials; the cors plugin answers it
    if (request.method === 'OPTIONS' && this.options.corsOrigins?.length) return;
    if (this.options.openHealth && request.url === '/health') return;
    this.authorize(request.headers.authorization);
  }

  private authorize(authorization: string | undefined): void {
    const key = this.options.apiKey;
    if (key === undefined) return;
    const given = Buffer.from(/^bearer +(.+)$/i.exec(authorization ?? '')?.[1] ?? '');
    const expected = Buffer.from(key);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError(401, 'a valid API key is required: send "Authorization: Bearer <key>"', 'authentication_error', null, 'invalid_api_key');
    }
  }

  /** `Expect: 100-continue`: a body announced larger than the limit gets 413 before it is sent. */
  private checkContinue(req: IncomingMessage, res: ServerResponse): void {
    if (Number(req.headers['content-length'] ?? 0) > this.maxBodyBytes) {
      const body = JSON.stringify(this.tooLarge().toJSON());
      res.writeHead(413, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
      res.end(body);
      return;
    }
    res.writeContinue();
    this.app.server.emit('request', req, res);
  }

  private tooLarge(): ApiError {
    return new ApiError(413, `the request body is larger than ${this.maxBodyBytes} bytes`, 'invalid_request_error', null, 'body_too_large');
  }

  private notFound(request: FastifyRequest): never {
    const path = request.url.split('?')[0];
    const methods = this.methods.get(path);
    if (methods) {
      throw Object.assign(new ApiError(405, `${request.method} is not allowed on ${path}; use ${methods.join(' or ')}`, 'invalid_request_error', null, 'method_not_allowed'), { allow: methods.join(', ') });
    }
    throw notFound(`no route ${request.method} ${path}`, 'unknown_route');
  }

  private sendError(e: FastifyError | Error, reply: FastifyReply): void {
    if (reply.raw.destroyed) return; // the client left (while sending its body, say): nobody to answer
    const error = asApiError(e);
    if (error.status >= 500 && !(e instanceof ApiError)) console.error(`kiln serve: ${e.stack ?? e}`);
    if (reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    const allow = (e as { allow?: string }).allow;
    if (allow) reply.header('Allow', allow);
    // a body too large is not worth reading: close the connection after answering
    if (error.status === 413) reply.header('Connection', 'close');
    reply.code(error.status).send(errorBody(error));
  }

  private modelCard(): object {
    return { id: this.options.model.name, object: 'model', created: this.created, owned_by: 'kiln', max_model_len: this.options.engine.maxModelLength };
  }

  private sendChatPage(reply: FastifyReply): void {
    this.chatPage ??= readFileSync(join(packageRoot(), 'web', 'chat.html'));
    reply.type('text/html; charset=utf-8').send(this.chatPage);
  }
}

/** The files of the in-page engine (web/build.mjs writes them to build/web). */
const LOCAL_ASSETS = ['engine-worker.js', 'pool-worker.js', 'kernels-simd.wasm', 'kernels-relaxed.wasm'];
const CONTENT_TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', wasm: 'application/wasm' };

/** A file with the headers that make its page cross-origin isolated (SharedArrayBuffer and shared WebAssembly memory). */
function sendIsolated(reply: FastifyReply, path: string): void {
  reply.header('Cross-Origin-Opener-Policy', 'same-origin').header('Cross-Origin-Embedder-Policy', 'require-corp')
    .type(CONTENT_TYPES[path.slice(path.lastIndexOf('.') + 1)]).send(readFileSync(path));
}

/** The name in a Host header, without its port: "[::1]:8080" → "[::1]". */
function hostname(host: string): string {
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
}

/** Any failure as the API error it is answered with. */
function asApiError(e: FastifyError | Error): ApiError {
  if (e instanceof ApiError) return e;
  // errors in the request's content found below the API layer (template, sampling, engine checks) are the client's
  if (e instanceof ChatTemplateError || e instanceof SamplingError || e instanceof InvalidRequestError) return invalidRequest(e.message);
  const fastify = e as FastifyError & { validation?: SchemaError[] };
  if (fastify.validation) return schemaError(fastify.validation);
  switch (fastify.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'the request body must be JSON, sent with "Content-Type: application/json"', 'invalid_request_error', null, 'unsupported_media_type');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'the request body is larger than the server accepts', 'invalid_request_error', null, 'body_too_large');
  }
  const status = fastify.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, e.message, 'invalid_request_error', null, fastify.code ?? null);
  return new ApiError(500, e.message, 'server_error');
}
