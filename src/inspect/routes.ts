// The inspector's and estimator's routes in `kiln serve`: the two pages and their JSON APIs.
//   GET  /inspect              web/inspect.html (runs traces through the API below)
//   POST /inspect/api          {prompt, n, sampling} → InspectTrace of the served model
//   GET  /inspect/api/blocks   the engine's running sequences with their KV block tables and block owners
//   GET  /estimate             web/estimate.html
//   POST /estimate/api         {model, ctx, batch, mode, …} → Estimate
// The server adds these to its routes; errors in a request's content are thrown as 400 ApiErrors. Traces and block
// tables come from the engine's inspector (`localInspector`, run where the engine runs: in `kiln serve`'s worker).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EngineInspector, ServingEngine, TraceRequest } from '../engine/types.js';
import type { LLMEngine } from '../engine/engine.js';
import type { Model } from '../generate/model.js';
import type { SamplingParams } from '../generate/sampler.js';
import { invalidRequest } from '../server/errors.js';
import type { ServedModel } from '../server/openai-api.js';
import { estimateMemory, type EstimateSpec } from '../estimate/estimate.js';
import {
  modelFromConfig, modelFromGGUF, modelFromParamCount, modelFromShape, parseParamCount, shapeFromFlags,
  type ModelDescription, type ShapeFlags,
} from '../estimate/model.js';
import { InspectError, inspectableModel, traceGeneration, type InspectTrace } from './trace.js';
import { readPage, type PageName } from './page.js';

export interface Route {
  method: 'GET' | 'POST';
  url: string;
  handler: (request: FastifyRequest, reply: FastifyReply) => unknown;
}

/** Tokens one inspector request may generate (a trace runs on the reference kernels, between the engine's steps). */
export const MAX_INSPECT_TOKENS = 64;
/** Positions (prompt and generated tokens) one trace may hold. */
export const MAX_INSPECT_POSITIONS = 256;
/** Attention weights one trace may return (layers × heads × T(T+1)/2): about 10 MB of JSON. */
export const MAX_INSPECT_ATTENTION = 1_000_000;

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
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(`"${key}" must be a finite number`, key);
  return v;
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalidRequest(`"${key}" must be a string`, key);
  return v;
}

function sendPage(reply: FastifyReply, name: PageName, cache: Map<PageName, Buffer>): void {
  let page = cache.get(name);
  if (!page) cache.set(name, (page = Buffer.from(readPage(name))));
  reply.type('text/html; charset=utf-8').send(page);
}

function inspectorOf(engine: ServingEngine): EngineInspector {
  if (!engine.inspector) throw invalidRequest('this server\'s engine exposes no model to inspect');
  return engine.inspector;
}

// ---- inspector ----

const SAMPLING_KEYS = ['temperature', 'top_k', 'top_p', 'min_p', 'repeat_penalty', 'repeat_last_n', 'presence_penalty', 'frequency_penalty', 'seed'] as const;

/** A trace request from the inspector page's JSON ({prompt, n, sampling}), checked (400s for bad content). */
export function inspectRequest(body: unknown): TraceRequest {
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
  return { prompt, maxTokens: n, sampling };
}

/**
 * The inspector of an engine in this thread: traces run on the served model's reference-kernel copy (made on first
 * use) within the limits above, checked before any work.
 */
export function localInspector(engine: LLMEngine): EngineInspector {
  let traced: Model | undefined;
  return {
    async trace({ prompt, maxTokens, sampling }: TraceRequest): Promise<InspectTrace> {
      const { hparams, tokenizer } = engine.model;
      const positions = tokenizer.encode(prompt, { addSpecial: true, parseSpecial: false }).length + maxTokens;
      const attention = hparams.blockCount * hparams.headCount * positions * (positions + 1) / 2;
      if (positions > MAX_INSPECT_POSITIONS || attention > MAX_INSPECT_ATTENTION) {
        throw new InspectError(`a trace of ${positions} positions (prompt and generated) is too large to serve: ` +
          `at most ${MAX_INSPECT_POSITIONS} positions and ${MAX_INSPECT_ATTENTION} attention weights; shorten the prompt or lower n`);
      }
      traced ??= inspectableModel(engine.model);
      return traceGeneration(traced, prompt, { maxTokens, sampling });
    },
    async blocks() {
      return blockState(engine);
    },
  };
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
function estimateModel(value: unknown, served: ServedModel): ModelDescription {
  const m = object(value ?? { served: true }, '"model"');
  if (m.served === true) return modelFromGGUF(served.header, 'served model');
  if (m.config !== undefined) return modelFromConfig(m.config, 'config.json');
  const shape = m.shape === undefined ? undefined : shapeFlags(m.shape);
  if (m.params !== undefined) {
    if (typeof m.params !== 'string' && typeof m.params !== 'number') throw invalidRequest('"model.params" must be a count such as "7B"');
    return modelFromParamCount(parseParamCount(String(m.params)), shape && shapeFromFlags(shape), `${m.params} parameters`);
  }
  if (shape) return modelFromShape(shapeFromFlags(shape), 'model from shape');
  throw invalidRequest('"model" needs one of: served, config, params, shape', 'model');
}

function estimateRequest(body: unknown, served: ServedModel): EstimateSpec {
  const b = object(body, 'the request body');
  const bool = (key: string) => {
    if (b[key] !== undefined && typeof b[key] !== 'boolean') throw invalidRequest(`"${key}" must be a boolean`, key);
    return b[key] as boolean | undefined;
  };
  return {
    model: estimateModel(b.model, served),
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

/** The routes, for the server's table. */
export function inspectRoutes(engine: ServingEngine, served: ServedModel): Route[] {
  const pages = new Map<PageName, Buffer>();
  const guard = (handler: Route['handler']): Route['handler'] => async (request, reply) => {
    try {
      return await handler(request, reply);
    } catch (e) {
      throw asClientError(e);
    }
  };
  return [
    { method: 'GET', url: '/inspect', handler: (_request, reply) => sendPage(reply, 'inspect', pages) },
    { method: 'POST', url: '/inspect/api', handler: guard(async (request) => inspectorOf(engine).trace(inspectRequest(request.body))) },
    { method: 'GET', url: '/inspect/api/blocks', handler: () => inspectorOf(engine).blocks() },
    { method: 'GET', url: '/estimate', handler: (_request, reply) => sendPage(reply, 'estimate', pages) },
    { method: 'POST', url: '/estimate/api', handler: guard(async (request) => estimateMemory(estimateRequest(request.body, served))) },
  ];
}
