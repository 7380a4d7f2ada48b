// Tool calling on /v1/chat/completions: the prompt (tools through the template, or kiln's own tool prompt), the
// grammar of a forced call, and the chat flavor that turns the generated text into OpenAI tool_calls — whole in a
// response, and in a stream as content deltas until a call begins, then the calls as tool_calls deltas at the end.

import { randomUUID } from 'node:crypto';
import type { ChatMessage, ChatTemplate } from '../generate/chat-template.js';
import {
  parseToolCalls, templateMessages, templateTools, toolCallGrammar, toolFamily, ToolCallStream, type ToolFamily,
} from '../generate/tool-calls.js';
import { invalidRequest } from './errors.js';
import type { OutputGrammar } from './output-params.js';
import type { ToolRequest } from './tool-params.js';

export interface ChatTooling {
  /** the prompt text */
  prompt: string;
  /** the grammar of a forced call */
  grammar: OutputGrammar | undefined;
  /** how calls are read out of the text; undefined: they are not (tool_choice none) */
  family: ToolFamily | undefined;
  forced: boolean;
}

/** The prompt and constraints of a chat request with (or without) tools. */
export function chatTooling(template: ChatTemplate, messages: ChatMessage[], request: ToolRequest | undefined, otherGrammar: OutputGrammar | undefined): ChatTooling {
  const native = toolFamily(template.source);
  if (!request || request.choice === 'none') {
    return { prompt: template.render(templateMessages(messages, [], native !== null)), grammar: undefined, family: undefined, forced: false };
  }
  const forced = request.choice !== 'auto';
  if (!forced && native === null) {
    throw invalidRequest(
      'this model\'s chat template has no tool support (it never renders `tools`), so tool_choice "auto" cannot work: ' +
        'use tool_choice "required" or name a function, and kiln will prompt for the call and force its format', 'tool_choice', 'tools_not_supported',
    );
  }
  if (forced && otherGrammar) throw invalidRequest(`a forced tool call and ${otherGrammar.param} cannot both constrain the output`, 'tool_choice');
  const family = native ?? 'generic';
  const tools = typeof request.choice === 'object' ? request.tools.filter((t) => t.name === (request.choice as { name: string }).name) : request.tools;
  const prompt = template.render(templateMessages(messages, request.tools, native !== null), true, native !== null ? templateTools(request.tools) : undefined);
  const grammar = forced ? { gbnf: toolCallGrammarFor(family, tools, request.parallel), param: 'tools' } : undefined;
  return { prompt, grammar, family, forced };
}

function toolCallGrammarFor(...args: Parameters<typeof toolCallGrammar>): string {
  try {
    return toolCallGrammar(...args);
  } catch (e) {
    throw invalidRequest(`a tool's parameters: ${(e as Error).message}`, 'tools', 'unsupported_schema');
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
