// `kiln chat [MODEL]`: a conversation using the model's chat template, typed at a terminal or piped in one
// message per line. Each answer runs until an end-of-generation token or the context is full (or -n tokens);
// when the conversation outgrows the context, its oldest turns are dropped.

import { createInterface } from 'node:readline';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import { generate } from '../../generate/generate.js';
import type { SamplingParams } from '../../generate/sampler.js';
import { ChatTemplate, chatPromptTokens, type ChatMessage } from '../../generate/chat-template.js';
import { loadOptions, samplingParams, withModelLoading, withPromptAdapter, withSampling } from './model-options.js';
import { ctxOption, DEFAULT_MODEL_DESCRIPTION, integer } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';
import { modelPath } from '../default-model.js';

export function chatCommand(): CommandUnknownOpts {
  const command = new Command('chat')
    .summary('chat with a model, using its chat template')
    .description('Chat with a model, one line per message (typed, or piped in to the end of the input), using its chat template (ChatML when it has none).')
    .argument('[MODEL]', DEFAULT_MODEL_DESCRIPTION)
    .option('-s, --system <text>', 'system prompt')
    .addOption(new Option('-n, --n-predict <n>', 'maximum tokens per answer (default: until the model ends it or the context is full)').argParser(integer(1)))
    .addOption(ctxOption('context of the conversation in tokens (default: the model\'s trained context)'));
  return withPromptAdapter(withModelLoading(withSampling(command))).action(async (modelArg, o) => {
    const path = modelPath(modelArg);
    const model = Model.load(path, loadOptions(o));
    model.requireLanguageModelHead();
    const refused = await chat(model, {
      system: o.system,
      maxTokens: o.nPredict,
      sampling: samplingParams(o),
      contextLength: chooseContext(trainedContext(path, model.hparams.contextLength), o.ctx),
    });
    if (refused > 0) process.exitCode = 1;
  });
}

interface ChatOptions {
  system?: string;
  /** tokens per answer at most; undefined: until end of generation or the context is full */
  maxTokens?: number;
  sampling: Partial<SamplingParams>;
  contextLength: number;
}

/**
 * Answers every line of stdin until it ends (at a terminal, also at an empty line); the answers go to stdout.
 * Returns how many messages were refused because they do not fit in the context on their own.
 */
async function chat(model: Model, options: ChatOptions): Promise<number> {
  const tok = model.tokenizer;
  const template = ChatTemplate.forModel(model.file.metadata, tok);
  const render = (messages: ChatMessage[]) => chatPromptTokens(tok, template.render(messages));
  const { contextLength, maxTokens } = options;
  // room an answer should have: dropping old turns makes it, when it is not there (a prompt adapter's tokens come first)
  const answerRoom = model.promptPrefix.length + (maxTokens ?? Math.ceil(contextLength / 4));
  const messages: ChatMessage[] = options.system ? [{ role: 'system', content: options.system }] : [];
  const interactive = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  let refused = 0, toldDropping = false;
  if (interactive) {
    console.error('kiln chat — type a message; an empty line or Ctrl-D ends the chat.');
    rl.setPrompt('> ');
    rl.prompt();
  }
  // the async iterator buffers lines that arrive while an answer is generated (piped input arrives all at once)
  for await (const line of rl) {
    if (!line.trim()) {
      if (interactive) break;
      continue;
    }
    messages.push({ role: 'user', content: line });
    const before = messages.length;
    const prompt = fitConversation(messages, render, contextLength - answerRoom);
    if (messages.length < before && !toldDropping) {
      console.error(`kiln chat: the conversation outgrew the context (${contextLength} tokens); dropping its oldest turns`);
      toldDropping = true;
    }
    if (model.promptPrefix.length + prompt.length + (maxTokens ?? 1) > contextLength) {
      const room = maxTokens === undefined ? 'leaving no room for an answer' : `and -n asks for ${maxTokens} more`;
      console.error(`kiln chat: this message takes ${prompt.length} tokens with the chat template, ${room} in a context of ${contextLength}; it was not sent`);
      messages.pop();
      refused++;
    } else {
      const result = generate(model, prompt, { maxTokens, sampling: options.sampling, contextLength, onText: (piece) => process.stdout.write(piece) });
      process.stdout.write('\n');
      messages.push({ role: 'assistant', content: result.text });
    }
    if (interactive) rl.prompt();
  }
  rl.close();
  return refused;
}

/**
 * Drops the oldest turns (a user message and the answers after it; the system message stays) until the rendered
 * conversation has at most `budget` tokens or only the latest message is left. Returns the rendered prompt.
 */
export function fitConversation(messages: ChatMessage[], render: (messages: ChatMessage[]) => number[], budget: number): number[] {
  for (;;) {
    const prompt = render(messages);
    const first = messages.findIndex((m) => m.role !== 'system');
    const next = messages.findIndex((m, i) => i > first && m.role === 'user');
    if (prompt.length <= budget || next < 0) return prompt;
    messages.splice(first, next - first);
  }
}
