// The quantization report: a model quantized to each of several llama-quantize types (in memory, by
// ./quantize-model.ts) or PTQ schemes (./ptq), each evaluated on a text against the original model (perplexity
// and KL divergence over the same chunks, ./compare.ts), summarized as a markdown table and an SVG plot of size
// against ΔPPL and mean KLD. A simulated scheme's size is that of its packed form (ptq/fake-quant.ts packedBits),
// its file being F32.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ggufFromBytes, type GGUFModelFile } from '../gguf/model-file.js';
import { serializeGGUF, type GGUFWriteInput } from '../gguf/writer.js';
import { evaluate, perplexityChunks } from '../generate/generate.js';
import { compareWithBase, withModel } from './compare.js';
import { LogitsReader, LogitsWriter, type KLDSummary } from './kld.js';
import { fileTypeFromName, fileTypeName, QuantMixError, type LlamaFileType } from './mix.js';
import { quantizeModel } from './quantize-model.js';
import { packedBits } from './ptq/fake-quant.js';
import { quantizeWithScheme, type SchemeTensorResult } from './ptq/quantize-model.js';
import { ggufTypeForScheme, parseScheme, SchemeError, type QuantScheme } from './ptq/scheme.js';

export interface QuantReportOptions {
  ctx: number;
  maxChunks: number;
  /** progress lines */
  log?: (line: string) => void;
  /** `done` of `total` steps (the base's logits, then each target) are finished */
  onStep?: (done: number, total: number) => void;
}

export interface QuantReportRow {
  type: string;
  /** the file's size, or for a simulated scheme the size of its packed form */
  fileBytes: number;
  /** a PTQ scheme stored as dequantized F32 */
  simulated?: boolean;
  /** tensor bits per weight */
  bpw: number;
  /** absent for the base row and when quantizing failed */
  summary?: KLDSummary;
  /** why this type could not be made */
  error?: string;
}

export interface QuantReport {
  chunks: number;
  ctx: number;
  base: QuantReportRow & { ppl: number; pplError: number };
  rows: QuantReportRow[];
}

/** What a report row is made by: a llama-quantize file type or a PTQ scheme. */
export type ReportTarget = { name: string; ftype: LlamaFileType } | { name: string; scheme: QuantScheme };

export class ReportTargetError extends Error {
  constructor(text: string) {
    super(`"${text}" is neither a quantization type (Q8_0, Q4_K_M, ...) nor a PTQ scheme (int8, int4-asym-g32, fp8-e4m3, ...)`);
    this.name = 'ReportTargetError';
  }
}

export function parseReportTarget(text: string): ReportTarget {
  try {
    const ftype = fileTypeFromName(text);
    return { name: fileTypeName(ftype), ftype };
  } catch (e) {
    if (!(e instanceof QuantMixError)) throw e;
  }
  try {
    return { name: text.toLowerCase(), scheme: parseScheme(text) };
  } catch (e) {
    if (e instanceof SchemeError) throw new ReportTargetError(text);
    throw e;
  }
}

/** The quantized model, and its tensors' bytes (for a simulated scheme, with its quantized tensors packed). */
function quantizeTarget(base: GGUFModelFile, target: ReportTarget): { output: GGUFWriteInput; tensorBytes: number; simulated: boolean } {
  if ('ftype' in target) {
    const output = quantizeModel(base, { ftype: target.ftype });
    return { output, tensorBytes: output.tensors.reduce((sum, t) => sum + t.data.length, 0), simulated: false };
  }
  const scheme = target.scheme;
  const simulated = ggufTypeForScheme(scheme) === undefined;
  const results: SchemeTensorResult[] = []; // in the order of output.tensors
  const output = quantizeWithScheme(base, scheme, { onTensor: (r) => results.push(r) });
  const tensorBytes = output.tensors.reduce((sum, t, i) => {
    const nElements = t.dims.reduce((a, b) => a * b, 1);
    return sum + (simulated && results[i].quantized ? packedBits(scheme, t.dims[0], nElements) / 8 : t.data.length);
  }, 0);
  return { output, tensorBytes, simulated };
}

