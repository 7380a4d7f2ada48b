// The agent's model when it runs in this process: a loaded Model on a serving engine, its chat template rendering
// the tools (or kiln's own tool prompt where the template has none), a forced call under its grammar.

import { ChatTemplate, chatPromptTokens, type ChatMessage } from '../generate/chat-template.js';
import type { Model } from '../generate/model.js';
import { parseToolCalls, prepareToolChat, type ToolSpec } from '../generate/tool-calls.js';
import { LLMEngine, ContextLengthError } from '../engine/engine.js';
import { collectCompletions } from '../engine/llm.js';
import type { SamplingParams } from '../generate/sampler.js';
import { newCallId, type ChatModel, type ChatModelReply, type ChatModelRequest } from './agent.js';

export interface LocalChatModelOptions {
  /** context per call (default: the model's, at most 4096) */
  contextLength?: number;
  /** sampling of every call (default: temperature 0.7, the CLI's other defaults) */
  sampling?: Partial<SamplingParams>;
  /** several calls in one step (default true) */
  parallelToolCalls?: boolean;
}

export class LocalChatModel implements ChatModel {
  readonly engine: LLMEngine;
  readonly template: ChatTemplate;
  readonly contextLength: number;

  constructor(readonly model: Model, private readonly options: LocalChatModelOptions = {}) {
    this.contextLength = options.contextLength ?? Math.min(model.hparams.contextLength, 4096);
    this.engine = new LLMEngine(model, { maxNumSeqs: 1, maxModelLength: this.contextLength });
    this.template = ChatTemplate.forModel(model.file.metadata, model.tokenizer);
  }

  measure(messages: ChatMessage[], tools: ToolSpec[]): number {
    return chatPromptTokens(this.model.tokenizer, prepareToolChat(this.template, messages, tools, tools.length > 0 ? 'required' : 'none', true, true).prompt).length;
  }

  async complete(request: ChatModelRequest): Promise<ChatModelReply> {
    const tokenizer = this.model.tokenizer;
    const chat = prepareToolChat(this.template, request.messages, request.tools, request.toolChoice, this.options.parallelToolCalls ?? true, true);
    const prompt = chatPromptTokens(tokenizer, chat.prompt);
    const budget = Math.min(request.maxTokens, this.contextLength - prompt.length);
    if (budget < 1) throw new ContextLengthError(prompt.length, request.maxTokens, this.contextLength);
    const stream = this.engine.submit({
      prompt,
      params: {
        sampling: { temperature: 0.7, ...this.options.sampling, ...(request.seed === undefined ? {} : { seed: request.seed }) },
        maxTokens: budget,
        output: chat.grammar === undefined ? undefined : { grammar: chat.grammar },
      },
    });
    const [out] = await collectCompletions(stream, 1);
    const parsed = chat.family ? parseToolCalls(chat.family, out.text) : { content: out.text, calls: [] };
    return { content: parsed.content, toolCalls: parsed.calls.map((c) => ({ id: newCallId(), ...c })), tokens: out.token_ids.length };
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}
