// `kiln perplexity MODEL -f FILE -c CTX [--chunks N] [--save-logits FILE] [--kl-base FILE]`: perplexity by
// llama.cpp's method; --save-logits keeps the scored positions' logits (of a full-precision model) and
// --kl-base compares this model's distributions with such a file (KL divergence, top-token agreement, Δp),
// over the text's chunks (checked against the file's tokens) or, without -f, over the file's own tokens.

import { readFileSync } from 'node:fs';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import { perplexity } from '../../generate/generate.js';
import { withActivationQuantization } from '../../quant/ptq/activations.js';
import { compareWithBase } from '../../quant/compare.js';
import { formatKLDReport, KLDStats, LogitsFileError, LogitsReader, LogitsWriter } from '../../quant/kld.js';
import { createBackend } from '../../kernels/select.js';
import { ctxOption, integer, MODEL_DESCRIPTION, threadsOption, UsageError } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';
import { modelPath } from '../default-model.js';
import { withProgress } from '../progress.js';

/** Tokens per chunk without -c (llama-perplexity's), or the model's context where that is shorter. */
export const PERPLEXITY_CONTEXT_CAP = 512;

/** KL mode without a text (as llama.cpp's): the chunks are the base file's own tokens. */
async function compareOnBaseTokens(model: Model, base: LogitsReader, maxChunks: number): Promise<void> {
  const chunks = Array.from({ length: maxChunks }, (_, c) => Array.from(base.tokens(c)));
  const summary = await withProgress('chunk', chunks.length, (progress) =>
    compareWithBase(model, chunks, (c) => base.chunk(c).logits, (done) => progress.update(done)));
  base.close();
  console.log(`PPL = ${summary.ppl.toFixed(4)} +/- ${summary.pplError.toFixed(5)} (${chunks.length} chunks of ${base.nCtx} tokens, ${summary.positions} tokens scored)`);
  console.log(`\n${formatKLDReport(summary)}`);
}

export function perplexityCommand(): CommandUnknownOpts {
  return new Command('perplexity')
    .summary('perplexity of a text, optionally KL divergence from a base model')
    .description('Perplexity of a text by llama.cpp\'s method (the second half of each context-sized chunk scored); with --kl-base, KL divergence, top-token agreement and Δp against a base model\'s saved logits.')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .option('-f, --file <text>', 'text file to score')
    .addOption(ctxOption(`tokens per chunk (default: the --kl-base file's, else the model's trained context, at most ${PERPLEXITY_CONTEXT_CAP})`))
    .addOption(new Option('--chunks <n>', 'score at most N chunks').argParser(integer(1)))
    .option('--save-logits <file>', 'write the scored positions\' logits to FILE (for a later --kl-base)')
    .option('--kl-base <file>', 'compare with the base logits in FILE: KL divergence, same top token, Δp')
    .addOption(threadsOption())
    .action(async (modelArg, o) => {
      if (!o.file && !o.klBase) throw new UsageError('-f FILE (or --kl-base FILE) is required');
      if (o.saveLogits && o.klBase) throw new UsageError('--save-logits and --kl-base do not go together');
      const path = modelPath(modelArg);
      const base = o.klBase ? new LogitsReader(o.klBase) : undefined;
      if (base && o.ctx !== undefined && o.ctx !== base.nCtx) throw new UsageError(`-c ${o.ctx} differs from the ${base.nCtx} tokens per chunk of ${o.klBase}`);
      const maxChunks = Math.min(o.chunks ?? Infinity, base?.nChunks ?? Infinity);

      // a PTQ file with calibrated activation ranges runs with its activations quantized
      const model = withActivationQuantization(Model.load(path, { backend: createBackend(undefined, o.threads) }));
      model.requireLanguageModelHead();
      const ctx = chooseContext(trainedContext(path, model.hparams.contextLength), o.ctx ?? base?.nCtx, { cap: PERPLEXITY_CONTEXT_CAP });
      if (base && base.nVocab !== model.vocabSize) throw new LogitsFileError(`${o.klBase} has ${base.nVocab} logits per position, the model ${model.vocabSize}`);
      if (o.file === undefined) return compareOnBaseTokens(model, base!, maxChunks); // --kl-base is given (checked above)
      const writer = o.saveLogits ? new LogitsWriter(o.saveLogits, model.vocabSize, ctx) : undefined;
      const stats = base ? new KLDStats(model.vocabSize) : undefined;
      const text = readFileSync(o.file, 'utf8');
      const result = await withProgress('chunk', 1, (progress) => perplexity(model, text, ctx, maxChunks,
        (i, n, ppl) => progress.update(i, `PPL ${ppl.toFixed(4)}`, n),
        (c, tokens, logits) => {
          writer?.addChunk(tokens, logits);
          if (!base || !stats) return;
          const baseChunk = base.chunk(c);
          if (baseChunk.tokens.some((t, i) => t !== tokens[i])) throw new LogitsFileError(`chunk ${c} of ${o.klBase} has other tokens: a different text or tokenizer`);
          stats.addChunk(baseChunk.logits, logits, tokens);
        }));
      writer?.close();
      base?.close();
      console.log(`PPL = ${result.ppl.toFixed(4)} +/- ${result.pplError.toFixed(5)} (${result.chunks} chunks of ${ctx} tokens, ${result.scoredTokens} tokens scored)`);
      if (writer) console.log(`saved the logits of ${result.scoredTokens} positions to ${o.saveLogits}`);
      if (stats) console.log(`\n${formatKLDReport(stats.summary())}`);
    });
}
