// `kiln chat [MODEL]`: an interactive conversation using the model's chat template.

import { createInterface } from 'node:readline/promises';
import { optInt, optString, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { generate } from '../../generate/generate.js';
import { ChatTemplate, chatPromptTokens, type ChatMessage } from '../../generate/chat-template.js';
import { MODEL_LOAD_OPTIONS, SAMPLING_OPTIONS, modelLoadOptions, samplingFromArgs } from './model-options.js';
import { modelArgument } from '../default-model.js';

export const chatCommand: Command = {
  name: 'chat',
  usage: '[MODEL] [--system TEXT] [-n N] [sampling options]',
  summary: 'chat interactively, using the model\'s chat template (MODEL defaults to models/kiln-brown.gguf)',
  options: [
    { name: 'system', short: 's', description: 'system prompt' },
    { name: 'n-predict', short: 'n', description: 'maximum tokens per answer (default 256)' },
    ...SAMPLING_OPTIONS,
    ...MODEL_LOAD_OPTIONS,
  ],
  async run(args: ParsedArgs) {
    const path = modelArgument(args);
    const model = Model.load(path, modelLoadOptions(args));
    model.requireLanguageModelHead();
    const tok = model.tokenizer;
    const text = (id: number | null) => (id === null ? '' : tok.tokenText(id));
    const template = ChatTemplate.fromMetadata(model.file.metadata, text(tok.bosId), text(tok.eosId));
    const messages: ChatMessage[] = [];
    const system = optString(args, 'system');
    if (system) messages.push({ role: 'system', content: system });
    const sampling = samplingFromArgs(args);
    const maxTokens = optInt(args, 'n-predict') ?? 256;
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
    console.error('kiln chat — type a message; an empty line or Ctrl-D ends the chat.');
    try {
      for (;;) {
        let line: string;
        try {
          line = await rl.question('> ');
        } catch {
          break; // input closed
        }
        if (!line.trim()) break;
        messages.push({ role: 'user', content: line });
        const prompt = chatPromptTokens(tok, template.render(messages));
        const result = generate(model, prompt, {
          maxTokens,
          sampling,
          contextLength: Math.min(model.hparams.contextLength, prompt.length + maxTokens),
          onText: (text) => process.stdout.write(text),
        });
        process.stdout.write('\n');
        messages.push({ role: 'assistant', content: result.text });
      }
    } finally {
      rl.close();
    }
  },
};
