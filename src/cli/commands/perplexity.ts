// `kiln perplexity MODEL -f FILE -c CTX [--chunks N]`: perplexity by llama.cpp's method.

import { readFileSync } from 'node:fs';
import { optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { perplexity } from '../../generate/generate.js';

export const perplexityCommand: Command = {
  name: 'perplexity',
  usage: 'MODEL -f FILE [-c CTX] [--chunks N]',
  summary: 'perplexity of a text (second half of each context-sized chunk scored, as llama.cpp)',
  options: [
    { name: 'file', short: 'f', description: 'text file to score' },
    { name: 'ctx', short: 'c', description: 'tokens per chunk (default 512)' },
    { name: 'chunks', description: 'score at most N chunks' },
  ],
  run(args: ParsedArgs) {
    const [path] = args.positionals;
    const file = optString(args, 'file');
    if (!path || !file) throw new UsageError('a model file and -f FILE are required');
    const model = Model.load(path);
    const result = perplexity(model, readFileSync(file, 'utf8'), optInt(args, 'ctx') ?? 512, optInt(args, 'chunks') ?? Infinity,
      (i, n, ppl) => process.stderr.isTTY && process.stderr.write(`\r[${i}/${n}] ${ppl.toFixed(4)}`));
    if (process.stderr.isTTY) process.stderr.write('\n');
    console.log(`PPL = ${result.ppl.toFixed(4)} +/- ${result.pplError.toFixed(5)} (${result.chunks} chunks, ${result.scoredTokens} tokens scored)`);
  },
};
