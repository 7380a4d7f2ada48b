// `kiln imatrix MODEL -f TEXT [-o FILE] [-c CTX] [--chunks N] [--process-output]`: an importance matrix as
// llama-imatrix computes it (the mean squared input of every weight matrix's columns over the text), written in
// llama-imatrix's legacy .dat format, which `kiln quantize --imatrix` and llama-quantize read:
//   i32 n_entries, per entry: i32 name_len | name | i32 ncall | i32 nval | f32 values[nval] (means × ncall),
//   then i32 chunk count | i32 len | dataset name.

import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { loadModelFile } from '../../hf/checkpoint.js';
import { readBaseHParams } from '../../models/hparams.js';
import { collectImportance } from '../../quant/ptq/activations.js';
import { ctxOption, integer, MODEL_DESCRIPTION, outputOption, UsageError } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';
import { modelPath } from '../default-model.js';
import { withProgress } from '../progress.js';
import { PERPLEXITY_CONTEXT_CAP } from './perplexity.js';

/** The legacy .dat bytes of per-weight column means collected over `calls` calls. */
export function imatrixDatBytes(entries: ReadonlyMap<string, Float32Array>, calls: number, dataset: string): Uint8Array {
  const parts: Uint8Array[] = [];
  const i32 = (v: number) => parts.push(new Uint8Array(Int32Array.of(v).buffer));
  const text = (s: string) => { const b = new TextEncoder().encode(s); i32(b.length); parts.push(b); };
  i32(entries.size);
  for (const [name, means] of entries) {
    text(name);
    i32(calls);
    i32(means.length);
    parts.push(new Uint8Array(Float32Array.from(means, (m) => m * calls).buffer));
  }
  i32(calls);
  text(dataset);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function imatrixCommand(): CommandUnknownOpts {
  return new Command('imatrix')
    .summary('compute an importance matrix (llama-imatrix .dat) for kiln quantize --imatrix')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .requiredOption('-f, --file <text>', 'calibration text')
    .addOption(outputOption('output file').default('imatrix.dat'))
    .addOption(ctxOption(`tokens per chunk (default: the model's trained context, at most ${PERPLEXITY_CONTEXT_CAP})`))
    .addOption(new Option('--chunks <n>', 'use at most N chunks').argParser(integer(1)))
    .option('--process-output', 'collect output.weight too (llama-imatrix leaves it out by default)')
    .action(async (modelArg, o) => {
      if (o.ctx !== undefined && o.ctx < 2) throw new UsageError('-c must be at least 2');
      const path = modelPath(modelArg);
      const model = loadModelFile(path);
      const ctx = chooseContext(trainedContext(path, readBaseHParams(model.metadata).hp.contextLength), o.ctx, { cap: PERPLEXITY_CONTEXT_CAP });
      const text = readFileSync(o.file, 'utf8');
      const collected = await withProgress('chunk', 1, (progress) => collectImportance(model, text, ctx, o.chunks ?? Infinity,
        o.processOutput ?? false, (i, n, ppl) => progress.update(i, `PPL ${ppl.toFixed(4)}`, n)));
      writeFileSync(o.output, imatrixDatBytes(collected.entries, collected.calls, basename(o.file)));
      const p = collected.perplexity;
      console.log(`${o.output}: ${collected.entries.size} entries over ${collected.calls} chunks of ${ctx} tokens (PPL ${p.ppl.toFixed(4)} +/- ${p.pplError.toFixed(5)})`);
    });
}
