// `kiln chat [MODEL]`: an interactive conversation using the model's chat template.

import { createInterface } from 'node:readline/promises';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import { generate } from '../../generate/generate.js';
import { ChatTemplate, chatPromptTokens, type ChatMessage } from '../../generate/chat-template.js';
import { loadOptions, samplingParams, withModelLoading, withPromptAdapter, withSampling } from './model-options.js';
import { ctxOption, DEFAULT_MODEL_DESCRIPTION, integer } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';
import { modelPath } from '../default-model.js';

export function chatCommand(): CommandUnknownOpts {
  const command = new Command('chat')
    .summary('chat interactively, using the model\'s chat template')
    .description('Chat with a model, one line per message, using its chat template (ChatML when it has none).')
    .argument('[MODEL]', DEFAULT_MODEL_DESCRIPTION)
    .option('-s, --system <text>', 'system prompt')
    .addOption(new Option('-n, --n-predict <n>', 'maximum tokens per answer').argParser(integer(1)).default(256))
    .addOption(ctxOption('context of the conversation in tokens (default: the model\'s trained context)'));
  return withPromptAdapter(withModelLoading(withSampling(command))).action(async (modelArg, o) => {
    const path = modelPath(modelArg);
    const model = Model.load(path, loadOptions(o));
    const ctx = chooseContext(trainedContext(path, model.hparams.contextLength), o.ctx);
    const tok = model.tokenizer;
    const text = (id: number | null) => (id === null ? '' : tok.tokenText(id));
    const template = ChatTemplate.fromMetadata(model.file.metadata, text(tok.bosId), text(tok.eosId));
    const messages: ChatMessage[] = [];
    if (o.system) messages.push({ role: 'system', content: o.system });
    const sampling = samplingParams(o);
    const maxTokens = o.nPredict;
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
          contextLength: Math.min(ctx, model.promptPrefix.length + prompt.length + maxTokens),
          onText: (text) => process.stdout.write(text),
        });
        process.stdout.write('\n');
        messages.push({ role: 'assistant', content: result.text });
      }
    } finally {
      rl.close();
    }
  });
}
