// Request fields that shape the output rather than sample it — logit_bias, response_format ({"type": "text"},
// "json_object", or "json_schema" with its schema) and kiln's own `grammar` (GBNF text), on both endpoints — and
// checking them into the engine's output constraints (bias first, then the grammar's mask). Kept
// apart from params.ts's schemas so that the generation handlers only call `checkedOutput`.

import type { OutputConstraints } from '../generate/output-constraints.js';
import { compileGrammar, GrammarError } from '../grammar/gbnf.js';
import { jsonObjectGrammar, jsonSchemaToGrammar, SchemaError } from '../grammar/json-schema.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { invalidRequest } from './errors.js';

/** OpenAI's bound on a logit_bias value */
const MAX_BIAS = 100;

/** logit_bias: {"token id": bias in [−100, 100]}; null or {} means none. */
export function readLogitBias(value: unknown): Map<number, number> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidRequest('logit_bias must be an object of {"token id": bias}', 'logit_bias');
  const bias = new Map<number, number>();
  for (const [key, v] of Object.entries(value)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(id)) throw invalidRequest(`logit_bias keys must be token ids, got "${key}"`, 'logit_bias');
    if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_BIAS) {
      throw invalidRequest(`logit_bias values must be numbers in [-${MAX_BIAS}, ${MAX_BIAS}], got ${JSON.stringify(v)} for token ${key}`, 'logit_bias');
    }
    bias.set(id, v);
  }
  return bias.size > 0 ? bias : undefined;
}

/** A grammar for the output, as GBNF text, and the request field it came from (named by its errors). */
export interface OutputGrammar {
  gbnf: string;
  param: string;
}

/**
 * response_format and grammar: at most one of them constrains the output. A json_schema's schema becomes a grammar
 * here, so an unsupported keyword is a 400 naming it before anything runs.
 */
export function readOutputGrammar(responseFormat: unknown, grammar: unknown): OutputGrammar | undefined {
  const format = readResponseFormat(responseFormat);
  if (grammar === undefined || grammar === null) return format;
  if (typeof grammar !== 'string' || grammar.trim() === '') throw invalidRequest('grammar must be GBNF text', 'grammar');
  if (format) throw invalidRequest('give either grammar or a response_format other than text, not both', 'grammar');
  return { gbnf: grammar, param: 'grammar' };
}

function readResponseFormat(value: unknown): OutputGrammar | undefined {
  if (value === undefined || value === null) return undefined;
  const param = 'response_format';
  const type = typeof value === 'object' && !Array.isArray(value) ? (value as { type?: unknown }).type : undefined;
  const allowed = (fields: string[]) => {
    const unknown = Object.keys(value as object).find((key) => !fields.includes(key));
    if (unknown !== undefined) throw invalidRequest(`unrecognized parameter: ${param}.${unknown}`, `${param}.${unknown}`);
  };
  if (type === 'text') { allowed(['type']); return undefined; }
  if (type === 'json_object') { allowed(['type']); return { gbnf: jsonObjectGrammar(), param }; }
  if (type !== 'json_schema') throw invalidRequest('response_format.type must be "text", "json_object" or "json_schema"', param);
  allowed(['type', 'json_schema']);
  const spec = (value as { json_schema?: unknown }).json_schema;
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw invalidRequest('response_format.json_schema must be an object with name and schema', `${param}.json_schema`);
  const { name, schema, strict, description } = spec as Record<string, unknown>;
  const unknown = Object.keys(spec).find((key) => !['name', 'schema', 'strict', 'description'].includes(key));
  if (unknown !== undefined) throw invalidRequest(`unrecognized parameter: ${param}.json_schema.${unknown}`, `${param}.json_schema.${unknown}`);
  if (typeof name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(name)) {
    throw invalidRequest('response_format.json_schema.name must be 1 to 64 letters, digits, _ or -', `${param}.json_schema.name`);
  }
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean') throw invalidRequest('response_format.json_schema.strict must be a boolean', `${param}.json_schema.strict`);
  if (description !== undefined && typeof description !== 'string') throw invalidRequest('response_format.json_schema.description must be a string', `${param}.json_schema.description`);
  // the output is held to the schema whether strict is set or not: nothing else would make it parse
  return { gbnf: schemaGrammar(schema ?? true, `${param}.json_schema.schema`), param: `${param}.json_schema.schema` };
}

/** The grammar of a JSON schema; an unsupported keyword is a 400 naming it. */
export function schemaGrammar(schema: unknown, param: string): string {
  try {
    return jsonSchemaToGrammar(schema);
  } catch (e) {
    if (e instanceof SchemaError) throw invalidRequest(e.message, param, 'unsupported_schema');
    throw e;
  }
}

/** What shapes a request's output, as read from its fields. */
export interface RequestedOutput {
  logitBias: Map<number, number> | undefined;
  grammar: OutputGrammar | undefined;
}

/**
 * The engine's output constraints for a request, checked against the vocabulary here — bias ids inside it, the
 * grammar compiled (a 400 if it does not compile) — before anything is submitted; undefined when there are none.
 */
export function checkedOutput(requested: RequestedOutput, tokenizer: Tokenizer): OutputConstraints | undefined {
  const { logitBias, grammar } = requested;
  const vocabSize = tokenizer.vocabSize;
  if (logitBias) {
    const outside = [...logitBias.keys()].find((id) => id >= vocabSize);
    if (outside !== undefined) throw invalidRequest(`logit_bias token ${outside} is outside the vocabulary (size ${vocabSize})`, 'logit_bias');
  }
  try {
    // compiled only: the vocabulary's token trie is built where the engine runs, not on the HTTP thread
    if (grammar) compileGrammar(grammar.gbnf);
  } catch (e) {
    if (e instanceof GrammarError) throw invalidRequest(`the grammar does not compile: ${e.message}`, grammar!.param);
    throw e;
  }
  if (!logitBias && !grammar) return undefined;
  return { ...(logitBias ? { logitBias: [...logitBias] } : {}), ...(grammar ? { grammar: grammar.gbnf } : {}) };
}
