// `kiln run [MODEL] -p TEXT`: generate a continuation through the serving engine, streamed to stdout (or as JSON).

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import { LLMEngine } from '../../engine/engine.js';
import { collectCompletions } from '../../engine/llm.js';
import { collect, ctxOption, DEFAULT_MODEL_DESCRIPTION, integer } from '../options.js';
import { chooseContext, trainedContext, warnIfCut } from '../context.js';
import { modelPath } from '../default-model.js';
import { loadOptions, samplingParams, withModelLoading, withPromptAdapter, withSampling } from './model-options.js';
import { outputGrammar } from './grammar-options.js';

export function runCommand(): CommandUnknownOpts {
  const command = new Command('run')
    .summary('generate text from a prompt')
    .description('Generate a continuation of a prompt, streamed to stdout; the speed goes to stderr.')
    .argument('[MODEL]', DEFAULT_MODEL_DESCRIPTION)
    .option('-p, --prompt <text>', 'the prompt', '')
    .addOption(new Option('-n, --n-predict <n>', 'tokens to generate').argParser(integer(1)).default(128))
    .addOption(new Option('--stop <text>', 'stop string (repeatable)').argParser(collect))
    .addOption(ctxOption())
    .option('--no-bos', 'do not add BOS/EOS tokens')
    .option('--ignore-eos', 'go on past end-of-sequence tokens until -n or the context ends')
    .option('--grammar <file>', 'hold the output to a GBNF grammar (llama.cpp syntax)')
    .option('--json-schema <file>', 'hold the output to a JSON schema (OpenAI\'s strict subset)')
    .option('--json', 'print {"prompt_tokens","tokens","text"} instead of streaming');
  return withPromptAdapter(withModelLoading(withSampling(command))).action(async (modelArg, o) => {
    const path = modelPath(modelArg);
    const model = Model.load(path, loadOptions(o));
    const grammar = outputGrammar(model.tokenizer, o);
    const promptTokens = model.tokenizer.encode(o.prompt, { addSpecial: o.bos, parseSpecial: true });
    // a prompt adapter's virtual tokens take positions before the prompt
    const prefix = model.promptPrefix.length;
    const trained = trainedContext(path, model.hparams.contextLength);
    const ctx = chooseContext(trained, o.ctx);
    warnIfCut(ctx, prefix + promptTokens.length, o.nPredict, trained);
    // one sequence: its cache holds what it can use, generation ends where the context does
    const engine = new LLMEngine(model, { maxNumSeqs: 1, maxModelLength: Math.min(ctx, prefix + promptTokens.length + o.nPredict), enablePrefixCaching: false });
    const output = grammar && { grammar: grammar.text };
    const stream = engine.submit({ prompt: promptTokens, params: { sampling: samplingParams(o), maxTokens: o.nPredict, stop: o.stop, ignoreEos: o.ignoreEos, output } });
    const [result] = await collectCompletions(stream, 1, o.json ? undefined : (delta) => process.stdout.write(delta.text));
    await engine.close();
    if (o.json) {
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
  });
}
