// An agent loop (ReAct-style): the model reads the task, calls tools, observes their results and answers. Every
// step is reported (onStep) and bounded: steps, tokens per step and in all, and a timeout per tool call. The
// conversation is the short-term memory; when it outgrows the context, the oldest exchanges after the task are
// dropped (a note says how many), and long tool results are cut. Self-consistency: the final answer is sampled n
// times and the most common one wins.

import { randomUUID } from 'node:crypto';
import type { ChatMessage } from '../generate/chat-template.js';
import type { ToolCall, ToolChoice, ToolSpec } from '../generate/tool-calls.js';

/** A tool the agent may call: a JSON schema of its arguments and the function that runs it. */
export interface AgentTool extends ToolSpec {
  description: string;
  run(args: Record<string, unknown>, context: { signal: AbortSignal }): Promise<string> | string;
}

export interface ChatModelRequest {
  messages: ChatMessage[];
  tools: ToolSpec[];
  toolChoice: ToolChoice;
  maxTokens: number;
  seed?: number;
}

export interface ChatModelReply {
  content: string;
  toolCalls: ToolCall[];
  /** tokens generated */
  tokens: number;
}

/** What the agent talks to: a local model (LocalChatModel), a server, or a scripted stub in tests. */
export interface ChatModel {
  complete(request: ChatModelRequest): Promise<ChatModelReply>;
  /** prompt tokens of a conversation, and the context they must fit in with the reply (when known) */
  measure?(messages: ChatMessage[], tools: ToolSpec[]): number;
  readonly contextLength?: number;
}

export interface AgentOptions {
  model: ChatModel;
  tools?: AgentTool[];
  /** a system message before the task */
  system?: string;
  /** model calls at most (default 8) */
  maxSteps?: number;
  /** tokens per model call (default 256) */
  maxTokens?: number;
  /** tokens generated over the whole run (default maxSteps · maxTokens) */
  maxTotalTokens?: number;
  /** milliseconds a tool call may take (default 10 000) */
  toolTimeoutMs?: number;
  /** the first this-many steps must call a tool (tool_choice "required"; default 0) */
  forceToolSteps?: number;
  /** sample the final answer this many times and keep the most common (default 1) */
  selfConsistency?: number;
  /** characters of a tool result kept in the conversation (default 4000) */
  maxResultChars?: number;
  seed?: number;
  onStep?: (step: AgentStep) => void;
}

export interface AgentStep {
  index: number;
  /** the model's text (its reasoning, or the answer) */
  content: string;
  calls: { call: ToolCall; result: string; ok: boolean; ms: number }[];
  tokens: number;
}

export type AgentStopReason = 'answer' | 'max_steps' | 'max_tokens';

export interface AgentResult {
  answer: string;
  stopReason: AgentStopReason;
  steps: AgentStep[];
  messages: ChatMessage[];
  /** self-consistency's samples and how many agreed with the answer */
  votes?: { answers: string[]; agreeing: number };
}

export class AgentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentError';
  }
}

export class Agent {
  private readonly tools: Map<string, AgentTool>;
  private readonly options: Required<Omit<AgentOptions, 'system' | 'seed' | 'onStep' | 'tools'>> & Pick<AgentOptions, 'system' | 'seed' | 'onStep'>;

  constructor(options: AgentOptions) {
    const maxSteps = positive('maxSteps', options.maxSteps ?? 8);
    const maxTokens = positive('maxTokens', options.maxTokens ?? 256);
    this.options = {
      ...options,
      maxSteps, maxTokens,
      maxTotalTokens: positive('maxTotalTokens', options.maxTotalTokens ?? maxSteps * maxTokens),
      toolTimeoutMs: positive('toolTimeoutMs', options.toolTimeoutMs ?? 10_000),
      forceToolSteps: options.forceToolSteps ?? 0,
      selfConsistency: positive('selfConsistency', options.selfConsistency ?? 1),
      maxResultChars: positive('maxResultChars', options.maxResultChars ?? 4000),
    };
    this.tools = new Map((options.tools ?? []).map((t) => [t.name, t]));
    if (this.tools.size !== (options.tools ?? []).length) throw new AgentError('tool names must be unique');
    if (this.options.forceToolSteps > 0 && this.tools.size === 0) throw new AgentError('forceToolSteps needs tools');
  }

