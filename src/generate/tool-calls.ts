// Tool calling through the chat template (OpenAI's `tools` → the Jinja `tools` variable, as Hugging Face templates
// expect) and back out of the generated text, by template family:
//   hermes   Hermes / Qwen:     <tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>  (one block per call)
//   llama3   Llama 3.x:         [<|python_tag|>]{"name": …, "parameters": {…}}            (calls joined by ; )
//   mistral  Mistral:           [TOOL_CALLS][{"name": …, "arguments": {…}}, …]
//   generic  any other template that renders `tools`, and kiln's own tool prompt for templates that do not:
//            {"name": …, "arguments": {…}}, or a JSON array of them
// A forced call (tool_choice "required" or a named function) is generated under a grammar of the family's format
// with each tool's parameters as its JSON schema, so the arguments always parse and validate.

import { gbnfLiteral, jsonSchemasToGrammar } from '../grammar/json-schema.js';
import type { ChatMessage, ChatTemplate } from './chat-template.js';

export type ToolFamily = 'hermes' | 'llama3' | 'mistral' | 'generic';

/** An OpenAI function tool. */
export interface ToolSpec {
  name: string;
  description?: string;
  /** a JSON schema of the arguments object */
  parameters: Record<string, unknown>;
}

export interface ToolCall {
  id: string;
  name: string;
  /** the arguments as JSON text (OpenAI's form) */
  arguments: string;
}

/** none: no calls; auto: the model decides; required: at least one call; {name}: a call of that tool. */
export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

/** The family a chat template writes tool calls in; null when the template never renders `tools`. */
export function toolFamily(templateSource: string): ToolFamily | null {
  if (templateSource.includes('<tool_call>')) return 'hermes';
  if (templateSource.includes('[TOOL_CALLS]')) return 'mistral';
  if (templateSource.includes('<|python_tag|>') || (templateSource.includes('<|start_header_id|>') && /\btools\b/.test(templateSource))) return 'llama3';
  return /\btools\b/.test(templateSource) ? 'generic' : null;
}

/** The tools as the template's `tools` variable: OpenAI's [{type: "function", function: {...}}]. */
export function templateTools(tools: readonly ToolSpec[]): object[] {
  return tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description ?? '', parameters: t.parameters } }));
}

/**
 * The conversation as the template should see it: a call's arguments as objects (templates apply `tojson`); for a
 * template without tool support, kiln's own tool prompt as a system message and past calls written into the text.
 */
export function templateMessages(messages: readonly ChatMessage[], tools: readonly ToolSpec[], templateKnowsTools: boolean): ChatMessage[] {
  const parsedCalls = (m: ChatMessage) => m.tool_calls?.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: parseOr(c.arguments) } }));
  if (templateKnowsTools) return messages.map((m) => (m.tool_calls ? { ...m, tool_calls: parsedCalls(m) as never } : m));
  const written = messages.map((m): ChatMessage => {
    if (!m.tool_calls) return m;
    const calls = m.tool_calls.map((c) => `{"name": ${JSON.stringify(c.name)}, "arguments": ${c.arguments}}`);
    return { role: m.role, content: [m.content, calls.length === 1 ? calls[0] : `[${calls.join(', ')}]`].filter(Boolean).join('\n') };
  });
  if (tools.length === 0) return written;
  const prompt = `You can call these tools:\n${tools.map((t) => JSON.stringify(templateTools([t])[0])).join('\n')}\n` +
    'To call a tool, answer with only {"name": <tool name>, "arguments": <arguments object>}.';
  const [first, ...rest] = written;
  return first?.role === 'system' ? [{ role: 'system', content: `${first.content}\n\n${prompt}` }, ...rest] : [{ role: 'system', content: prompt }, ...written];
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class ToolSupportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolSupportError';
  }
}

/** A chat prompt with tools, and how to read (and force) the answer's calls. */
export interface ToolChat {
  prompt: string;
  /** the grammar of a forced call */
  grammar: string | undefined;
  /** how calls are read out of the text; undefined when they are not (no tools, or tool_choice none) */
  family: ToolFamily | undefined;
  forced: boolean;
}

/**
 * The prompt of a conversation with tools. A template that never renders `tools` cannot let the model choose
 * (tool_choice auto is a ToolSupportError) unless `ownPromptForAuto`, which reads a generic JSON call out of the
 * answer of kiln's own tool prompt; a forced call works with any template.
 */
export function prepareToolChat(
  template: ChatTemplate, messages: readonly ChatMessage[], tools: readonly ToolSpec[], choice: ToolChoice, parallel: boolean, ownPromptForAuto = false,
): ToolChat {
  const native = toolFamily(template.source);
  if (tools.length === 0 || choice === 'none') {
    return { prompt: template.render(templateMessages(messages, [], native !== null)), grammar: undefined, family: undefined, forced: false };
  }
  const forced = choice !== 'auto';
  if (!forced && native === null && !ownPromptForAuto) {
    throw new ToolSupportError(
      'this model\'s chat template has no tool support (it never renders `tools`), so tool_choice "auto" cannot work: ' +
        'use tool_choice "required" or name a function, and kiln will prompt for the call and force its format',
    );
  }
  const family = native ?? 'generic';
  const chosen = typeof choice === 'object' ? tools.filter((t) => t.name === choice.name) : tools;
  const prompt = template.render(templateMessages(messages, tools, native !== null), true, native !== null ? templateTools(tools) : undefined);
  return { prompt, grammar: forced ? toolCallGrammar(family, chosen, parallel) : undefined, family, forced };
}

