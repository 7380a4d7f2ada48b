// Request bodies of /v1/completions, /v1/chat/completions and /v1/embeddings, checked field by field (type and range) and turned
// into plain typed requests. Anything wrong is a 400 naming the parameter; unknown parameters are rejected
// rather than silently ignored, so a client never believes a setting took effect when it did not.
//
// Sampling defaults are OpenAI's (temperature 1, top_p 1, no top-k / min-p), not the CLI's llama.cpp defaults.

import type { ChatMessage } from '../generate/chat-template.js';
import type { SamplingParams } from '../generate/sampler.js';
import { invalidRequest } from './errors.js';
import { readLogitBias, readOutputGrammar, type OutputConstraints } from './output-params.js';
import { readMessageToolCalls, readTools, type ToolRequest } from './tool-params.js';

/** most completions one request may ask for (each holds its own KV blocks while it runs) */
export const MAX_N = 16;
/** most top log-probabilities per token */
export const MAX_TOP_LOGPROBS = 20;
const MAX_STOP_STRINGS = 16;
/** most inputs one embeddings request may hold (OpenAI's limit) */
export const MAX_EMBEDDING_INPUTS = 2048;

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
  output: OutputConstraints;
}

export interface CompletionRequest extends GenerationParams {
  prompts: PromptInput[];
  /** each choice's text begins with its prompt */
  echo: boolean;
}

export interface ChatRequest extends GenerationParams {
  messages: ChatMessage[];
  /** undefined: no tools */
  tools: ToolRequest | undefined;
}

const OPENAI_DEFAULTS: Partial<SamplingParams> = { temperature: 1, top_p: 1, top_k: 0, min_p: 0, repeat_penalty: 1, presence_penalty: 0, frequency_penalty: 0 };

export function parseCompletionRequest(body: unknown): CompletionRequest {
  const fields = new Fields(body);
  const params = readGenerationParams(fields);
  const logprobs = fields.integer('logprobs', 0, MAX_TOP_LOGPROBS);
  const echo = fields.boolean('echo') ?? false;
  if (echo && logprobs !== undefined) throw invalidRequest('echo with logprobs is not supported (the prompt\'s log-probabilities are not computed)', 'echo');
  fields.only('suffix', null, 'suffix is not supported');
  const bestOf = fields.integer('best_of', 1, MAX_N);
  if (bestOf !== undefined && bestOf !== params.n) throw invalidRequest('best_of other than n is not supported', 'best_of');
  const prompts = readPrompts(fields.value('prompt'), 'prompt');
  fields.rejectUnknown();
  return { ...params, topLogprobs: logprobs ?? null, prompts, echo };
}

export function parseChatRequest(body: unknown): ChatRequest {
  const fields = new Fields(body);
  const params = readGenerationParams(fields);
  const logprobs = fields.boolean('logprobs') ?? false;
  const top = fields.integer('top_logprobs', 0, MAX_TOP_LOGPROBS);
  if (top !== undefined && !logprobs) throw invalidRequest('top_logprobs needs logprobs: true', 'top_logprobs');
  const maxCompletionTokens = fields.integer('max_completion_tokens', 1);
  if (maxCompletionTokens !== undefined && params.maxTokens !== undefined && maxCompletionTokens !== params.maxTokens) {
    throw invalidRequest('max_tokens and max_completion_tokens differ; give one', 'max_completion_tokens');
  }
  const tools = readTools(fields.value('tools'), fields.value('tool_choice'), fields.value('parallel_tool_calls'));
  const messages = readMessages(fields.value('messages'));
  fields.rejectUnknown();
  return { ...params, maxTokens: params.maxTokens ?? maxCompletionTokens, topLogprobs: logprobs ? (top ?? 0) : null, messages, tools };
}

export interface EmbeddingRequest {
  model: string | undefined;
  inputs: PromptInput[];
  /** vectors as base64 of little-endian float32 (else JSON numbers) */
  base64: boolean;
}

