// `kiln quant-report MODEL -f TEXT --types Q8_0,Q6_K,... [-c CTX] [--chunks N] [-o DIR]`: quantizes the model to
// each type (or PTQ scheme), measures perplexity and KL divergence against it, prints a markdown table and writes
// DIR/report.md and DIR/report.svg (size against ΔPPL and mean KLD). Progress goes to stderr.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { loadModelFile } from '../../hf/checkpoint.js';
import { readBaseHParams } from '../../models/hparams.js';
import { parseReportTarget, quantReport, reportMarkdown, reportSvg } from '../../quant/report.js';
import { commaList, ctxOption, integer, MODEL_DESCRIPTION, outputOption, UsageError } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';
import { modelPath } from '../default-model.js';
import { withProgress } from '../progress.js';
import { PERPLEXITY_CONTEXT_CAP } from './perplexity.js';

const DEFAULT_TYPES = 'Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K';

export function quantReportCommand(): CommandUnknownOpts {
  return new Command('quant-report')
    .summary('quantize a model to several types and tabulate size, perplexity and KL divergence against it')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .requiredOption('-f, --file <text>', 'text to evaluate on')
    .addOption(new Option('--types <list>', 'comma-separated llama-quantize types and/or PTQ schemes, e.g. int4-asym-g32').argParser(commaList).default(commaList(DEFAULT_TYPES), DEFAULT_TYPES))
    .addOption(ctxOption(`tokens per chunk (default: the model's trained context, at most ${PERPLEXITY_CONTEXT_CAP})`))
    .addOption(new Option('--chunks <n>', 'evaluate at most N chunks').argParser(integer(1)))
    .addOption(outputOption('directory for report.md and report.svg'))
    .action(async (modelArg, o) => {
      for (const t of o.types) {
        try { parseReportTarget(t); } catch (e) { throw new UsageError((e as Error).message); }
      }
      if (o.ctx !== undefined && o.ctx < 4) throw new UsageError('-c must be at least 4');
      const path = modelPath(modelArg);
      const model = loadModelFile(path);
      const ctx = chooseContext(trainedContext(path, readBaseHParams(model.metadata).hp.contextLength), o.ctx, { cap: PERPLEXITY_CONTEXT_CAP });
      const text = readFileSync(o.file, 'utf8');
      const report = await withProgress('step', o.types.length + 1, (progress) => quantReport(model, basename(path), text, o.types, {
        ctx, maxChunks: o.chunks ?? Infinity, log: (line) => progress.log(line), onStep: (done, total) => progress.update(done, '', total),
      }));
      const markdown = reportMarkdown(report);
      process.stdout.write(markdown);
      if (o.output) {
        const dir = o.output;
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'report.md'), `# Quantization report: ${basename(path)} on ${basename(o.file)}\n\n${markdown}`);
        writeFileSync(join(dir, 'report.svg'), reportSvg(report, `${basename(path)} on ${basename(o.file)} (${report.chunks} chunks of ${ctx} tokens)`));
        process.stderr.write(`wrote ${join(dir, 'report.md')} and ${join(dir, 'report.svg')}\n`);
      }
    });
}
