// Comparing a model's next-token distributions with a base model's, as llama.cpp's perplexity KL mode does:
// per scored position, KL(P_base‖P) = Σ_v p_base(v)·(ln p_base(v) − ln p(v)), whether both pick the same top
// token, and Δp = p(target) − p_base(target); summarized as means ± standard errors and percentiles, next to
// both perplexities and ln(PPL/PPL_base) (the mean per-token difference of negative log-likelihoods).
//
// Base logits file (little-endian): header u32 magic "KLGT" | u32 version 1 | u32 n_vocab | u32 n_ctx |
// u32 n_chunks, then per chunk: i32 tokens[n_ctx] (first one BOS) | f32 logits[n_ctx − 1 − n_ctx/2][n_vocab]
// (the scored positions n_ctx/2 .. n_ctx − 2).

import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { firstScored } from '../generate/generate.js';
import { logSumExp } from '../kernels/formulas.js';

export class LogitsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogitsFileError';
  }
}

const MAGIC = 0x54474c4b; // "KLGT"
const VERSION = 1;
const HEADER_BYTES = 20;

/** Positions scored in a chunk of ctx tokens. */
export function scoredPerChunk(ctx: number): number {
  return ctx - 1 - firstScored(ctx);
}

function chunkBytes(nVocab: number, nCtx: number): number {
  return 4 * nCtx + 4 * scoredPerChunk(nCtx) * nVocab;
}

/** Writes base logits chunk by chunk; the chunk count is filled in by close(). */
export class LogitsWriter {
  private readonly fd: number;
  private position = HEADER_BYTES;
  private nChunks = 0;

  constructor(readonly path: string, readonly nVocab: number, readonly nCtx: number) {
    try {
      this.fd = openSync(path, 'w');
    } catch (e) {
      throw new LogitsFileError(`cannot write ${path}: ${(e as Error).message}`);
    }
  }

  /** tokens [nCtx]; logits [nCtx, nVocab] of every position (only the scored ones are stored) */
  addChunk(tokens: readonly number[], logits: Float32Array): void {
    const first = firstScored(this.nCtx);
    const scored = logits.subarray(first * this.nVocab, (this.nCtx - 1) * this.nVocab);
    this.write(new Uint8Array(Int32Array.from(tokens).buffer));
    this.write(new Uint8Array(scored.buffer, scored.byteOffset, scored.byteLength));
    this.nChunks++;
  }

  close(): void {
    this.position = 0;
    this.write(new Uint8Array(Uint32Array.from([MAGIC, VERSION, this.nVocab, this.nCtx, this.nChunks]).buffer));
    closeSync(this.fd);
  }

  private write(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.length;) done += writeSync(this.fd, bytes, done, bytes.length - done, this.position + done);
    this.position += bytes.length;
  }
}

/** Reads a base logits file; every count in the header is checked against the file's size before use. */
export class LogitsReader {
  readonly nVocab: number;
  readonly nCtx: number;
  readonly nChunks: number;
  private readonly fd: number;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (e) {
      throw new LogitsFileError(`cannot read ${path}: ${(e as Error).message}`);
    }
    const size = fstatSync(this.fd).size;
    const header = new Uint32Array(this.read(0, HEADER_BYTES, size).buffer);
    if (header[0] !== MAGIC || header[1] !== VERSION) throw this.fail('not a kiln logits file (version 1)');
    [this.nVocab, this.nCtx, this.nChunks] = [header[2], header[3], header[4]];
    if (this.nVocab < 1 || this.nCtx < 4 || this.nChunks < 1) throw this.fail(`bad header (n_vocab ${this.nVocab}, n_ctx ${this.nCtx}, n_chunks ${this.nChunks})`);
    if (size !== HEADER_BYTES + this.nChunks * chunkBytes(this.nVocab, this.nCtx)) {
      throw this.fail(`size ${size} does not match ${this.nChunks} chunks of ${this.nCtx} tokens × ${this.nVocab} logits`);
    }
  }

  /** Chunk c's tokens [nCtx]. */
  tokens(c: number): Int32Array {
    return new Int32Array(this.read(this.chunkAt(c), 4 * this.nCtx).buffer);
  }

  /** Chunk c: its tokens [nCtx] and the scored positions' logits [scoredPerChunk(nCtx), nVocab]. */
  chunk(c: number): { tokens: Int32Array; logits: Float32Array } {
    const logits = new Float32Array(this.read(this.chunkAt(c) + 4 * this.nCtx, 4 * scoredPerChunk(this.nCtx) * this.nVocab).buffer);
    return { tokens: this.tokens(c), logits };
  }

  private chunkAt(c: number): number {
    if (!Number.isInteger(c) || c < 0 || c >= this.nChunks) throw new LogitsFileError(`${this.path} has no chunk ${c}`);
    return HEADER_BYTES + c * chunkBytes(this.nVocab, this.nCtx);
  }

  close(): void {
    closeSync(this.fd);
  }

  private read(at: number, n: number, size = Infinity): Uint8Array {
    if (at + n > size) throw this.fail('truncated');
    const bytes = new Uint8Array(n);
    for (let done = 0; done < n;) {
      const got = readSync(this.fd, bytes, done, n - done, at + done);
      if (got === 0) throw this.fail('truncated');
      done += got;
    }
    return bytes;
  }

  private fail(why: string): LogitsFileError {
    closeSync(this.fd);
    return new LogitsFileError(`${this.path}: ${why}`);
  }
}

