// The two generation endpoints, /v1/completions and /v1/chat/completions. Both come down to the same work:
// a list of prompts (token ids), each run as one engine request with n completions; choice i·n + j is
// completion j of prompt i. They differ only in how a choice's text and log-probabilities are dressed, so
// each endpoint is a `Flavor` over one shared runner that streams (SSE) or answers once at the end.

import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { ChatTemplate, chatPromptTokens } from '../generate/chat-template.js';
import type { Model } from '../generate/model.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { CompletionDelta, FinishReason, ServingEngine, TokenLogprobs } from '../engine/types.js';
import { ContextLengthError } from '../engine/engine.js';
import { ApiError, invalidRequest, notFound } from './errors.js';
import type { ServerMetrics } from './metrics.js';
import { parseChatRequest, parseCompletionRequest, type GenerationParams, type PromptInput } from './params.js';
import { logitsProcessorsFor } from './output-params.js';
import { chatTooling, toolCallChoices } from './tool-calling.js';

/** The model behind the server: its public name, tokenizer and chat template. */
export interface ServedModel {
  name: string;
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate;
}

/** A loaded model as the server presents it, with the chat template from its metadata (or ChatML). */
export function servedModel(model: Model, name: string): ServedModel {
  return { name, tokenizer: model.tokenizer, chatTemplate: ChatTemplate.forModel(model.file.metadata, model.tokenizer) };
}

export interface ApiContext {
  engine: ServingEngine;
  model: ServedModel;
  metrics: ServerMetrics;
  /** requests waiting in the engine beyond which new ones get 429 */
  maxWaiting: number;
}

// Without max_tokens a completion runs until an end-of-generation token or the context is full (vLLM's default).

export async function handleCompletions(ctx: ApiContext, body: unknown, res: ServerResponse, arrival: number): Promise<void> {
  const request = parseCompletionRequest(body);
  checkModel(ctx, request.model);
  const prompts = request.prompts.map((p) => promptTokens(ctx.model.tokenizer, p));
  // echo: each choice opens with its prompt's text (as given, or the token ids decoded)
  const echoes = request.echo ? request.prompts.map((p) => ('text' in p ? p.text : ctx.model.tokenizer.decode(p.tokens))) : undefined;
  await run(ctx, COMPLETION_FLAVOR, request, prompts, res, arrival, echoes);
}

export async function handleChatCompletions(ctx: ApiContext, body: unknown, res: ServerResponse, arrival: number): Promise<void> {
  const request = parseChatRequest(body);
  checkModel(ctx, request.model);
  const tooling = chatTooling(ctx.model.chatTemplate, request.messages, request.tools, request.output.grammar);
  const prompt = chatPromptTokens(ctx.model.tokenizer, tooling.prompt);
  const output = { ...request.output, grammar: tooling.grammar ?? request.output.grammar };
  const flavor = tooling.family ? { ...CHAT_FLAVOR, ...toolCallChoices(tooling.family, tooling.forced) } : CHAT_FLAVOR;
  await run(ctx, flavor, { ...request, output }, [prompt], res, arrival);
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
  ctx: ApiContext, flavor: Flavor, request: GenerationParams, prompts: number[][], res: ServerResponse, arrival: number,
  echoes?: string[],
): Promise<void> {
  const { engine, model } = ctx;
  const { maxTokens } = request;
  const logitsProcessors = logitsProcessorsFor(request.output, model.tokenizer);
  for (const prompt of prompts) {
    // at least one token must fit after the prompt
    if (prompt.length + (maxTokens ?? 1) > engine.maxModelLength) {
      throw contextLengthExceeded(new ContextLengthError(prompt.length, maxTokens, engine.maxModelLength), flavor.promptParam);
    }
  }
  refuseWhenBusy(ctx);

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
        // a grammar keeps its end within the tokens the completion may generate
        logitsProcessors: logitsProcessors && (() => logitsProcessors(maxTokens ?? engine.maxModelLength - prompt.length)),
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
  const stream = request.stream ? new SseWriter(res) : undefined;
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
  sendJson(res, 200, {
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

/** 429 while maxWaiting requests wait in the engine */
export function refuseWhenBusy(ctx: ApiContext): void {
  if (ctx.engine.stats().waiting >= ctx.maxWaiting) {
    throw new ApiError(429, `the server is busy (${ctx.maxWaiting} requests waiting); retry later`, 'rate_limit_error', null, 'queue_full');
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

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) });
  res.end(json);
}

export function errorBody(e: unknown): ReturnType<ApiError['toJSON']> {
  const error = e instanceof ApiError ? e : new ApiError(500, (e as Error).message ?? String(e), 'server_error');
  return error.toJSON();
}

/** Server-sent events: `data: <json>\n\n` per chunk, closed by `data: [DONE]`. */
class SseWriter {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.flushHeaders();
  }

  send(chunk: unknown): void {
    if (!this.res.destroyed) this.res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }

  end(): void {
    if (!this.res.destroyed) this.res.end('data: [DONE]\n\n');
  }
}
