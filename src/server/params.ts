// Request bodies of /v1/completions, /v1/chat/completions and /v1/embeddings: one JSON schema per endpoint (checked
// by the HTTP framework before the handler runs: types, ranges, no unknown parameters), then the few checks that
// span fields, and the typed request the handlers use. null counts as absent, as in OpenAI's API. A schema error
// becomes a 400 naming the parameter (`schemaError`). Non-finite numbers (1e400 parses as Infinity) fail every
// schema: ajv's numbers are finite.
//
// Sampling defaults are OpenAI's (temperature 1, top_p 1, no top-k / min-p), not the CLI's llama.cpp defaults.

import type { ChatMessage } from '../generate/chat-template.js';
import type { SamplingParams } from '../generate/sampler.js';
import { ApiError, invalidRequest } from './errors.js';
import { readLogitBias, readOutputGrammar, type RequestedOutput } from './output-params.js';
import { readMessageToolCalls, readTools, type ToolRequest } from './tool-params.js';

/** most completions one request may ask for (each holds its own KV blocks while it runs) */
export const MAX_N = 16;
/** most top log-probabilities per token */
export const MAX_TOP_LOGPROBS = 20;
const MAX_STOP_STRINGS = 16;
/** most inputs one embeddings request may hold (OpenAI's limit) */
export const MAX_EMBEDDING_INPUTS = 2048;

// ---- schemas ----

type Schema = Record<string, unknown>;

const nullable = (type: string, extra: Schema = {}): Schema => ({ type: [type, 'null'], ...extra });
const number = (minimum: number, maximum: number): Schema => nullable('number', { minimum, maximum });
const integer = (minimum: number, maximum = Number.MAX_SAFE_INTEGER): Schema => nullable('integer', { minimum, maximum });
const tokenIds: Schema = { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } };

/** prompt (or input): a string, an array of strings, an array of token ids, or an array of token-id arrays */
function promptSchema(param: string, nonEmptyText: boolean, maxItems?: number): Schema {
  const text = nonEmptyText ? { type: 'string', minLength: 1 } : { type: 'string' };
  const list = (items: Schema) => ({ type: 'array', minItems: 1, ...(maxItems ? { maxItems } : {}), items });
  return {
    description: `${param} must be a string, an array of strings, an array of token ids or an array of token-id arrays` +
      (nonEmptyText ? ' (no empty strings)' : '') + (maxItems ? `, with at most ${maxItems} items` : ''),
    anyOf: [text, list(text), tokenIds, list(tokenIds)],
  };
}

/** A parameter accepted only with the value that changes nothing; `message` says so when it has another. */
const only = (allowed: Schema, message: string): Schema => ({ description: message, anyOf: [{ type: 'null' }, allowed] });

const GENERATION_PROPERTIES: Record<string, Schema> = {
  model: nullable('string'),
  stream: nullable('boolean'),
  stream_options: nullable('object', { properties: { include_usage: nullable('boolean') }, additionalProperties: false }),
  temperature: number(0, 2),
  top_p: number(0, 1),
  top_k: integer(-1),
  min_p: number(0, 1),
  repetition_penalty: nullable('number', { exclusiveMinimum: 0, maximum: 10 }),
  presence_penalty: number(-2, 2),
  frequency_penalty: number(-2, 2),
  seed: integer(Number.MIN_SAFE_INTEGER),
  // read by output-params.ts, which names what is wrong inside them
  logit_bias: {},
  response_format: {},
  grammar: {},
  user: nullable('string'), // accepted and unused: an end-user id is only for the client's records
  n: integer(1, MAX_N),
  stop: {
    description: `stop must be a non-empty string or an array of at most ${MAX_STOP_STRINGS} non-empty strings`,
    anyOf: [{ type: 'null' }, { type: 'string', minLength: 1 }, { type: 'array', maxItems: MAX_STOP_STRINGS, items: { type: 'string', minLength: 1 } }],
  },
  max_tokens: integer(1),
  ignore_eos: nullable('boolean'),
};

export const COMPLETION_SCHEMA: Schema = {
  type: 'object',
  required: ['prompt'],
  additionalProperties: false,
  properties: {
    ...GENERATION_PROPERTIES,
    prompt: promptSchema('prompt', false),
    logprobs: integer(0, MAX_TOP_LOGPROBS),
    echo: nullable('boolean'),
    suffix: only({ not: {} }, 'suffix is not supported'),
    best_of: integer(1, MAX_N),
  },
};

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

const MESSAGE_SCHEMA: Schema = {
  type: 'object',
  required: ['role'],
  additionalProperties: false,
  properties: {
    role: { enum: ROLES },
    content: {
      description: 'content must be a string or an array of {"type": "text", "text": ...} parts',
      anyOf: [
        { type: 'null' },
        { type: 'string' },
        { type: 'array', items: { type: 'object', required: ['type', 'text'], additionalProperties: false, properties: { type: { const: 'text' }, text: { type: 'string' } } } },
      ],
    },
    name: nullable('string'),
    tool_calls: {}, // an assistant's calls: read by tool-params.ts
    tool_call_id: nullable('string'),
  },
};

