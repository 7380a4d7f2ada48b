// The two generation endpoints, /v1/completions and /v1/chat/completions. Both come down to the same work:
// a list of prompts (token ids), each run as one engine request with n completions; choice i·n + j is
// completion j of prompt i. They differ only in how a choice's text and log-probabilities are dressed, so
// each endpoint is a `Flavor` over one shared runner that streams (SSE) or answers once at the end.

import { randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import { ChatTemplate, chatPromptTokens } from '../generate/chat-template.js';
import type { GGUFHeader } from '../gguf/types.js';
import { Tokenizer } from '../tokenizer/index.js';
import type { CompletionDelta, FinishReason, ServingEngine, TokenLogprobs } from '../engine/types.js';
import { ContextLengthError } from '../engine/engine.js';
import { ApiError, invalidRequest, notFound } from './errors.js';
import type { ServerMetrics } from './metrics.js';
import { chatRequest, completionRequest, type ChatBody, type CompletionBody, type GenerationParams, type PromptInput } from './params.js';
import { checkedOutput } from './output-params.js';
import { chatTooling, toolCallChoices } from './tool-calling.js';

/** The model behind the server: its public name, GGUF header, tokenizer and chat template. */
export interface ServedModel {
  name: string;
  header: GGUFHeader;
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate;
}

/** A model's file as the server presents it, with the chat template from its metadata (or ChatML): no weights needed. */
export function servedModel(header: GGUFHeader, name: string): ServedModel {
  const tokenizer = Tokenizer.fromMetadata(header.metadata);
  return { name, header, tokenizer, chatTemplate: ChatTemplate.forModel(header.metadata, tokenizer) };
}

export interface ApiContext {
  engine: ServingEngine;
  model: ServedModel;
  metrics: ServerMetrics;
  /** sequences (prompts × n) waiting in the engine beyond which new requests get 429 */
  maxWaiting: number;
  /** sequences (prompts × n) one request may ask for */
  maxRequestSequences: number;
}

// Without max_tokens a completion runs until an end-of-generation token or the context is full (vLLM's default).

export async function handleCompletions(ctx: ApiContext, body: CompletionBody, reply: FastifyReply, arrival: number): Promise<void> {
  const request = completionRequest(body);
  checkModel(ctx, request.model);
  checkSequences(ctx, request.prompts.length * request.n, 'prompt');
  const prompts = request.prompts.map((p) => promptTokens(ctx.model.tokenizer, p));
  // echo: each choice opens with its prompt's text (as given, or the token ids decoded)
  const echoes = request.echo ? request.prompts.map((p) => ('text' in p ? p.text : ctx.model.tokenizer.decode(p.tokens))) : undefined;
  await run(ctx, COMPLETION_FLAVOR, request, prompts, reply, arrival, echoes);
}

export async function handleChatCompletions(ctx: ApiContext, body: ChatBody, reply: FastifyReply, arrival: number): Promise<void> {
  const request = chatRequest(body);
  checkModel(ctx, request.model);
  checkSequences(ctx, request.n, 'n');
  const tooling = chatTooling(ctx.model.chatTemplate, request.messages, request.tools, request.output.grammar);
  const prompt = chatPromptTokens(ctx.model.tokenizer, tooling.prompt);
  const output = { ...request.output, grammar: tooling.grammar ?? request.output.grammar };
  const flavor = tooling.family ? { ...CHAT_FLAVOR, ...toolCallChoices(tooling.family, tooling.forced) } : CHAT_FLAVOR;
  await run(ctx, flavor, { ...request, output }, [prompt], reply, arrival);
}

export function checkModel(ctx: ApiContext, name: string | undefined): void {
  if (name !== undefined && name !== ctx.model.name) {
    throw notFound(`the model "${name}" does not exist; this server serves "${ctx.model.name}"`, 'model_not_found', 'model');
  }
}

/** Text is tokenized as `kiln run` does (BOS added, special-token text parsed); ids must be in the vocabulary. */
export function promptTokens(tokenizer: Tokenizer, prompt: PromptInput, param = 'prompt'): number[] {
  if ('text' in prompt) return tokenizer.encode(prompt.text, { addSpecial: true, parseSpecial: true });
  const bad = prompt.tokens.find((id) => id >= tokenizer.vocabSize);
  if (bad !== undefined) throw invalidRequest(`token id ${bad} is outside the vocabulary (size ${tokenizer.vocabSize})`, param);
  return prompt.tokens;
}

// ---------------------------------------------------------------------------------------------------------
// Running the prompts

/** What one choice has produced so far. */
interface Choice {
  text: string;
  tokens: number;
  logprobs: TokenLogprobs[];
  /** characters of text before the next token, for the legacy format's text_offset */
  textOffset: number;
  finishReason: FinishReason | undefined;
}

/** How an endpoint dresses choices. `logprobs` formats a run of tokens and advances choice.textOffset. */
interface Flavor {
  object: string;
  chunkObject: string;
  idPrefix: string;
  logprobs(tokenizer: Tokenizer, tokens: TokenLogprobs[], choice: Choice): unknown;
  choice(index: number, text: string, logprobs: unknown, finishReason: string | null): object;
  chunkChoice(index: number, text: string, logprobs: unknown, finishReason: string | null): object;
  /** the chunk that opens each streamed choice, if any */
  opening: ((index: number) => object) | null;
  /** the request field holding the prompt */
  promptParam: 'prompt' | 'messages';
}

async function run(
  ctx: ApiContext, flavor: Flavor, request: GenerationParams, prompts: number[][], reply: FastifyReply, arrival: number,
  echoes?: string[],
): Promise<void> {
  const res = reply.raw;
  const { engine, model } = ctx;
  const { maxTokens } = request;
  const output = checkedOutput(request.output, model.tokenizer);
  for (const prompt of prompts) {
    // at least one token must fit after the prompt
    if (prompt.length + (maxTokens ?? 1) > engine.maxModelLength) {
      throw contextLengthExceeded(new ContextLengthError(prompt.length, maxTokens, engine.maxModelLength), flavor.promptParam);
    }
  }
  refuseWhenBusy(ctx, prompts.length * request.n);

  // a client that goes away aborts its engine requests, whose blocks are then freed in the engine's next step
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  // submitted before any response is written, so that a request the engine refuses is still a plain 400
  const n = request.n;
  let submitted: ReturnType<ServingEngine['submit']>[];
  try {
    submitted = prompts.map((prompt) => engine.submit({
      prompt,
      params: {
        sampling: request.sampling,
        maxTokens,
        stop: request.stop,
        n,
        // the sampled token's own log-probability comes with its top list, so ask for at least one
        topLogprobs: request.topLogprobs === null ? 0 : Math.max(1, request.topLogprobs),
        ignoreEos: request.ignoreEos,
        output,
      },
      signal: controller.signal,
    }));
  } catch (e) {
    controller.abort(); // prompts submitted before the refused one
    throw e;
  }

  const id = `${flavor.idPrefix}-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const choices: Choice[] = Array.from({ length: prompts.length * n }, () => ({ text: '', tokens: 0, logprobs: [], textOffset: 0, finishReason: undefined }));
  const stream = request.stream ? new SseWriter(reply) : undefined;
  const header = { id, object: flavor.chunkObject, created, model: model.name };
  const usageField = request.includeUsage ? { usage: null } : {};
  const sendChoice = (choice: object) => stream?.send({ ...header, choices: [choice], ...usageField });
  if (flavor.opening) choices.forEach((_, i) => sendChoice(flavor.opening!(i)));
  if (echoes) {
    choices.forEach((choice, i) => {
      choice.text = echoes[Math.floor(i / n)];
      sendChoice(flavor.chunkChoice(i, choice.text, null, null));
    });
  }

  const onDelta = (choiceIndex: number, delta: CompletionDelta) => {
    const choice = choices[choiceIndex];
    choice.text += delta.text;
    choice.tokens += delta.tokens.length;
    const logprobs = request.topLogprobs === null ? undefined : trimTop(delta.logprobs ?? [], request.topLogprobs);
    if (delta.finishReason) choice.finishReason = delta.finishReason;
    if (!stream) {
      if (logprobs) choice.logprobs.push(...logprobs);
      return;
    }
    if (delta.text === '' && !delta.finishReason && !logprobs?.length) return;
    const formatted = logprobs ? flavor.logprobs(model.tokenizer, logprobs, choice) : null;
    sendChoice(flavor.chunkChoice(choiceIndex, delta.text, formatted, delta.finishReason ? openAiFinishReason(delta.finishReason) : null));
  };

  let cachedTokens = 0;
  const consume = async (deltas: ReturnType<ServingEngine['submit']>, promptIndex: number) => {
    let firstTokenAt: number | undefined, lastTokenAt = 0;
    const tokensPerChoice = new Array<number>(n).fill(0);
    for await (const delta of deltas) {
      if (delta.tokens.length > 0) {
        lastTokenAt = performance.now();
        firstTokenAt ??= lastTokenAt;
        tokensPerChoice[delta.index] += delta.tokens.length;
      }
      onDelta(promptIndex * n + delta.index, delta);
    }
    // completions run side by side, so a request's pace is that of its longest completion
    const longest = Math.max(...tokensPerChoice);
    cachedTokens += deltas.metrics.cachedPromptTokens;
    ctx.metrics.countGeneration(
      prompts[promptIndex].length, tokensPerChoice.reduce((a, b) => a + b, 0),
      firstTokenAt === undefined ? undefined : (firstTokenAt - arrival) / 1000,
      firstTokenAt === undefined || longest < 2 ? undefined : (lastTokenAt - firstTokenAt) / 1000 / (longest - 1),
    );
  };

  try {
    await Promise.all(submitted.map(consume));
  } catch (e) {
    controller.abort(); // the other prompts of this request stop too
    if (res.destroyed) return;
    if (!stream) throw e;
    stream.send(errorBody(e));
    stream.end();
    return;
  }
  if (controller.signal.aborted || res.destroyed) return;

  const promptTokens = prompts.reduce((sum, p) => sum + p.length, 0);
  const completionTokens = choices.reduce((sum, c) => sum + c.tokens, 0);
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
  if (stream) {
    if (request.includeUsage) stream.send({ ...header, choices: [], usage });
    stream.end();
    return;
  }
  const logprobsOf = (c: Choice) => (request.topLogprobs === null ? null : flavor.logprobs(model.tokenizer, c.logprobs, c));
  reply.send({
    id, object: flavor.object, created, model: model.name,
    choices: choices.map((c, i) => flavor.choice(i, c.text, logprobsOf(c), openAiFinishReason(c.finishReason ?? 'length'))),
    usage,
  });
}

/** 400 with OpenAI's code context_length_exceeded, naming the field to change. */
function contextLengthExceeded(e: ContextLengthError, promptParam: string): ApiError {
  const [param, advice] = e.maxTokens === undefined ? [promptParam, `shorten the ${promptParam}`] : ['max_tokens', `shorten the ${promptParam} or lower max_tokens`];
  return invalidRequest(`${e.message}; ${advice}`, param, 'context_length_exceeded');
}

/** 400 for a request of more sequences (prompts × n) than one request may ask for, before any work */
export function checkSequences(ctx: ApiContext, sequences: number, param: string): void {
  if (sequences > ctx.maxRequestSequences) {
    throw invalidRequest(`this request asks for ${sequences} sequences (prompts × n); at most ${ctx.maxRequestSequences} are allowed per request`, param, 'too_many_sequences');
  }
}

/**
 * 429 when `sequences` more would wait beyond maxWaiting sequences in the engine. An empty queue takes any request
 * that passed checkSequences, so that a request is never refused for its own size alone.
 */
export function refuseWhenBusy(ctx: ApiContext, sequences: number): void {
  const { waiting } = ctx.engine.stats();
  if (waiting > 0 && waiting + sequences > ctx.maxWaiting) {
    throw new ApiError(429, `the server is busy (${waiting} sequences waiting, at most ${ctx.maxWaiting}); retry later`, 'rate_limit_error', null, 'queue_full');
  }
}

function trimTop(logprobs: TokenLogprobs[], k: number): TokenLogprobs[] {
  return logprobs.map((lp) => ({ ...lp, top: lp.top.slice(0, k) }));
}

/** An aborted completion never reaches a client that is still listening except through a server shutdown. */
function openAiFinishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

// ---------------------------------------------------------------------------------------------------------
// The two flavors

/** A token's text: its bytes as UTF-8 (a lone byte of a longer character shows as U+FFFD), control tokens by name. */
function tokenString(tokenizer: Tokenizer, id: number): string {
  return new TextDecoder().decode(tokenizer.decodeToken(id, { special: true }));
}

const COMPLETION_FLAVOR: Flavor = {
  object: 'text_completion',
  chunkObject: 'text_completion',
  idPrefix: 'cmpl',
  // legacy format: parallel arrays, top_logprobs as {token text: logprob}, text_offset in characters of the completion
  logprobs(tokenizer, tokens, choice) {
    const out = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[] };
    for (const lp of tokens) {
      const text = tokenString(tokenizer, lp.token);
      out.tokens.push(text);
      out.token_logprobs.push(lp.logprob);
      out.top_logprobs.push(Object.fromEntries(lp.top.map((t) => [tokenString(tokenizer, t.token), t.logprob])));
      out.text_offset.push(choice.textOffset);
      choice.textOffset += text.length;
    }
    return out;
  },
  choice: (index, text, logprobs, finishReason) => ({ index, text, logprobs, finish_reason: finishReason }),
  chunkChoice: (index, text, logprobs, finishReason) => ({ index, text, logprobs, finish_reason: finishReason }),
  opening: null,
  promptParam: 'prompt',
};

const CHAT_FLAVOR: Flavor = {
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  idPrefix: 'chatcmpl',
  // chat format: one entry per token with its UTF-8 bytes and its top alternatives
  logprobs(tokenizer, tokens) {
    const entry = (id: number, logprob: number) => ({ token: tokenString(tokenizer, id), logprob, bytes: [...tokenizer.decodeToken(id, { special: true })] });
    return { content: tokens.map((lp) => ({ ...entry(lp.token, lp.logprob), top_logprobs: lp.top.map((t) => entry(t.token, t.logprob)) })) };
  },
  choice: (index, text, logprobs, finishReason) => ({ index, message: { role: 'assistant', content: text }, logprobs, finish_reason: finishReason }),
  chunkChoice: (index, text, logprobs, finishReason) => ({ index, delta: text === '' ? {} : { content: text }, logprobs, finish_reason: finishReason }),
  // OpenAI opens every chat choice with its role
  opening: (index) => ({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
  promptParam: 'messages',
};

// ---------------------------------------------------------------------------------------------------------
// Writing responses

export function errorBody(e: unknown): ReturnType<ApiError['toJSON']> {
  const error = e instanceof ApiError ? e : new ApiError(500, (e as Error).message ?? String(e), 'server_error');
  return error.toJSON();
}

/** Server-sent events: `data: <json>\n\n` per chunk, closed by `data: [DONE]`. Written to the socket past fastify. */
class SseWriter {
  private readonly res: FastifyReply['raw'];

  constructor(reply: FastifyReply) {
    reply.hijack();
    this.res = reply.raw;
    // headers set on the reply so far (CORS) go out with the stream's
    this.res.writeHead(200, { ...(reply.getHeaders() as OutgoingHttpHeaders), 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    this.res.flushHeaders();
  }

  send(chunk: unknown): void {
    if (!this.res.destroyed) this.res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }

  end(): void {
    if (!this.res.destroyed) this.res.end('data: [DONE]\n\n');
  }
}
