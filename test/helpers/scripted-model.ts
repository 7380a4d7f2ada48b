// A chat model for agent tests that replies from a script (content, tool calls, token counts) and records every
// request it got.

import type { ChatModel, ChatModelReply, ChatModelRequest } from '../../src/agent/agent.js';
import type { ChatMessage } from '../../src/generate/chat-template.js';

/** Replies in order, recording every request it got. */
export class ScriptedModel implements ChatModel {
  readonly requests: ChatModelRequest[] = [];
  constructor(private readonly replies: (Partial<ChatModelReply> & { call?: [string, object][] })[], readonly contextLength?: number) {}
  async complete(request: ChatModelRequest): Promise<ChatModelReply> {
    this.requests.push(structuredClone(request));
    const next = this.replies.shift() ?? { content: 'out of script' };
    const toolCalls = (next.call ?? []).map(([name, args], i) => ({ id: `call_${this.requests.length}_${i}`, name, arguments: JSON.stringify(args) }));
    return { content: next.content ?? '', toolCalls, tokens: next.tokens ?? 10 };
  }
  /** a token per 4 characters */
  measure(messages: ChatMessage[]): number {
    return Math.ceil(messages.reduce((n, m) => n + m.content.length + 8, 0) / 4);
  }
}