export const CHAT_SCHEMA: Schema = {
  type: 'object',
  required: ['messages'],
  additionalProperties: false,
  properties: {
    ...GENERATION_PROPERTIES,
    messages: { type: 'array', minItems: 1, items: MESSAGE_SCHEMA },
    logprobs: nullable('boolean'),
    top_logprobs: integer(0, MAX_TOP_LOGPROBS),
    max_completion_tokens: integer(1),
    // read by tool-params.ts
    tools: {},
    tool_choice: {},
    parallel_tool_calls: {},
  },
};

export const EMBEDDING_SCHEMA: Schema = {
  type: 'object',
  required: ['input'],
  additionalProperties: false,
  properties: {
    model: nullable('string'),
    input: promptSchema('input', true, MAX_EMBEDDING_INPUTS),
    encoding_format: { enum: ['float', 'base64', null] },
    dimensions: integer(1),
    user: nullable('string'),
  },
};

/** One error of ajv (the fields kiln reads; `parentSchema` is there with ajv's `verbose` option). */
export interface SchemaError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
  parentSchema?: Schema;
  data?: unknown;
}

const SIZE_MESSAGES: Record<string, (param: string, limit: number, data: unknown) => string> = {
  minLength: (param) => `${param} must not be an empty string`,
  minItems: (param) => `${param} must not be empty`,
  maxItems: (param, limit, data) => `${param} holds at most ${limit} items, got ${(data as unknown[]).length}`,
};

/**
 * The 400 for a body that fails its schema. ajv stops at the first error; under anyOf the last one is the anyOf's
 * own, at the field itself, whose schema's description says what the field may be.
 */
export function schemaError(errors: readonly SchemaError[]): ApiError {
  const error = errors[errors.length - 1];
  // /messages/0/role → messages[0].role; a prompt's or stop's own items are named by the field
  let param = error.instancePath.split('/').slice(1).map((key) => (/^\d+$/.test(key) ? `[${key}]` : `.${key}`)).join('').replace(/^\./, '');
  if (error.keyword === 'required') param = param ? `${param}.${error.params.missingProperty}` : String(error.params.missingProperty);
  if (error.keyword === 'additionalProperties') {
    const name = param ? `${param}.${error.params.additionalProperty}` : String(error.params.additionalProperty);
    return invalidRequest(`unrecognized parameter: ${name}`, name);
  }
  param = param.replace(/(\[\d+\])+$/, '');
  if (param === '') return invalidRequest('the request body must be a JSON object');
  // a value of the right shape that breaks a size limit is told so; other anyOf failures get the field's description
  const sized = errors.find((e) => e.instancePath === error.instancePath && e.keyword in SIZE_MESSAGES);
  if (sized) return invalidRequest(SIZE_MESSAGES[sized.keyword](param, sized.params.limit as number, sized.data), param);
  const description = error.parentSchema?.description;
  if (typeof description === 'string') return invalidRequest(description, param);
  const allowed = error.keyword === 'enum' ? ` (${(error.params.allowedValues as unknown[]).filter((v) => v !== null).map((v) => JSON.stringify(v)).join(', ')})` : '';
  return invalidRequest(`${param} ${error.message ?? 'is invalid'}${allowed}`, param);
}

// ---- typed requests ----

/** A prompt as the client sent it: text to tokenize, or token ids. */
export type PromptInput = { text: string } | { tokens: number[] };

/** What both endpoints share. */
export interface GenerationParams {
  model: string | undefined;
  stream: boolean;
  includeUsage: boolean;
  n: number;
  stop: string[];
  /** undefined: the endpoint's default */
  maxTokens: number | undefined;
  sampling: Partial<SamplingParams>;
  ignoreEos: boolean;
  /** top log-probabilities per token; null when the client asked for no log-probabilities */
  topLogprobs: number | null;
  /** logit_bias and the grammar (response_format or grammar) */
  output: RequestedOutput;
}

export interface CompletionRequest extends GenerationParams {
  prompts: PromptInput[];
  /** each choice opens with its prompt */
  echo: boolean;
}

export interface ChatRequest extends GenerationParams {
  messages: ChatMessage[];
  /** undefined: no tools */
  tools: ToolRequest | undefined;
}

type Prompt = string | string[] | number[] | number[][];

/** The generation fields of a body its schema accepted (null: absent). */
interface GenerationBody {
  model?: string | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  seed?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  max_tokens?: number | null;
  ignore_eos?: boolean | null;
  logit_bias?: unknown;
  response_format?: unknown;
  grammar?: unknown;
}

export interface CompletionBody extends GenerationBody {
  prompt: Prompt;
  logprobs?: number | null;
  echo?: boolean | null;
  best_of?: number | null;
}

export interface ChatBody extends GenerationBody {
  messages: { role: string; content?: string | { type: 'text'; text: string }[] | null; tool_calls?: unknown; tool_call_id?: string | null }[];
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  max_completion_tokens?: number | null;
  tools?: unknown;
  tool_choice?: unknown;
  parallel_tool_calls?: unknown;
}

export interface EmbeddingBody {
  model?: string | null;
  input: Prompt;
  encoding_format?: 'float' | 'base64' | null;
  dimensions?: number | null;
}