/** An embeddings request for a model whose embeddings have `dimensions` values. */
export function parseEmbeddingRequest(body: unknown, dimensions: number): EmbeddingRequest {
  const fields = new Fields(body);
  const model = fields.string('model');
  const inputs = readPrompts(fields.value('input'), 'input');
  if (inputs.length > MAX_EMBEDDING_INPUTS) throw invalidRequest(`input holds at most ${MAX_EMBEDDING_INPUTS} items, got ${inputs.length}`, 'input');
  if (inputs.some((input) => 'text' in input && input.text === '')) throw invalidRequest('input must not be an empty string', 'input');
  const format = fields.string('encoding_format') ?? 'float';
  if (format !== 'float' && format !== 'base64') throw invalidRequest(`encoding_format must be "float" or "base64", got "${format}"`, 'encoding_format');
  const asked = fields.integer('dimensions', 1);
  if (asked !== undefined && asked !== dimensions) {
    throw invalidRequest(`this model's embeddings have ${dimensions} dimensions and cannot be shortened; dimensions ${asked} is not supported`, 'dimensions');
  }
  fields.string('user'); // accepted and unused, as in the generation endpoints
  fields.rejectUnknown();
  return { model, inputs, base64: format === 'base64' };
}

function readGenerationParams(fields: Fields): Omit<GenerationParams, 'topLogprobs'> {
  const model = fields.string('model');
  const stream = fields.boolean('stream') ?? false;
  const streamOptions = fields.value('stream_options');
  let includeUsage = false;
  if (streamOptions !== undefined && streamOptions !== null) {
    if (!stream) throw invalidRequest('stream_options is only allowed with stream: true', 'stream_options');
    const options = new Fields(streamOptions, 'stream_options');
    includeUsage = options.boolean('include_usage') ?? false;
    options.rejectUnknown();
  }
  const sampling: Partial<SamplingParams> = {
    ...OPENAI_DEFAULTS,
    ...defined({
      temperature: fields.number('temperature', 0, 2),
      top_p: fields.number('top_p', 0, 1),
      top_k: fields.integer('top_k', -1),
      min_p: fields.number('min_p', 0, 1),
      repeat_penalty: fields.number('repetition_penalty', Number.MIN_VALUE, 10),
      presence_penalty: fields.number('presence_penalty', -2, 2),
      frequency_penalty: fields.number('frequency_penalty', -2, 2),
      seed: fields.integer('seed', Number.MIN_SAFE_INTEGER),
    }),
  };
  fields.string('user'); // accepted and unused, as an end-user id is only for the client's records
  return {
    model,
    stream,
    includeUsage,
    n: fields.integer('n', 1, MAX_N) ?? 1,
    stop: readStop(fields.value('stop')),
    maxTokens: fields.integer('max_tokens', 1),
    sampling,
    ignoreEos: fields.boolean('ignore_eos') ?? false,
    output: { logitBias: readLogitBias(fields.value('logit_bias')), grammar: readOutputGrammar(fields.value('response_format'), fields.value('grammar')) },
  };
}

function readStop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw invalidRequest('stop must be a non-empty string or an array of non-empty strings', 'stop');
  }
  if (list.length > MAX_STOP_STRINGS) throw invalidRequest(`stop holds at most ${MAX_STOP_STRINGS} strings, got ${list.length}`, 'stop');
  return list;
}

/** prompt (or input): a string, an array of strings, an array of token ids, or an array of token-id arrays */
function readPrompts(value: unknown, param: string): PromptInput[] {
  if (value === undefined || value === null) throw invalidRequest(`${param} is required`, param);
  if (typeof value === 'string') return [{ text: value }];
  if (Array.isArray(value) && value.length === 0) throw invalidRequest(`${param} must not be empty`, param);
  const wrong = () => invalidRequest(`${param} must be a string, an array of strings, an array of token ids or an array of token-id arrays`, param);
  if (!Array.isArray(value)) throw wrong();
  if (value.every((v) => typeof v === 'number')) return [{ tokens: readTokenIds(value, param) }];
  if (value.every((v) => typeof v === 'string')) return value.map((text: string) => ({ text }));
  if (value.every((v) => Array.isArray(v))) return value.map((ids: unknown[]) => ({ tokens: readTokenIds(ids, param) }));
  throw wrong();
}

