// `kiln quant-report MODEL -f TEXT --types Q8_0,Q6_K,... [-c CTX] [--chunks N] [-o DIR]`: quantizes the model to
// each type (or PTQ scheme), measures perplexity and KL divergence against it, prints a markdown table and writes
// DIR/report.md and DIR/report.svg (size against ΔPPL and mean KLD). Progress goes to stderr.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { loadGGUF } from '../../gguf/model-file.js';
import { parseReportTarget, quantReport, reportMarkdown, reportSvg } from '../../quant/report.js';

const DEFAULT_TYPES = 'Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K';

export const quantReportCommand: Command = {
  name: 'quant-report',
  usage: 'MODEL -f TEXT [--types T1,T2,...] [-c CTX] [--chunks N] [-o DIR]',
  summary: 'quantize a model to several types and tabulate size, perplexity and KL divergence against it',
  options: [
    { name: 'file', short: 'f', description: 'text to evaluate on' },
    { name: 'types', description: `comma-separated llama-quantize types and/or PTQ schemes, e.g. int4-asym-g32 (default ${DEFAULT_TYPES})` },
    { name: 'ctx', short: 'c', description: 'tokens per chunk (default 512)' },
    { name: 'chunks', description: 'evaluate at most N chunks' },
    { name: 'output', short: 'o', description: 'directory for report.md and report.svg' },
  ],
  run(args: ParsedArgs) {
    const [path, ...extra] = args.positionals;
    const textPath = optString(args, 'file');
    if (!path || !textPath || extra.length > 0) throw new UsageError(`usage: kiln quant-report ${quantReportCommand.usage}`);
    const types = (optString(args, 'types') ?? DEFAULT_TYPES).split(',').map((t) => t.trim()).filter(Boolean);
    for (const t of types) {
      try { parseReportTarget(t); } catch (e) { throw new UsageError((e as Error).message); }
    }
    const ctx = optInt(args, 'ctx') ?? 512;
    if (ctx < 4) throw new UsageError('-c must be at least 4');
    const report = quantReport(loadGGUF(path), basename(path), readFileSync(textPath, 'utf8'), types, {
      ctx, maxChunks: optInt(args, 'chunks') ?? Infinity, log: (line) => process.stderr.write(`${line}\n`),
    });
    const markdown = reportMarkdown(report);
    process.stdout.write(markdown);
    const dir = optString(args, 'output');
    if (dir) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'report.md'), `# Quantization report: ${basename(path)} on ${basename(textPath)}\n\n${markdown}`);
      writeFileSync(join(dir, 'report.svg'), reportSvg(report, `${basename(path)} on ${basename(textPath)} (${report.chunks} chunks of ${ctx} tokens)`));
      process.stderr.write(`wrote ${join(dir, 'report.md')} and ${join(dir, 'report.svg')}\n`);
    }
  },
};