const OPENAI_DEFAULTS: Partial<SamplingParams> = { temperature: 1, top_p: 1, top_k: 0, min_p: 0, repeat_penalty: 1, presence_penalty: 0, frequency_penalty: 0 };

export function completionRequest(body: CompletionBody): CompletionRequest {
  const params = generationParams(body);
  if (body.best_of != null && body.best_of !== params.n) throw invalidRequest('best_of other than n is not supported', 'best_of');
  const echo = body.echo ?? false;
  if (echo && body.logprobs != null) throw invalidRequest('echo with logprobs is not supported (the prompt\'s log-probabilities are not computed)', 'echo');
  return { ...params, topLogprobs: body.logprobs ?? null, prompts: promptInputs(body.prompt), echo };
}

export function chatRequest(body: ChatBody): ChatRequest {
  const params = generationParams(body);
  const logprobs = body.logprobs ?? false;
  if (body.top_logprobs != null && !logprobs) throw invalidRequest('top_logprobs needs logprobs: true', 'top_logprobs');
  const maxCompletionTokens = body.max_completion_tokens ?? undefined;
  if (maxCompletionTokens !== undefined && params.maxTokens !== undefined && maxCompletionTokens !== params.maxTokens) {
    throw invalidRequest('max_tokens and max_completion_tokens differ; give one', 'max_completion_tokens');
  }
  const tools = readTools(body.tools, body.tool_choice, body.parallel_tool_calls);
  return { ...params, maxTokens: params.maxTokens ?? maxCompletionTokens, topLogprobs: logprobs ? (body.top_logprobs ?? 0) : null, messages: body.messages.map(chatMessage), tools };
}

/** An assistant's content may be null beside its tool_calls; a tool message names the call it answers. */
function chatMessage({ role, content, tool_calls, tool_call_id }: ChatBody['messages'][number], i: number): ChatMessage {
  const toolCalls = role === 'assistant' ? readMessageToolCalls(tool_calls, `messages[${i}].tool_calls`) : undefined;
  if (content == null && !toolCalls) throw invalidRequest(`messages[${i}].content is required`, `messages[${i}].content`);
  if (role === 'tool' && tool_call_id == null) throw invalidRequest(`messages[${i}].tool_call_id is required in a tool message`, `messages[${i}].tool_call_id`);
  return {
    // templates know "system"; "developer" is OpenAI's newer name for it
    role: role === 'developer' ? 'system' : role,
    content: content == null ? '' : typeof content === 'string' ? content : content.map((part) => part.text).join(''),
    ...(toolCalls ? { tool_calls: toolCalls } : {}),
    ...(role === 'tool' ? { tool_call_id: tool_call_id! } : {}),
  };
}

export interface EmbeddingRequest {
  model: string | undefined;
  inputs: PromptInput[];
  /** vectors as base64 of little-endian float32 (else JSON numbers) */
  base64: boolean;
}

/** An embeddings request for a model whose embeddings have `dimensions` values. */
export function embeddingRequest(body: EmbeddingBody, dimensions: number): EmbeddingRequest {
  if (body.dimensions != null && body.dimensions !== dimensions) {
    throw invalidRequest(`this model's embeddings have ${dimensions} dimensions and cannot be shortened; dimensions ${body.dimensions} is not supported`, 'dimensions');
  }
  return { model: body.model ?? undefined, inputs: promptInputs(body.input), base64: body.encoding_format === 'base64' };
}

function generationParams(body: GenerationBody): Omit<GenerationParams, 'topLogprobs'> {
  const stream = body.stream ?? false;
  if (body.stream_options != null && !stream) throw invalidRequest('stream_options is only allowed with stream: true', 'stream_options');
  const sampling: Partial<SamplingParams> = {
    ...OPENAI_DEFAULTS,
    ...defined({
      temperature: body.temperature,
      top_p: body.top_p,
      top_k: body.top_k,
      min_p: body.min_p,
      repeat_penalty: body.repetition_penalty,
      presence_penalty: body.presence_penalty,
      frequency_penalty: body.frequency_penalty,
      seed: body.seed,
    }),
  };
  return {
    model: body.model ?? undefined,
    stream,
    includeUsage: body.stream_options?.include_usage ?? false,
    n: body.n ?? 1,
    stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    maxTokens: body.max_tokens ?? undefined,
    sampling,
    ignoreEos: body.ignore_eos ?? false,
    output: { logitBias: readLogitBias(body.logit_bias), grammar: readOutputGrammar(body.response_format, body.grammar) },
  };
}

function promptInputs(prompt: Prompt): PromptInput[] {
  if (typeof prompt === 'string') return [{ text: prompt }];
  if (prompt.every((p) => typeof p === 'number')) return [{ tokens: prompt as number[] }];
  return (prompt as (string | number[])[]).map((p) => (typeof p === 'string' ? { text: p } : { tokens: p }));
}

function defined<T extends object>(object: T): { [K in keyof T]?: NonNullable<T[K]> } {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined && v !== null)) as { [K in keyof T]?: NonNullable<T[K]> };
}
