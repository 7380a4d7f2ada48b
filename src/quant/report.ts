// The quantization report: a model quantized to each of several llama-quantize types (in memory, by
// ./quantize-model.ts), each evaluated on a text against the original model (perplexity and KL divergence
// over the same chunks, ./compare.ts), summarized as a markdown table and an SVG plot of size against ΔPPL.

import { ggufFromBytes, type GGUFModelFile } from '../gguf/model-file.js';
import { serializeGGUF } from '../gguf/writer.js';
import { perplexityChunks } from '../generate/generate.js';
import { compareWithBase, scoredLogits, withModel } from './compare.js';
import type { KLDSummary } from './kld.js';
import { fileTypeFromName, fileTypeName } from './mix.js';
import { quantizeModel } from './quantize-model.js';

export interface QuantReportOptions {
  ctx: number;
  maxChunks: number;
  /** progress lines */
  log?: (line: string) => void;
}

export interface QuantReportRow {
  type: string;
  fileBytes: number;
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

function bitsPerWeight(file: GGUFModelFile): number {
  const bytes = file.tensorInfos.reduce((sum, t) => sum + t.nBytes, 0);
  return (8 * bytes) / file.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
}

/** Quantizes `base` to each type and compares each result with it on `text`. */
export function quantReport(base: GGUFModelFile, baseName: string, text: string, types: readonly string[], options: QuantReportOptions): QuantReport {
  const log = options.log ?? (() => undefined);
  const { chunks, baseScored } = withModel(base, (model) => {
    const chunks = perplexityChunks(model, text, options.ctx, options.maxChunks);
    log(`${baseName}: base logits over ${chunks.length} chunks of ${options.ctx} tokens`);
    return { chunks, baseScored: scoredLogits(model, chunks) };
  });
  const rows = types.map((type): QuantReportRow => {
    const ftype = fileTypeFromName(type);
    let bytes: Uint8Array;
    try {
      bytes = serializeGGUF(quantizeModel(base, { ftype }));
    } catch (e) {
      log(`${fileTypeName(ftype)}: cannot quantize: ${(e as Error).message}`);
      return { type: fileTypeName(ftype), fileBytes: 0, bpw: 0, error: (e as Error).message };
    }
    const file = ggufFromBytes(bytes, `${baseName}-${fileTypeName(ftype)}`);
    const summary = withModel(file, (model) => compareWithBase(model, chunks, baseScored));
    log(`${fileTypeName(ftype)}: ${(bytes.length / 1048576).toFixed(3)} MiB, PPL ${summary.ppl.toFixed(4)}, mean KLD ${summary.meanKld.toFixed(6)}`);
    return { type: fileTypeName(ftype), fileBytes: bytes.length, bpw: bitsPerWeight(file), summary };
  });
  // every row's summary carries the same base perplexity (same chunks, same base logits)
  const baseSummary = rows.find((r) => r.summary)?.summary;
  return {
    chunks: chunks.length,
    ctx: options.ctx,
    base: {
      type: 'base', fileBytes: base.header.fileSize, bpw: bitsPerWeight(base),
      ppl: baseSummary?.basePpl ?? NaN, pplError: baseSummary?.basePplError ?? NaN,
    },
    rows,
  };
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
    lines.push(`| ${row.type} | ${mib(row.fileBytes)} | ${row.bpw.toFixed(2)} | ${s.ppl.toFixed(4)} ± ${s.pplError.toFixed(4)} | ${delta >= 0 ? '+' : ''}${delta.toFixed(4)} | ${s.meanKld.toFixed(6)} ± ${s.meanKldError.toFixed(6)} | ${(100 * s.sameTop).toFixed(2)} ± ${(100 * s.sameTopError).toFixed(2)}% |`);
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

/**
 * Size (MiB) against ΔPPL, one labelled point per type: a self-contained SVG. The y axis is logarithmic when
 * every ΔPPL is positive and they span more than a factor 10, linear otherwise.
 */
export function reportSvg(r: QuantReport, title: string): string {
  const points = r.rows.filter((row) => row.summary).map((row) => ({ label: row.type, x: row.fileBytes / 1048576, y: row.summary!.ppl - row.summary!.basePpl }));
  const W = 640, H = 420, left = 80, right = 30, top = 50, bottom = 60;
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const logY = ys.length > 1 && ys.every((y) => y > 0) && Math.max(...ys) / Math.min(...ys) > 10;
  const pad = (lo: number, hi: number) => { const d = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1; return [lo - d, hi + d]; };
  const [x0, x1] = pad(Math.min(0, ...xs), Math.max(...xs, 0.001));
  const [y0, y1] = logY
    ? [Math.log10(Math.min(...ys)) - 0.2, Math.log10(Math.max(...ys)) + 0.2]
    : pad(Math.min(0, ...ys), Math.max(0, ...ys));
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * (W - left - right);
  const sy = (y: number) => top + (1 - ((logY ? Math.log10(y) : y) - y0) / (y1 - y0)) * (H - top - bottom);
  const yTicks = logY
    ? Array.from({ length: Math.floor(y1) - Math.ceil(y0) + 1 }, (_, i) => 10 ** (Math.ceil(y0) + i))
    : linearTicks(y0, y1);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="black"/>`,
    ...linearTicks(x0, x1).map((t) => `<line x1="${sx(t)}" y1="${H - bottom}" x2="${sx(t)}" y2="${H - bottom + 5}" stroke="black"/><text x="${sx(t)}" y="${H - bottom + 18}" text-anchor="middle">${t}</text>`),
    ...yTicks.map((t) => `<line x1="${left - 5}" y1="${sy(t)}" x2="${W - right}" y2="${sy(t)}" stroke="#ddd"/><text x="${left - 8}" y="${sy(t) + 4}" text-anchor="end">${t.toPrecision(3)}</text>`),
    `<text x="${(left + W - right) / 2}" y="${H - 18}" text-anchor="middle">file size (MiB)</text>`,
    `<text transform="translate(18 ${(top + H - bottom) / 2}) rotate(-90)" text-anchor="middle">ΔPPL vs base${logY ? ' (log scale)' : ''}</text>`,
    ...points.map((p) => `<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="4" fill="#1f77b4"/><text x="${sx(p.x) + 7}" y="${sy(p.y) - 6}">${escapeXml(p.label)}</text>`),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}