// -----------------------------------------------------------------------------------------------------------
// forcing a call

/** A grammar for one call (or, with `parallel`, one or more) of `tools` in the family's format. */
export function toolCallGrammar(family: ToolFamily, tools: readonly ToolSpec[], parallel: boolean): string {
  const schemas = Object.fromEntries(tools.map((t, i) => [`tool${i}`, t.parameters]));
  return jsonSchemasToGrammar(schemas, (rules) => {
    const key = family === 'llama3' ? 'parameters' : 'arguments';
    const call = `(${tools.map((t, i) => `${gbnfLiteral(`{"name": ${JSON.stringify(t.name)}, "${key}": `)} ${rules[`tool${i}`]} "}"`).join(' | ')})`;
    switch (family) {
      case 'hermes': {
        const block = `"<tool_call>\\n" ${call} "\\n</tool_call>"`;
        return parallel ? `${block} ("\\n" ${block})*` : block;
      }
      case 'llama3': return parallel ? `${call} ("; " ${call})*` : call;
      case 'mistral': return `"[TOOL_CALLS][" ${call} ${parallel ? `(", " ${call})*` : ''} "]"`;
      case 'generic': return parallel ? `(${call} | "[" ${call} (", " ${call})* "]")` : call;
    }
  });
}

// -----------------------------------------------------------------------------------------------------------
// reading calls out of the text

export interface ParsedOutput {
  /** the text that is not a call */
  content: string;
  calls: Omit<ToolCall, 'id'>[];
}

/** The calls written in `text` in the family's format (or as generic JSON); text that is no call stays content. */
export function parseToolCalls(family: ToolFamily, text: string): ParsedOutput {
  if (family === 'hermes') {
    const calls: Omit<ToolCall, 'id'>[] = [];
    const content = text.replace(/<tool_call>([\s\S]*?)(<\/tool_call>|$)/g, (whole, body: string) => {
      const call = callOf(parseOr(body.trim()));
      if (!call) return whole;
      calls.push(call);
      return '';
    });
    return { content: calls.length > 0 ? content.trim() : text, calls };
  }
  let body = text.trim();
  if (family === 'mistral' && body.startsWith('[TOOL_CALLS]')) body = body.slice('[TOOL_CALLS]'.length).trim();
  if (family === 'llama3' && body.startsWith('<|python_tag|>')) body = body.slice('<|python_tag|>'.length).trim();
  const parts = family === 'llama3' ? body.split(/;\s*(?=\{)/) : [body];
  const values = parts.map((part) => parseOr(part));
  const list = values.length === 1 && Array.isArray(values[0]) ? values[0] : values;
  const calls = list.map(callOf);
  if (list.length === 0 || calls.some((c) => c === undefined)) return { content: text, calls: [] };
  return { content: '', calls: calls as Omit<ToolCall, 'id'>[] };
}

/** {"name", "arguments" | "parameters"} as a call, arguments kept as JSON text. */
function callOf(value: unknown): Omit<ToolCall, 'id'> | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { name, arguments: args, parameters } = value as Record<string, unknown>;
  const given = args ?? parameters ?? {};
  if (typeof name !== 'string') return undefined;
  return { name, arguments: typeof given === 'string' ? given : JSON.stringify(given) };
}

/**
 * Streamed text, sorted into content to show now and text held back because it may be (the start of) a call:
 * from a family's opening marker on, or — for JSON formats — a whole output that opens like a call.
 */
export class ToolCallStream {
  private held = '';
  private releasing = false;

  constructor(private readonly family: ToolFamily, private readonly forced: boolean) {}

  /** The content that can be shown now. */
  push(text: string): string {
    if (this.releasing) return text;
    this.held += text;
    if (this.forced) return '';
    if (this.family === 'hermes') {
      // content up to a <tool_call> (or what may be its start) goes out; the rest waits
      const start = this.held.indexOf('<tool_call>');
      const cut = start >= 0 ? start : this.held.length - partialSuffix(this.held, '<tool_call>');
      const out = this.held.slice(0, cut);
      this.held = this.held.slice(cut);
      return out;
    }
    const opening = this.held.trimStart();
    const markers = ['{', '[', '<|python_tag|>', '[TOOL_CALLS]'];
    if (opening === '' || markers.some((m) => opening.startsWith(m) || m.startsWith(opening))) return '';
    this.releasing = true;
    const out = this.held;
    this.held = '';
    return out;
  }

  /** The end: the held text read as calls, and what of it is content. */
  finish(): ParsedOutput {
    const parsed = parseToolCalls(this.family, this.held);
    this.held = '';
    return parsed;
  }

}

/** Length of the longest suffix of `text` that is a proper prefix of `marker`. */
function partialSuffix(text: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--) if (text.endsWith(marker.slice(0, n))) return n;
  return 0;
}
