// `kiln eval MODEL -p TEXT --top 10 --json`: teacher-forced logits after every prompt position.

import { optBool, optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { evaluate } from '../../generate/generate.js';
import { MODEL_LOAD_OPTIONS, modelLoadOptions } from './model-options.js';

/** The k largest logits of one row as [[id, logit], …], largest first (ties to the lower id). */
export function topLogits(logits: Float32Array, offset: number, nVocab: number, k: number): [number, number][] {
  const ids = Array.from({ length: nVocab }, (_, i) => i);
  ids.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
  return ids.slice(0, k).map((id) => [id, logits[offset + id]]);
}

export const evalCommand: Command = {
  name: 'eval',
  usage: 'MODEL -p TEXT [--top K] [--json]',
  summary: 'print the top logits after every prompt position (teacher forcing)',
  options: [
    { name: 'prompt', short: 'p', description: 'the prompt' },
    { name: 'top', description: 'logits per position (default 10)' },
    { name: 'no-bos', boolean: true, description: 'do not add BOS/EOS tokens' },
    { name: 'json', boolean: true, description: 'print JSON {"prompt_tokens", "top"}' },
    ...MODEL_LOAD_OPTIONS,
  ],
  run(args: ParsedArgs) {
    const [path] = args.positionals;
    if (!path) throw new UsageError('a model file is required');
    const model = Model.load(path, modelLoadOptions(args));
    const tokens = model.tokenizer.encode(optString(args, 'prompt') ?? '', { addSpecial: !optBool(args, 'no-bos'), parseSpecial: false });
    const k = optInt(args, 'top') ?? 10;
    const logits = evaluate(model, tokens);
    const nVocab = model.vocabSize;
    const top = tokens.map((_, i) => topLogits(logits, i * nVocab, nVocab, k));
    if (optBool(args, 'json')) {
      console.log(JSON.stringify({ prompt_tokens: tokens, top }));
      return;
    }
    tokens.forEach((id, i) => {
      const shown = top[i].map(([t, l]) => `${JSON.stringify(model.tokenizer.tokenText(t))}=${l.toFixed(3)}`).join(' ');
      console.log(`${String(i).padStart(4)} ${String(id).padStart(6)} ${JSON.stringify(model.tokenizer.tokenText(id)).padEnd(16)} → ${shown}`);
    });
  },
};