function readTokenIds(ids: unknown[], param: string): number[] {
  if (ids.length === 0) throw invalidRequest(`a token-id ${param} must not be empty`, param);
  if (!ids.every((id) => Number.isInteger(id) && (id as number) >= 0)) throw invalidRequest('token ids must be non-negative integers', param);
  return ids as number[];
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

/**
 * messages: [{role, content}] where content is a string or an array of {type: "text", text} parts; an assistant's
 * content may be null beside its tool_calls, and a tool message names the call it answers (tool_call_id)
 */
function readMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw invalidRequest('messages must be a non-empty array', 'messages');
  return value.map((message, i) => {
    const fields = new Fields(message, `messages[${i}]`);
    const role = fields.string('role');
    if (role === undefined || !ROLES.has(role)) {
      throw invalidRequest(`messages[${i}].role must be one of ${[...ROLES].join(', ')}`, `messages[${i}].role`);
    }
    const toolCalls = role === 'assistant' ? readMessageToolCalls(fields.value('tool_calls'), `messages[${i}].tool_calls`) : undefined;
    const rawContent = fields.value('content');
    const content = toolCalls && (rawContent === null || rawContent === undefined) ? '' : readContent(rawContent, `messages[${i}].content`);
    const toolCallId = role === 'tool' ? fields.string('tool_call_id') : undefined;
    if (role === 'tool' && toolCallId === undefined) throw invalidRequest(`messages[${i}].tool_call_id is required in a tool message`, `messages[${i}].tool_call_id`);
    fields.string('name');
    fields.rejectUnknown();
    // templates know "system"; "developer" is OpenAI's newer name for it
    return { role: role === 'developer' ? 'system' : role, content, ...(toolCalls ? { tool_calls: toolCalls } : {}), ...(toolCallId ? { tool_call_id: toolCallId } : {}) };
  });
}

function readContent(value: unknown, param: string): string {
  if (typeof value === 'string') return value;
  const parts = Array.isArray(value) ? value : [];
  const texts = parts.map((part) => (part && typeof part === 'object' && part.type === 'text' && typeof part.text === 'string' ? part.text : undefined));
  if (!Array.isArray(value) || texts.includes(undefined)) {
    throw invalidRequest(`${param} must be a string or an array of {"type": "text", "text": ...} parts`, param);
  }
  return texts.join('');
}

function defined<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Typed reads of one JSON object's fields; null counts as absent. Remembers which fields were read so that
 * `rejectUnknown` can name the first one nobody asked for.
 */
class Fields {
  private readonly object: Record<string, unknown>;
  private readonly seen = new Set<string>();

  constructor(value: unknown, private readonly path = '') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw invalidRequest(path ? `${path} must be an object` : 'the request body must be a JSON object', path || null);
    }
    this.object = value as Record<string, unknown>;
  }

  value(name: string): unknown {
    this.seen.add(name);
    return this.object[name];
  }

  number(name: string, min = -Infinity, max = Infinity): number | undefined {
    const v = this.value(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(`${this.param(name)} must be a number`, this.param(name));
    if (v < min || v > max) throw invalidRequest(`${this.param(name)} must be in [${min}, ${max}], got ${v}`, this.param(name));
    return v;
  }

  integer(name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.value(name);
    if (v === undefined || v === null) return undefined;
    if (!Number.isSafeInteger(v)) throw invalidRequest(`${this.param(name)} must be an integer`, this.param(name));
    const n = v as number;
    if (n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
      throw invalidRequest(`${this.param(name)} must be an integer ${range}, got ${n}`, this.param(name));
    }
    return n;
  }

  boolean(name: string): boolean | undefined {
    const v = this.value(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw invalidRequest(`${this.param(name)} must be a boolean`, this.param(name));
    return v;
  }

  string(name: string): string | undefined {
    const v = this.value(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw invalidRequest(`${this.param(name)} must be a string`, this.param(name));
    return v;
  }

  /** A parameter the server accepts only with the value that changes nothing (or absent). */
  only(name: string, allowed: unknown, message: string): void {
    const v = this.value(name);
    if (v === undefined || v === null || JSON.stringify(v) === JSON.stringify(allowed)) return;
    throw invalidRequest(message, this.param(name));
  }

  rejectUnknown(): void {
    const unknown = Object.keys(this.object).find((key) => !this.seen.has(key));
    if (unknown !== undefined) throw invalidRequest(`unrecognized parameter: ${this.param(unknown)}`, this.param(unknown));
  }

  private param(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }
}