  async run(task: string): Promise<AgentResult> {
    const { model, maxSteps, maxTokens, maxTotalTokens, forceToolSteps } = this.options;
    const specs = [...this.tools.values()].map(({ name, description, parameters }) => ({ name, description, parameters }));
    const messages: ChatMessage[] = [...(this.options.system ? [{ role: 'system', content: this.options.system }] : []), { role: 'user', content: task }];
    const steps: AgentStep[] = [];
    let used = 0;
    for (let index = 1; index <= maxSteps; index++) {
      const toolChoice: ToolChoice = specs.length === 0 ? 'none' : index <= forceToolSteps ? 'required' : 'auto';
      const request = { messages: this.fit(messages, specs), tools: specs, toolChoice, maxTokens: Math.min(maxTokens, maxTotalTokens - used), seed: this.seed(index) };
      const reply = await model.complete(request);
      used += reply.tokens;
      const step: AgentStep = { index, content: reply.content, calls: [], tokens: reply.tokens };
      steps.push(step);
      if (reply.toolCalls.length === 0) {
        const { answer, votes } = await this.vote(reply.content, request);
        this.options.onStep?.(step);
        return { answer, stopReason: 'answer', steps, messages: [...messages, { role: 'assistant', content: answer }], votes };
      }
      messages.push({ role: 'assistant', content: reply.content, tool_calls: reply.toolCalls });
      for (const call of reply.toolCalls) {
        const started = performance.now();
        const { result, ok } = await this.call(call);
        step.calls.push({ call, result, ok, ms: performance.now() - started });
        messages.push({ role: 'tool', content: result, tool_call_id: call.id });
      }
      this.options.onStep?.(step);
      if (used >= maxTotalTokens) return { answer: reply.content, stopReason: 'max_tokens', steps, messages };
    }
    return { answer: steps.at(-1)?.content ?? '', stopReason: 'max_steps', steps, messages };
  }

  private seed(index: number): number | undefined {
    return this.options.seed === undefined ? undefined : this.options.seed + index;
  }

  /** Runs one call with the timeout; a failure is the tool's result (the model sees it and may try again). */
  private async call(call: ToolCall): Promise<{ result: string; ok: boolean }> {
    const tool = this.tools.get(call.name);
    if (!tool) return { result: `error: there is no tool "${call.name}"`, ok: false };
    let args: unknown;
    try {
      args = JSON.parse(call.arguments);
    } catch {
      return { result: `error: the arguments are not JSON: ${call.arguments}`, ok: false };
    }
    if (args === null || typeof args !== 'object' || Array.isArray(args)) return { result: 'error: the arguments must be a JSON object', ok: false };
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new AgentError(`${call.name} timed out after ${this.options.toolTimeoutMs} ms`));
      }, this.options.toolTimeoutMs);
    });
    try {
      const result = await Promise.race([Promise.resolve().then(() => tool.run(args as Record<string, unknown>, { signal: controller.signal })), timeout]);
      const text = String(result);
      const limit = this.options.maxResultChars;
      return { result: text.length > limit ? `${text.slice(0, limit)}… [${text.length - limit} more characters cut]` : text, ok: true };
    } catch (e) {
      return { result: `error: ${(e as Error).message ?? e}`, ok: false };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The conversation cut to the context: system and task stay, the oldest exchanges after them go first. */
  private fit(messages: ChatMessage[], tools: ToolSpec[]): ChatMessage[] {
    const { model, maxTokens } = this.options;
    if (!model.measure || model.contextLength === undefined) return [...messages];
    const head = messages.findIndex((m) => m.role === 'user') + 1;
    let dropped = 0;
    const view = () => dropped === 0 ? [...messages] : [
      ...messages.slice(0, head), { role: 'user', content: `[${dropped} earlier messages were dropped to fit the context]` }, ...messages.slice(head + dropped),
    ];
    // a tool message belongs to the assistant's calls before it: drop whole exchanges
    while (model.measure(view(), tools) + maxTokens > model.contextLength && head + dropped < messages.length - 1) {
      dropped++;
      while (messages[head + dropped]?.role === 'tool' && head + dropped < messages.length - 1) dropped++;
    }
    return view();
  }

  /** Self-consistency: more samples of the final answer; the most common (trimmed) answer wins, the first on ties. */
  private async vote(first: string, request: { messages: ChatMessage[]; maxTokens: number; seed?: number }): Promise<{ answer: string; votes?: AgentResult['votes'] }> {
    const n = this.options.selfConsistency;
    if (n === 1) return { answer: first };
    const answers = [first];
    for (let i = 1; i < n; i++) {
      const reply = await this.options.model.complete({ ...request, tools: [], toolChoice: 'none', seed: request.seed === undefined ? undefined : request.seed + 1000 * i });
      answers.push(reply.content);
    }
    const counts = new Map<string, number>();
    for (const a of answers) counts.set(a.trim(), (counts.get(a.trim()) ?? 0) + 1);
    let best = first.trim();
    for (const [answer, count] of counts) if (count > counts.get(best)!) best = answer;
    return { answer: best, votes: { answers, agreeing: counts.get(best)! } };
  }
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new AgentError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/** A call id in OpenAI's form. */
export function newCallId(): string {
  return `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`;
}