/** ln softmax(x[offset .. offset+n)) into out[0..n), in float64. */
function logSoftmax(x: Float32Array, offset: number, n: number, out: Float64Array): void {
  const logSum = logSumExp(x, offset, n);
  for (let i = 0; i < n; i++) out[i] = x[offset + i] - logSum;
}

function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** The value below which `percent` % of sorted values lie (linear between neighbours). */
export function percentile(sorted: ArrayLike<number>, percent: number): number {
  const at = (percent / 100) * (sorted.length - 1);
  const lo = Math.floor(at), hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
}

/** mean and standard error of the mean */
function meanAndError(sum: number, sumSquares: number, n: number): [number, number] {
  const mean = sum / n;
  const variance = Math.max(0, sumSquares / n - mean * mean);
  return [mean, n > 1 ? Math.sqrt(variance / (n - 1)) : 0];
}

export interface KLDSummary {
  positions: number;
  ppl: number; pplError: number;
  basePpl: number; basePplError: number;
  /** mean of ln p_base(target) − ln p(target), i.e. ln(PPL/PPL_base) */
  lnPplRatio: number; lnPplRatioError: number;
  meanKld: number; meanKldError: number;
  /** KLD at percentiles: 100 (max), 99.9, 99, 90, 50 (median), 10, 5, 1, 0 (min) */
  kldPercentiles: Map<number, number>;
  /** share of positions where both models' most likely token is the same, and its standard error */
  sameTop: number; sameTopError: number;
  meanDeltaP: number; meanDeltaPError: number; rmsDeltaP: number;
  deltaPPercentiles: Map<number, number>;
}

export const KLD_PERCENTILES = [100, 99.9, 99, 90, 50, 10, 5, 1, 0];
export const DELTA_P_PERCENTILES = [100, 99.9, 99, 95, 90, 75, 50, 25, 10, 5, 1, 0.1, 0];

/** Accumulates per-position comparisons of a model's logits with the base's. */
export class KLDStats {
  private readonly kld: number[] = [];
  private readonly deltaP: number[] = [];
  private nll = 0; private nll2 = 0;
  private baseNll = 0; private baseNll2 = 0;
  private diff = 0; private diff2 = 0;
  private sameTop = 0;
  private readonly lp: Float64Array;
  private readonly baseLp: Float64Array;

  constructor(readonly nVocab: number) {
    this.lp = new Float64Array(nVocab);
    this.baseLp = new Float64Array(nVocab);
  }

  /** One position: the base's and the model's logits (nVocab values from each offset) and the actual next token. */
  add(baseLogits: Float32Array, baseOffset: number, logits: Float32Array, offset: number, target: number): void {
    const { lp, baseLp, nVocab } = this;
    logSoftmax(baseLogits, baseOffset, nVocab, baseLp);
    logSoftmax(logits, offset, nVocab, lp);
    let kl = 0;
    for (let v = 0; v < nVocab; v++) kl += Math.exp(baseLp[v]) * (baseLp[v] - lp[v]);
    this.kld.push(Math.max(0, kl)); // rounding can leave −1e−17 where the distributions agree
    const nll = -lp[target], baseNll = -baseLp[target];
    this.nll += nll; this.nll2 += nll * nll;
    this.baseNll += baseNll; this.baseNll2 += baseNll * baseNll;
    this.diff += nll - baseNll; this.diff2 += (nll - baseNll) ** 2;
    this.deltaP.push(Math.exp(lp[target]) - Math.exp(baseLp[target]));
    if (argmax(lp) === argmax(baseLp)) this.sameTop++;
  }

