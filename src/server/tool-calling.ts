// Tool calling on /v1/chat/completions: the prompt (tools through the template, or kiln's own tool prompt), the
// grammar of a forced call, and the chat flavor that turns the generated text into OpenAI tool_calls — whole in a
// response, and in a stream as content deltas until a call begins, then the calls as tool_calls deltas at the end.

import { randomUUID } from 'node:crypto';
import type { ChatMessage, ChatTemplate } from '../generate/chat-template.js';
import { parseToolCalls, prepareToolChat, ToolCallStream, ToolSupportError, type ToolFamily } from '../generate/tool-calls.js';
import { SchemaError } from '../grammar/json-schema.js';
import { invalidRequest } from './errors.js';
import type { OutputGrammar } from './output-params.js';
import type { ToolRequest } from './tool-params.js';

export interface ChatTooling {
  /** the prompt text */
  prompt: string;
  /** the grammar of a forced call */
  grammar: OutputGrammar | undefined;
  /** how calls are read out of the text; undefined: they are not (no tools, or tool_choice none) */
  family: ToolFamily | undefined;
  forced: boolean;
}

/** The prompt and constraints of a chat request with (or without) tools; what cannot work is a 400. */
export function chatTooling(template: ChatTemplate, messages: ChatMessage[], request: ToolRequest | undefined, otherGrammar: OutputGrammar | undefined): ChatTooling {
  if (request && request.choice !== 'auto' && request.choice !== 'none' && otherGrammar) {
    throw invalidRequest(`a forced tool call and ${otherGrammar.param} cannot both constrain the output`, 'tool_choice');
  }
  try {
    const chat = prepareToolChat(template, messages, request?.tools ?? [], request?.choice ?? 'none', request?.parallel ?? true);
    return { ...chat, grammar: chat.grammar === undefined ? undefined : { gbnf: chat.grammar, param: 'tools' } };
  } catch (e) {
    if (e instanceof ToolSupportError) throw invalidRequest(e.message, 'tool_choice', 'tools_not_supported');
    if (e instanceof SchemaError) throw invalidRequest(`a tool's parameters: ${e.message}`, 'tools', 'unsupported_schema');
    throw e;
  }
}

/** The chat choice builders of a request with tools: its calls as tool_calls, finish_reason "tool_calls". */
export function toolCallChoices(family: ToolFamily, forced: boolean) {
  const streams: ToolCallStream[] = [];
  const withCalls = (calls: { name: string; arguments: string }[]) =>
    calls.map((c, index) => ({ index, id: `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));
  const reason = (finish: string | null, calls: number) => (finish === 'stop' && calls > 0 ? 'tool_calls' : finish);
  return {
    choice(index: number, text: string, logprobs: unknown, finishReason: string | null): object {
      const { content, calls } = parseToolCalls(family, text);
      const message = calls.length > 0
        ? { role: 'assistant', content: content === '' ? null : content, tool_calls: withCalls(calls).map(({ index: _, ...call }) => call) }
        : { role: 'assistant', content: text };
      return { index, message, logprobs, finish_reason: reason(finishReason, calls.length) };
    },
    chunkChoice(index: number, text: string, logprobs: unknown, finishReason: string | null): object {
      const stream = (streams[index] ??= new ToolCallStream(family, forced));
      let content = stream.push(text);
      const delta: Record<string, unknown> = {};
      let calls = 0;
      if (finishReason !== null) {
        const parsed = stream.finish();
        content += parsed.content;
        calls = parsed.calls.length;
        if (calls > 0) delta.tool_calls = withCalls(parsed.calls);
      }
      if (content !== '') delta.content = content;
      return { index, delta, logprobs, finish_reason: reason(finishReason, calls) };
    },
  };
}