/** Quantizes `base` to each target (type or scheme) and compares each result with it on `text`. */
export function quantReport(base: GGUFModelFile, baseName: string, text: string, targets: readonly string[], options: QuantReportOptions): QuantReport {
  const log = options.log ?? (() => undefined);
  const parsed = targets.map(parseReportTarget);
  const nValues = base.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
  // the base's logits go to a temporary file (they can be large: chunks × positions × vocab), read back per chunk
  const tmp = mkdtempSync(join(tmpdir(), 'kiln-quant-report-'));
  const basePath = join(tmp, 'base.logits');
  let baseLogits: LogitsReader | undefined;
  try {
    const chunks = withModel(base, (model) => {
      const chunks = perplexityChunks(model, text, options.ctx, options.maxChunks);
      log(`${baseName}: base logits over ${chunks.length} chunks of ${options.ctx} tokens`);
      const writer = new LogitsWriter(basePath, model.vocabSize, options.ctx);
      for (const chunk of chunks) writer.addChunk(chunk, evaluate(model, chunk));
      writer.close();
      return chunks;
    });
    options.onStep?.(1, parsed.length + 1);
    const reader = baseLogits = new LogitsReader(basePath);
    const rowOf = (target: ReportTarget): QuantReportRow => {
      let made;
      try {
        made = quantizeTarget(base, target);
      } catch (e) {
        log(`${target.name}: cannot quantize: ${(e as Error).message}`);
        return { type: target.name, fileBytes: 0, bpw: 0, error: (e as Error).message };
      }
      const bytes = serializeGGUF(made.output);
      const fileBytes = bytes.length - made.output.tensors.reduce((sum, t) => sum + t.data.length, 0) + made.tensorBytes;
      const summary = withModel(ggufFromBytes(bytes, `${baseName}-${target.name}`), (model) => compareWithBase(model, chunks, (c) => reader.chunk(c).logits));
      log(`${target.name}: ${(fileBytes / 1048576).toFixed(3)} MiB${made.simulated ? ' (packed; simulated in F32)' : ''}, PPL ${summary.ppl.toFixed(4)}, mean KLD ${summary.meanKld.toFixed(6)}`);
      return { type: target.name, fileBytes, bpw: (8 * made.tensorBytes) / nValues, simulated: made.simulated, summary };
    };
    const rows = parsed.map((target, i) => {
      const row = rowOf(target);
      options.onStep?.(i + 2, parsed.length + 1);
      return row;
    });
    // every row's summary carries the same base perplexity (same chunks, same base logits)
    const baseSummary = rows.find((r) => r.summary)?.summary;
    const baseBytes = base.tensorInfos.reduce((sum, t) => sum + t.nBytes, 0);
    return {
      chunks: chunks.length,
      ctx: options.ctx,
      base: {
        type: 'base', fileBytes: base.header.fileSize, bpw: (8 * baseBytes) / nValues,
        ppl: baseSummary?.basePpl ?? NaN, pplError: baseSummary?.basePplError ?? NaN,
      },
      rows,
    };
  } finally {
    baseLogits?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(3);

/** | type | size | bpw | PPL | ΔPPL | mean KLD | top-1 agreement | */
export function reportMarkdown(r: QuantReport): string {
  const lines = [
    `Perplexity and KL divergence against the base over ${r.chunks} chunks of ${r.ctx} tokens (${r.chunks * (r.ctx - 1 - (r.ctx >> 1))} scored positions).`,
    '',
    '| type | size (MiB) | bpw | PPL | ΔPPL | mean KLD | top-1 agreement |',
    '|---|---:|---:|---:|---:|---:|---:|',
    `| base | ${mib(r.base.fileBytes)} | ${r.base.bpw.toFixed(2)} | ${r.base.ppl.toFixed(4)} ± ${r.base.pplError.toFixed(4)} | 0 | 0 | 100% |`,
  ];
  for (const row of r.rows) {
    const s = row.summary;
    if (!s) { lines.push(`| ${row.type} | — | — | — | — | — | not made: ${row.error?.replace(/\|/g, '/')} |`); continue; }
    const delta = s.ppl - s.basePpl;
    lines.push(`| ${row.type} | ${mib(row.fileBytes)}${row.simulated ? '*' : ''} | ${row.bpw.toFixed(2)}${row.simulated ? '*' : ''} | ${s.ppl.toFixed(4)} ± ${s.pplError.toFixed(4)} | ${delta >= 0 ? '+' : ''}${delta.toFixed(4)} | ${s.meanKld.toFixed(6)} ± ${s.meanKldError.toFixed(6)} | ${(100 * s.sameTop).toFixed(2)} ± ${(100 * s.sameTopError).toFixed(2)}% |`);
  }
  if (r.rows.some((row) => row.simulated)) {
    lines.push('', '\\* simulated PTQ scheme: the size of its packed form (values plus float32 scales and zero points); kiln stores and runs the dequantized values as F32.');
  }
  return `${lines.join('\n')}\n`;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** "Nice" tick values covering [lo, hi] on a linear axis. */
function linearTicks(lo: number, hi: number): number[] {
  const step = 10 ** Math.floor(Math.log10((hi - lo) / 4 || 1));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= 8) ?? 10 * step;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / nice) * nice; t <= hi + 1e-12; t += nice) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** 0.08, 1.5, 2e+4, 1e-5 */
function tickLabel(t: number): string {
  return t !== 0 && (Math.abs(t) >= 1e4 || Math.abs(t) < 1e-3) ? t.toExponential(0) : String(Number(t.toPrecision(3)));
}

interface Point { label: string; x: number; y: number; reference?: boolean }

/**
 * One scatter plot in the box [left, top, width, height]: labelled points, a logarithmic y axis when every y is
 * positive and they span more than a factor 10 (else linear, with 0 in range).
 */
function scatter(points: Point[], box: { left: number; top: number; width: number; height: number }, xTitle: string, yTitle: string): string[] {
  const { left, top, width, height } = box;
  const bottom = top + height, right = left + width;
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const logY = ys.length > 1 && ys.every((y) => y > 0) && Math.max(...ys) / Math.min(...ys) > 10;
  const pad = (lo: number, hi: number) => { const d = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1; return [lo - d, hi + d]; };
  const [x0, x1] = pad(0, Math.max(...xs, 0.001));
  const [y0, y1] = logY
    ? [Math.floor(Math.log10(Math.min(...ys))), Math.ceil(Math.log10(Math.max(...ys)))]
    : pad(Math.min(0, ...ys), Math.max(0, ...ys));
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * width;
  const sy = (y: number) => top + (1 - ((logY ? Math.log10(y) : y) - y0) / (y1 - y0)) * height;
  const yTicks = logY ? Array.from({ length: y1 - y0 + 1 }, (_, i) => 10 ** (y0 + i)) : linearTicks(y0, y1);
  return [
    `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="black"/>`,
    ...linearTicks(x0, x1).map((t) => `<line x1="${sx(t)}" y1="${bottom}" x2="${sx(t)}" y2="${bottom + 5}" stroke="black"/><text x="${sx(t)}" y="${bottom + 18}" text-anchor="middle">${tickLabel(t)}</text>`),
    ...yTicks.map((t) => `<line x1="${left - 5}" y1="${sy(t)}" x2="${right}" y2="${sy(t)}" stroke="${t === 0 ? '#888' : '#ddd'}"/><text x="${left - 8}" y="${sy(t) + 4}" text-anchor="end">${tickLabel(t)}</text>`),
    `<text x="${left + width / 2}" y="${bottom + 38}" text-anchor="middle">${escapeXml(xTitle)}</text>`,
    `<text transform="translate(${left - 58} ${top + height / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yTitle)}${logY ? ' (log scale)' : ''}</text>`,
    ...points.map((p) => `<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="4" fill="${p.reference ? 'white' : '#1f77b4'}" stroke="#1f77b4"/><text x="${sx(p.x) + 6}" y="${sy(p.y) - 6}">${escapeXml(p.label)}</text>`),
  ];
}

/** Size (MiB) against ΔPPL and against mean KLD, one labelled point per made type: a self-contained SVG. */
export function reportSvg(r: QuantReport, title: string): string {
  const made = r.rows.filter((row) => row.summary);
  const size = (row: QuantReportRow) => row.fileBytes / 1048576;
  const label = (row: QuantReportRow) => `${row.type}${row.simulated ? '*' : ''}`;
  const deltaPpl: Point[] = [
    { label: 'base', x: size(r.base), y: 0, reference: true },
    ...made.map((row) => ({ label: label(row), x: size(row), y: row.summary!.ppl - row.summary!.basePpl })),
  ];
  const kld: Point[] = made.map((row) => ({ label: label(row), x: size(row), y: row.summary!.meanKld }));
  const W = 1000, H = 440, panel = { top: 60, width: 360, height: 300 };
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="26" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
    ...scatter(deltaPpl, { left: 90, ...panel }, 'size (MiB)', 'ΔPPL vs base'),
    ...(kld.length > 0 ? scatter(kld, { left: 590, ...panel }, 'size (MiB)', 'mean KL divergence from base') : []),
  ];
  if (made.some((row) => row.simulated)) parts.push(`<text x="20" y="${H - 8}" font-size="11">* simulated PTQ scheme: size of its packed form</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
