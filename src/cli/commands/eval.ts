// `kiln eval MODEL -p TEXT --top 10 --json`: teacher-forced logits after every prompt position.

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import { evaluate } from '../../generate/generate.js';
import { integer, MODEL_DESCRIPTION } from '../options.js';
import { trainedContext, warnBeyondTrained } from '../context.js';
import { modelPath } from '../default-model.js';
import { loadOptions, withModelLoading } from './model-options.js';

/** The k largest logits of one row as [[id, logit], …], largest first (ties to the lower id). */
export function topLogits(logits: Float32Array, offset: number, nVocab: number, k: number): [number, number][] {
  const ids = Array.from({ length: nVocab }, (_, i) => i);
  ids.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
  return ids.slice(0, k).map((id) => [id, logits[offset + id]]);
}

export function evalCommand(): CommandUnknownOpts {
  const command = new Command('eval')
    .summary('print the top logits after every prompt position (teacher forcing)')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .option('-p, --prompt <text>', 'the prompt', '')
    .addOption(new Option('--top <k>', 'logits per position').argParser(integer(1)).default(10))
    .option('--no-bos', 'do not add BOS/EOS tokens')
    .option('--json', 'print JSON {"prompt_tokens", "top"}');
  return withModelLoading(command).action((modelArg, o) => {
    const path = modelPath(modelArg);
    const model = Model.load(path, loadOptions(o));
    const tokens = model.tokenizer.encode(o.prompt, { addSpecial: o.bos, parseSpecial: false });
    // the whole prompt is one context
    warnBeyondTrained(trainedContext(path, model.hparams.contextLength), tokens.length, `the prompt (${tokens.length} tokens)`);
    const logits = evaluate(model, tokens);
    const nVocab = model.vocabSize;
    const top = tokens.map((_, i) => topLogits(logits, i * nVocab, nVocab, o.top));
    if (o.json) {
      console.log(JSON.stringify({ prompt_tokens: tokens, top }));
      return;
    }
    tokens.forEach((id, i) => {
      const shown = top[i].map(([t, l]) => `${JSON.stringify(model.tokenizer.tokenText(t))}=${l.toFixed(3)}`).join(' ');
      console.log(`${String(i).padStart(4)} ${String(id).padStart(6)} ${JSON.stringify(model.tokenizer.tokenText(id)).padEnd(16)} → ${shown}`);
    });
  });
}
