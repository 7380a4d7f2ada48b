// `kiln run MODEL -p TEXT`: generate a continuation, streamed to stdout (or as JSON).

import { optBool, optInt, optList, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { generate } from '../../generate/generate.js';
import { SAMPLING_OPTIONS, samplingFromArgs } from './model-options.js';

export const runCommand: Command = {
  name: 'run',
  usage: 'MODEL -p TEXT [-n N] [--temp T --top-k K --top-p P --min-p M --seed S] [--json]',
  summary: 'generate text from a prompt',
  options: [
    { name: 'prompt', short: 'p', description: 'the prompt' },
    { name: 'n-predict', short: 'n', description: 'tokens to generate (default 128)' },
    { name: 'stop', multiple: true, description: 'stop string (repeatable)' },
    { name: 'ctx', short: 'c', description: 'context length (default: prompt + n, at most the model\'s)' },
    { name: 'no-bos', boolean: true, description: 'do not add BOS/EOS tokens' },
    { name: 'json', boolean: true, description: 'print {"prompt_tokens","tokens","text"} instead of streaming' },
    ...SAMPLING_OPTIONS,
  ],
  run(args: ParsedArgs) {
    const [path] = args.positionals;
    if (!path) throw new UsageError('a model file is required');
    const prompt = optString(args, 'prompt') ?? '';
    const model = Model.load(path);
    const promptTokens = model.tokenizer.encode(prompt, { addSpecial: !optBool(args, 'no-bos'), parseSpecial: true });
    const json = optBool(args, 'json');
    const result = generate(model, promptTokens, {
      maxTokens: optInt(args, 'n-predict') ?? 128,
      sampling: samplingFromArgs(args),
      stop: optList(args, 'stop'),
      contextLength: optInt(args, 'ctx'),
      onText: json ? undefined : (text) => process.stdout.write(text),
    });
    if (json) {
      console.log(JSON.stringify({ prompt_tokens: result.promptTokens, tokens: result.tokens, text: result.text }));
      return;
    }
    process.stdout.write('\n');
    const n = result.tokens.length;
    console.error(
      `prompt ${promptTokens.length} tokens in ${result.prefillSeconds.toFixed(3)} s` +
        ` (${(promptTokens.length / result.prefillSeconds).toFixed(1)} t/s); ` +
        `generated ${n} tokens in ${result.decodeSeconds.toFixed(3)} s (${(n / result.decodeSeconds).toFixed(1)} t/s)`,
    );
  },
};
