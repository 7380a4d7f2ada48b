// `kiln run [MODEL] -p TEXT`: generate a continuation through the serving engine, streamed to stdout (or as JSON).

import { optBool, optInt, optList, optString, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { LLMEngine } from '../../engine/engine.js';
import { collectCompletions } from '../../engine/llm.js';
import { MODEL_LOAD_OPTIONS, SAMPLING_OPTIONS, modelLoadOptions, samplingFromArgs } from './model-options.js';
import { modelArgument } from '../default-model.js';

export const runCommand: Command = {
  name: 'run',
  usage: '[MODEL] -p TEXT [-n N] [--temp T --top-k K --top-p P --min-p M --seed S] [--json] [--lora FILE --lora-scale S]',
  summary: 'generate text from a prompt (MODEL defaults to models/kiln-brown.gguf)',
  options: [
    { name: 'prompt', short: 'p', description: 'the prompt' },
    { name: 'n-predict', short: 'n', description: 'tokens to generate (default 128)' },
    { name: 'stop', multiple: true, description: 'stop string (repeatable)' },
    { name: 'ctx', short: 'c', description: 'context length (default: prompt + n, at most the model\'s)' },
    { name: 'no-bos', boolean: true, description: 'do not add BOS/EOS tokens' },
    { name: 'json', boolean: true, description: 'print {"prompt_tokens","tokens","text"} instead of streaming' },
    ...SAMPLING_OPTIONS,
    ...MODEL_LOAD_OPTIONS,
  ],
  async run(args: ParsedArgs) {
    const path = modelArgument(args);
    const prompt = optString(args, 'prompt') ?? '';
    const model = Model.load(path, modelLoadOptions(args));
    const promptTokens = model.tokenizer.encode(prompt, { addSpecial: !optBool(args, 'no-bos'), parseSpecial: true });
    const maxTokens = optInt(args, 'n-predict') ?? 128;
    const json = optBool(args, 'json');
    // one sequence; generation also ends where the context does
    const ctx = optInt(args, 'ctx') ?? Math.min(model.hparams.contextLength, promptTokens.length + maxTokens);
    const engine = new LLMEngine(model, { maxNumSeqs: 1, maxModelLength: ctx, enablePrefixCaching: false });
    const stream = engine.submit({ prompt: promptTokens, params: { sampling: samplingFromArgs(args), maxTokens, stop: optList(args, 'stop') } });
    const [result] = await collectCompletions(stream, 1, json ? undefined : (delta) => process.stdout.write(delta.text));
    await engine.close();
    if (json) {
      console.log(JSON.stringify({ prompt_tokens: promptTokens, tokens: result.token_ids, text: result.text }));
      return;
    }
    process.stdout.write('\n');
    const { arrivalTime, firstTokenTime = arrivalTime, finishedTime = firstTokenTime } = stream.metrics;
    const prefillSeconds = firstTokenTime - arrivalTime, decodeSeconds = finishedTime - firstTokenTime;
    const n = result.token_ids.length;
    console.error(
      `prompt ${promptTokens.length} tokens in ${prefillSeconds.toFixed(3)} s` +
        ` (${(promptTokens.length / prefillSeconds).toFixed(1)} t/s); ` +
        `generated ${n} tokens in ${decodeSeconds.toFixed(3)} s (${(n / decodeSeconds).toFixed(1)} t/s)`,
    );
  },
};