  /** Every scored position of a chunk: base logits [scored, vocab], the model's [ctx, vocab], tokens [ctx]. */
  addChunk(baseScored: Float32Array, logits: Float32Array, tokens: ArrayLike<number>): void {
    const ctx = tokens.length, first = firstScored(ctx);
    for (let i = first; i < ctx - 1; i++) this.add(baseScored, (i - first) * this.nVocab, logits, i * this.nVocab, tokens[i + 1]);
  }

  summary(): KLDSummary {
    const n = this.kld.length;
    if (n === 0) throw new Error('no positions compared');
    const [meanNll, nllError] = meanAndError(this.nll, this.nll2, n);
    const [meanBaseNll, baseNllError] = meanAndError(this.baseNll, this.baseNll2, n);
    const [lnPplRatio, lnPplRatioError] = meanAndError(this.diff, this.diff2, n);
    const kldSum = this.kld.reduce((a, b) => a + b, 0);
    const [meanKld, meanKldError] = meanAndError(kldSum, this.kld.reduce((a, b) => a + b * b, 0), n);
    const [meanDeltaP, meanDeltaPError] = meanAndError(this.deltaP.reduce((a, b) => a + b, 0), this.deltaP.reduce((a, b) => a + b * b, 0), n);
    const sortedKld = Float64Array.from(this.kld).sort();
    const sortedDeltaP = Float64Array.from(this.deltaP).sort();
    const sameTop = this.sameTop / n;
    const ppl = Math.exp(meanNll), basePpl = Math.exp(meanBaseNll);
    return {
      positions: n,
      ppl, pplError: ppl * nllError,
      basePpl, basePplError: basePpl * baseNllError,
      lnPplRatio, lnPplRatioError,
      meanKld, meanKldError,
      kldPercentiles: new Map(KLD_PERCENTILES.map((p) => [p, percentile(sortedKld, p)])),
      sameTop, sameTopError: n > 1 ? Math.sqrt((sameTop * (1 - sameTop)) / (n - 1)) : 0,
      meanDeltaP, meanDeltaPError,
      rmsDeltaP: Math.sqrt(this.deltaP.reduce((a, b) => a + b * b, 0) / n),
      deltaPPercentiles: new Map(DELTA_P_PERCENTILES.map((p) => [p, percentile(sortedDeltaP, p)])),
    };
  }
}

/** "Maximum", "99.9%", "Median", "Minimum" */
function percentileLabel(p: number): string {
  return p === 100 ? 'Maximum' : p === 0 ? 'Minimum' : p === 50 ? 'Median' : `${p.toFixed(1)}%`;
}

/** The summary laid out as llama.cpp's perplexity prints its KL divergence statistics. */
export function formatKLDReport(s: KLDSummary): string {
  const lines = [
    '====== Perplexity statistics ======',
    `Mean PPL(Q)                   : ${s.ppl.toFixed(6)} ± ${s.pplError.toFixed(6)}`,
    `Mean PPL(base)                : ${s.basePpl.toFixed(6)} ± ${s.basePplError.toFixed(6)}`,
    `Mean ln(PPL(Q)/PPL(base))     : ${s.lnPplRatio.toFixed(6)} ± ${s.lnPplRatioError.toFixed(6)}`,
    `Mean PPL(Q)/PPL(base)         : ${Math.exp(s.lnPplRatio).toFixed(6)} ± ${(Math.exp(s.lnPplRatio) * s.lnPplRatioError).toFixed(6)}`,
    `Mean PPL(Q)-PPL(base)         : ${(s.ppl - s.basePpl).toFixed(6)}`,
    '',
    '====== KL divergence statistics ======',
    `Mean    KLD: ${s.meanKld.toFixed(6).padStart(10)} ± ${s.meanKldError.toFixed(6)}`,
    ...[...s.kldPercentiles].map(([p, v]) => `${percentileLabel(p).padEnd(7)} KLD: ${v.toFixed(6).padStart(10)}`),
    '',
    '====== Token probability statistics ======',
    `Mean    Δp: ${(100 * s.meanDeltaP).toFixed(3).padStart(8)} ± ${(100 * s.meanDeltaPError).toFixed(3)} %`,
    ...[...s.deltaPPercentiles].map(([p, v]) => `${percentileLabel(p).padEnd(7)} Δp: ${(100 * v).toFixed(3).padStart(8)}%`),
    `RMS Δp    : ${(100 * s.rmsDeltaP).toFixed(3).padStart(8)} %`,
    `Same top p: ${(100 * s.sameTop).toFixed(3).padStart(8)} ± ${(100 * s.sameTopError).toFixed(3)} %`,
    `(${s.positions} positions)`,
  ];
  return lines.join('\n');
}
