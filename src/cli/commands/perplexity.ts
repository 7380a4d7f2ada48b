// `kiln perplexity MODEL -f FILE -c CTX [--chunks N] [--save-logits FILE] [--kl-base FILE]`: perplexity by
// llama.cpp's method; --save-logits keeps the scored positions' logits (of a full-precision model) and
// --kl-base compares this model's distributions with such a file (KL divergence, top-token agreement, Δp),
// over the text's chunks (checked against the file's tokens) or, without -f, over the file's own tokens.

import { readFileSync } from 'node:fs';
import { optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { perplexity } from '../../generate/generate.js';
import { withActivationQuantization } from '../../quant/ptq/activations.js';
import { compareWithBase } from '../../quant/compare.js';
import { formatKLDReport, KLDStats, LogitsFileError, LogitsReader, LogitsWriter } from '../../quant/kld.js';

/** KL mode without a text (as llama.cpp's): the chunks are the base file's own tokens. */
function compareOnBaseTokens(model: Model, base: LogitsReader, maxChunks: number): void {
  const chunks = Array.from({ length: maxChunks }, (_, c) => Array.from(base.tokens(c)));
  const summary = compareWithBase(model, chunks, (c) => base.chunk(c).logits,
    (done) => process.stderr.isTTY && process.stderr.write(`\r[${done}/${chunks.length}]`));
  base.close();
  if (process.stderr.isTTY) process.stderr.write('\n');
  console.log(`PPL = ${summary.ppl.toFixed(4)} +/- ${summary.pplError.toFixed(5)} (${chunks.length} chunks, ${summary.positions} tokens scored)`);
  console.log(`\n${formatKLDReport(summary)}`);
}

export const perplexityCommand: Command = {
  name: 'perplexity',
  usage: 'MODEL -f FILE [-c CTX] [--chunks N] [--save-logits FILE] | MODEL [-f FILE] --kl-base FILE [--chunks N]',
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
    const savePath = optString(args, 'save-logits');
    const basePath = optString(args, 'kl-base');
    if (!path || (!file && !basePath)) throw new UsageError('a model file and -f FILE (or --kl-base FILE) are required');
    if (savePath && basePath) throw new UsageError('--save-logits and --kl-base do not go together');
    const base = basePath ? new LogitsReader(basePath) : undefined;
    const ctx = optInt(args, 'ctx') ?? base?.nCtx ?? 512;
    if (base && ctx !== base.nCtx) throw new UsageError(`-c ${ctx} differs from the ${base.nCtx} tokens per chunk of ${basePath}`);
    const maxChunks = Math.min(optInt(args, 'chunks') ?? Infinity, base?.nChunks ?? Infinity);

    // a PTQ file with calibrated activation ranges runs with its activations quantized
    const model = withActivationQuantization(Model.load(path));
    model.requireLanguageModelHead();
    if (base && base.nVocab !== model.vocabSize) throw new LogitsFileError(`${basePath} has ${base.nVocab} logits per position, the model ${model.vocabSize}`);
    if (file === undefined) return compareOnBaseTokens(model, base!, maxChunks); // --kl-base is given (checked above)
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
