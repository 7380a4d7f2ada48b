// `kiln perplexity MODEL -f FILE -c CTX [--chunks N] [--save-logits FILE] [--kl-base FILE]`: perplexity by
// llama.cpp's method; --save-logits keeps the scored positions' logits (of a full-precision model) and
// --kl-base compares this model's distributions with such a file (KL divergence, top-token agreement, Δp).

import { readFileSync } from 'node:fs';
import { optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { perplexity } from '../../generate/generate.js';
import { withActivationQuantization } from '../../quant/ptq/activations.js';
import { formatKLDReport, KLDStats, LogitsFileError, LogitsReader, LogitsWriter } from '../../quant/kld.js';

export const perplexityCommand: Command = {
  name: 'perplexity',
  usage: 'MODEL -f FILE [-c CTX] [--chunks N] [--save-logits FILE] [--kl-base FILE]',
  summary: 'perplexity of a text (second half of each context-sized chunk scored, as llama.cpp), optionally KL divergence from a base model',
  options: [
    { name: 'file', short: 'f', description: 'text file to score' },
    { name: 'ctx', short: 'c', description: 'tokens per chunk (default 512, or the --kl-base file\'s)' },
    { name: 'chunks', description: 'score at most N chunks' },
    { name: 'save-logits', description: 'write the scored positions\' logits to FILE (for a later --kl-base)' },
    { name: 'kl-base', description: 'compare with the base logits in FILE: KL divergence, same top token, Δp' },
  ],
  run(args: ParsedArgs) {
    const [path] = args.positionals;
    const file = optString(args, 'file');
    if (!path || !file) throw new UsageError('a model file and -f FILE are required');
    const savePath = optString(args, 'save-logits');
    const basePath = optString(args, 'kl-base');
    if (savePath && basePath) throw new UsageError('--save-logits and --kl-base do not go together');
    const base = basePath ? new LogitsReader(basePath) : undefined;
    let ctx = optInt(args, 'ctx') ?? base?.nCtx ?? 512;
    if (base && ctx !== base.nCtx) throw new UsageError(`-c ${ctx} differs from the ${base.nCtx} tokens per chunk of ${basePath}`);
    const maxChunks = Math.min(optInt(args, 'chunks') ?? Infinity, base?.nChunks ?? Infinity);

    // a PTQ file with calibrated activation ranges runs with its activations quantized
    const model = withActivationQuantization(Model.load(path));
    if (base && base.nVocab !== model.vocabSize) throw new LogitsFileError(`${basePath} has ${base.nVocab} logits per position, the model ${model.vocabSize}`);
    const writer = savePath ? new LogitsWriter(savePath, model.vocabSize, ctx) : undefined;
    const stats = base ? new KLDStats(model.vocabSize) : undefined;
    const result = perplexity(model, readFileSync(file, 'utf8'), ctx, maxChunks,
      (i, n, ppl) => process.stderr.isTTY && process.stderr.write(`\r[${i}/${n}] ${ppl.toFixed(4)}`),
      (c, tokens, logits) => {
        writer?.addChunk(tokens, logits);
        if (!base || !stats) return;
        const baseChunk = base.chunk(c);
        if (baseChunk.tokens.some((t, i) => t !== tokens[i])) throw new LogitsFileError(`chunk ${c} of ${basePath} has other tokens: a different text or tokenizer`);
        stats.addChunk(baseChunk.logits, logits, tokens);
      });
    writer?.close();
    base?.close();
    if (process.stderr.isTTY) process.stderr.write('\n');
    console.log(`PPL = ${result.ppl.toFixed(4)} +/- ${result.pplError.toFixed(5)} (${result.chunks} chunks, ${result.scoredTokens} tokens scored)`);
    if (writer) console.log(`saved the logits of ${result.scoredTokens} positions to ${savePath}`);
    if (stats) console.log(`\n${formatKLDReport(stats.summary())}`);
  },
};
