// The inspector's and estimator's routes in `kiln serve`: the two pages and their JSON APIs.
//   GET  /inspect              web/inspect.html (runs traces through the API below)
//   POST /inspect/api          {prompt, n, sampling} → InspectTrace of the served model
//   GET  /inspect/api/blocks   the engine's running sequences with their KV block tables and block owners
//   GET  /estimate             web/estimate.html
//   POST /estimate/api         {model, ctx, batch, mode, …} → Estimate
// The server adds these to its route table; errors in a request's content are thrown as 400 ApiErrors.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServingEngine } from '../engine/types.js';
import { LLMEngine } from '../engine/engine.js';
import type { Model } from '../generate/model.js';
import type { SamplingParams } from '../generate/sampler.js';
import { invalidRequest } from '../server/errors.js';
import { sendJson } from '../server/openai-api.js';
import { estimateMemory, type EstimateSpec } from '../estimate/estimate.js';
import {
  modelFromConfig, modelFromGGUF, modelFromParamCount, modelFromShape, parseParamCount, shapeFromFlags,
  type ModelDescription, type ShapeFlags,
} from '../estimate/model.js';
import { inspectableModel, traceGeneration } from './trace.js';
import { readPage, type PageName } from './page.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;
export type ReadJson = (req: IncomingMessage) => Promise<unknown>;

/** Tokens one inspector request may generate (a trace runs on the reference kernels, on the server's thread). */
export const MAX_INSPECT_TOKENS = 64;

/** Errors of the estimator and inspector that describe a bad request rather than a server fault. */
const CLIENT_ERRORS = new Set(['InspectError', 'EstimateError', 'ModelSpecError', 'UnknownStorageTypeError', 'SamplingError', 'TokenizerError']);

function asClientError(e: unknown): unknown {
  return e instanceof Error && CLIENT_ERRORS.has(e.name) ? invalidRequest(e.message) : e;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidRequest(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

/** body[key] if it is a number (or absent) */
function optionalNumber(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number') throw invalidRequest(`"${key}" must be a number`, key);
  return v;
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalidRequest(`"${key}" must be a string`, key);
  return v;
}

function sendPage(res: ServerResponse, name: PageName, cache: Map<PageName, Buffer>): void {
  let page = cache.get(name);
  if (!page) cache.set(name, (page = Buffer.from(readPage(name))));
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': page.length });
  res.end(page);
}

function servedEngine(engine: ServingEngine): LLMEngine {
  if (!(engine instanceof LLMEngine)) throw invalidRequest('this server\'s engine exposes no model to inspect');
  return engine;
}

// ---- inspector ----

const SAMPLING_KEYS = ['temperature', 'top_k', 'top_p', 'min_p', 'repeat_penalty', 'repeat_last_n', 'presence_penalty', 'frequency_penalty', 'seed'] as const;

function inspectRequest(body: unknown): { prompt: string; n: number; sampling: Partial<SamplingParams> } {
  const b = object(body, 'the request body');
  const prompt = b.prompt;
  if (typeof prompt !== 'string' || prompt.length === 0) throw invalidRequest('"prompt" must be a non-empty string', 'prompt');
  const n = optionalNumber(b, 'n') ?? 16;
  if (!Number.isInteger(n) || n < 0 || n > MAX_INSPECT_TOKENS) throw invalidRequest(`"n" must be an integer in [0, ${MAX_INSPECT_TOKENS}]`, 'n');
  const given = b.sampling === undefined ? {} : object(b.sampling, '"sampling"');
  const sampling: Partial<SamplingParams> = {};
  for (const key of SAMPLING_KEYS) {
    const v = optionalNumber(given, key);
    if (v !== undefined) sampling[key] = v;
  }
  return { prompt, n, sampling };
}

/** The engine's running sequences with their block tables, and how many sequences hold each block. */
function blockState(engine: LLMEngine): object {
  const { blocks } = engine;
  return {
    blockSize: blocks.blockSize,
    usage: blocks.usage(),
    prefixCacheHitRate: engine.stats().prefixCacheHitRate,
    sequences: engine.running.map((seq) => ({
      requestId: seq.request.id,
      index: seq.index,
      tokens: seq.tokens.length,
      length: seq.blocks.length,
      blocks: [...seq.blocks.blockTable],
      owners: seq.blocks.blockTable.map((b) => blocks.owners(b)),
    })),
  };
}

// ---- estimator ----

const SHAPE_KEYS = ['layers', 'dim', 'heads', 'kvHeads', 'ffn', 'vocab', 'experts', 'expertsUsed'] as const;

function shapeFlags(value: unknown): ShapeFlags {
  const s = object(value, '"model.shape"');
  const flags: ShapeFlags = {};
  for (const key of SHAPE_KEYS) flags[key] = optionalNumber(s, key);
  if (s.tied !== undefined && typeof s.tied !== 'boolean') throw invalidRequest('"model.shape.tied" must be a boolean');
  flags.tied = s.tied as boolean | undefined;
  return flags;
}

/** The model to estimate: the served one, a config.json object, a parameter count (with an optional shape), or a shape. */
function estimateModel(value: unknown, engine: ServingEngine): ModelDescription {
  const m = object(value ?? { served: true }, '"model"');
  if (m.served === true) {
    const model: Model = servedEngine(engine).model;
    return modelFromGGUF(model.file.header, 'served model');
  }
  if (m.config !== undefined) return modelFromConfig(m.config, 'config.json');
  const shape = m.shape === undefined ? undefined : shapeFlags(m.shape);
  if (m.params !== undefined) {
    if (typeof m.params !== 'string' && typeof m.params !== 'number') throw invalidRequest('"model.params" must be a count such as "7B"');
    return modelFromParamCount(parseParamCount(String(m.params)), shape && shapeFromFlags(shape), `${m.params} parameters`);
  }
  if (shape) return modelFromShape(shapeFromFlags(shape), 'model from shape');
  throw invalidRequest('"model" needs one of: served, config, params, shape', 'model');
}

function estimateRequest(body: unknown, engine: ServingEngine): EstimateSpec {
  const b = object(body, 'the request body');
  const bool = (key: string) => {
    if (b[key] !== undefined && typeof b[key] !== 'boolean') throw invalidRequest(`"${key}" must be a boolean`, key);
    return b[key] as boolean | undefined;
  };
  return {
    model: estimateModel(b.model, engine),
    mode: optionalString(b, 'mode') as EstimateSpec['mode'],
    ctx: optionalNumber(b, 'ctx'),
    batch: optionalNumber(b, 'batch'),
    ubatch: optionalNumber(b, 'ubatch'),
    weightType: optionalString(b, 'weightType'),
    kvType: optionalString(b, 'kvType'),
    optimizer: optionalString(b, 'optimizer') as EstimateSpec['optimizer'],
    mixedPrecision: bool('mixedPrecision'),
    gradCheckpointing: bool('gradCheckpointing'),
    loraRank: optionalNumber(b, 'loraRank'),
    tp: optionalNumber(b, 'tp'),
    pp: optionalNumber(b, 'pp'),
    dp: optionalNumber(b, 'dp'),
    zero: optionalNumber(b, 'zero') as EstimateSpec['zero'],
    runtime: optionalString(b, 'runtime') as EstimateSpec['runtime'],
  };
}

/** The routes, path → method → handler, for the server's table. */
export function inspectRoutes(engine: ServingEngine, readJson: ReadJson): [string, Map<string, RouteHandler>][] {
  const pages = new Map<PageName, Buffer>();
  let traced: Model | undefined; // the served model on the reference backend, made on first use
  const guard = (handler: RouteHandler): RouteHandler => async (req, res) => {
    try {
      await handler(req, res);
    } catch (e) {
      throw asClientError(e);
    }
  };
  return [
    ['/inspect', new Map([['GET', (_req, res) => sendPage(res, 'inspect', pages)]])],
    ['/inspect/api', new Map([['POST', guard(async (req, res) => {
      const { prompt, n, sampling } = inspectRequest(await readJson(req));
      traced ??= inspectableModel(servedEngine(engine).model);
      sendJson(res, 200, traceGeneration(traced, prompt, { maxTokens: n, sampling }));
    })]])],
    ['/inspect/api/blocks', new Map([['GET', (_req, res) => sendJson(res, 200, blockState(servedEngine(engine)))]])],
    ['/estimate', new Map([['GET', (_req, res) => sendPage(res, 'estimate', pages)]])],
    ['/estimate/api', new Map([['POST', guard(async (req, res) => sendJson(res, 200, estimateMemory(estimateRequest(await readJson(req), engine))))]])],
  ];
}
