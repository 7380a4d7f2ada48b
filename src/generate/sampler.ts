// Token sampling from logits, in the order of llama.cpp's default sampler chain, after the sequence's logits
// processors (logits-processor.ts: logit bias, grammar mask):
//   processors → penalties → top-k → top-p → min-p → temperature → seeded draw from the softmax.
// Each stage is a small function over a candidate set (token ids + logits); the Sampler and
// explainSampling run the very same chain. Candidate sets live in two vocab-sized scratch buffers
// allocated once per Sampler, and selection is partial (a k-sized heap), never a full vocab sort.

import { Rng, RngError, randomSeed, type RngState } from './rng.js';
import type { LogitsProcessor } from './logits-processor.js';
import { logSumExp } from '../kernels/formulas.js';

export interface SamplingParams {
  /** logits are divided by this; ≤ 0 means greedy (argmax) */
  temperature: number;
  /** keep the k most likely tokens; ≤ 0 disables; 1 is greedy */
  top_k: number;
  /** keep the smallest most-likely set whose probability sums to ≥ top_p; ≥ 1 disables */
  top_p: number;
  /** keep tokens with probability ≥ min_p · (probability of the most likely token); ≤ 0 disables */
  min_p: number;
  /** positive logits of recent tokens are divided by this, negative ones multiplied; 1 disables */
  repeat_penalty: number;
  /** how many of the last tokens the penalties look at; 0 disables them, −1 means the whole history */
  repeat_last_n: number;
  /** subtracted once from the logit of every token seen in the window */
  presence_penalty: number;
  /** subtracted from a token's logit once per occurrence in the window */
  frequency_penalty: number;
  /** any integer; omitted means a random seed */
  seed?: number;
}

export const DEFAULT_SAMPLING_PARAMS: Readonly<SamplingParams> = Object.freeze({
  temperature: 0.8,
  top_k: 40,
  top_p: 0.95,
  min_p: 0.05,
  repeat_penalty: 1.0,
  repeat_last_n: 64,
  presence_penalty: 0,
  frequency_penalty: 0,
});

export class SamplingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SamplingError';
  }
}

/** Fills in defaults and rejects values that have no meaning (NaN, fractional counts, penalty ≤ 0). */
export function resolveSamplingParams(params: Partial<SamplingParams> = {}): SamplingParams {
  const resolved: SamplingParams = { ...DEFAULT_SAMPLING_PARAMS, ...withoutUndefined(params) };
  for (const name of ['temperature', 'top_p', 'min_p', 'repeat_penalty', 'presence_penalty', 'frequency_penalty'] as const) {
    if (typeof resolved[name] !== 'number' || !Number.isFinite(resolved[name])) {
      throw new SamplingError(`${name} must be a finite number, got ${resolved[name]}`);
    }
  }
  if (!Number.isSafeInteger(resolved.top_k)) throw new SamplingError(`top_k must be an integer, got ${resolved.top_k}`);
  if (!Number.isSafeInteger(resolved.repeat_last_n) || resolved.repeat_last_n < -1) {
    throw new SamplingError(`repeat_last_n must be an integer ≥ −1, got ${resolved.repeat_last_n}`);
  }
  if (resolved.repeat_penalty <= 0) throw new SamplingError(`repeat_penalty must be > 0, got ${resolved.repeat_penalty}`);
  if (resolved.seed !== undefined && !Number.isInteger(resolved.seed)) {
    throw new SamplingError(`seed must be an integer, got ${resolved.seed}`);
  }
  return resolved;
}

function withoutUndefined<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------------------------------------------------
// Candidate sets and the shared helpers

// top-p's histogram: bins of 1/8 nat below the max logit, 32 nats in all (mass beyond is < e^-32 of p_max each)
const BIN_WIDTH = 0.125;
const DISTANCE_BINS = 256;

/** The tokens still in play: entries [0, count) of ids/logits; `sorted` means by logit descending (ties: lower id first). */
interface Candidates {
  ids: Int32Array;      // [vocab] token ids, first `count` valid
  logits: Float32Array; // [vocab] their logits, first `count` valid
  count: number;
  sorted: boolean;
}

/** Two candidate buffers (stages that select write into the other one) and tables for penalties and top-p. */
class CandidateScratch {
  private readonly a: Candidates;
  private readonly b: Candidates;
  readonly counts: Uint32Array; // [vocab] occurrences in the penalty window; all zero between calls
  readonly massByDistance = new Float64Array(DISTANCE_BINS); // [bins] top-p's probability histogram

  constructor(readonly vocabSize: number) {
    this.a = { ids: new Int32Array(vocabSize), logits: new Float32Array(vocabSize), count: 0, sorted: false };
    this.b = { ids: new Int32Array(vocabSize), logits: new Float32Array(vocabSize), count: 0, sorted: false };
    this.counts = new Uint32Array(vocabSize);
  }

  /** The full vocabulary as candidates, after checking the logits. */
  load(logits: Float32Array): Candidates {
    if (logits.length !== this.vocabSize) {
      throw new SamplingError(`expected ${this.vocabSize} logits, got ${logits.length}`);
    }
    const c = this.a;
    for (let i = 0; i < logits.length; i++) {
      const value = logits[i];
      if (Number.isNaN(value) || value === Infinity) throw new SamplingError(`logit ${i} is ${value}`);
      c.ids[i] = i;
    }
    c.logits.set(logits);
    c.count = logits.length;
    c.sorted = false;
    return c;
  }

  other(c: Candidates): Candidates {
    return c === this.a ? this.b : this.a;
  }
}

/**
 * Writes the k best of the first `count` (logit, id) pairs into outIds/outLogits, best first, without
 * touching the source. `ids` null means the id of entry i is i. A min-heap of size k holds the best seen
 * so far with the worst at its root, so most entries cost one comparison: O(count + k log k) typically.
 */
function selectTop(
  logits: Float32Array, ids: Int32Array | null, count: number, k: number,
  outIds: Int32Array, outLogits: Float32Array,
): void {
  // a ranks above b: larger logit, or equal logit and lower id
  const above = (i: number, j: number): boolean =>
    outLogits[i] > outLogits[j] || (outLogits[i] === outLogits[j] && outIds[i] < outIds[j]);
  const swap = (i: number, j: number): void => {
    const id = outIds[i]; outIds[i] = outIds[j]; outIds[j] = id;
    const logit = outLogits[i]; outLogits[i] = outLogits[j]; outLogits[j] = logit;
  };
  // restore the heap below `i` within [0, size): the root is the lowest-ranked entry
  const siftDown = (i: number, size: number): void => {
    for (;;) {
      const left = 2 * i + 1, right = left + 1;
      let lowest = i;
      if (left < size && above(lowest, left)) lowest = left;
      if (right < size && above(lowest, right)) lowest = right;
      if (lowest === i) return;
      swap(i, lowest);
      i = lowest;
    }
  };

  for (let i = 0; i < k; i++) {
    outIds[i] = ids ? ids[i] : i;
    outLogits[i] = logits[i];
  }
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i, k);
  for (let i = k; i < count; i++) {
    const logit = logits[i], id = ids ? ids[i] : i;
    if (logit > outLogits[0] || (logit === outLogits[0] && id < outIds[0])) {
      outIds[0] = id;
      outLogits[0] = logit;
      siftDown(0, k);
    }
  }
  // heapsort: move the lowest-ranked remaining entry to the end each time, leaving best first
  for (let end = k - 1; end > 0; end--) {
    swap(0, end);
    siftDown(0, end);
  }
}

/** Replaces `c` by its k best entries, sorted, in the other buffer. */
function keepBest(c: Candidates, k: number, scratch: CandidateScratch): Candidates {
  const out = scratch.other(c);
  selectTop(c.logits, c.ids, c.count, k, out.ids, out.logits);
  out.count = k;
  out.sorted = true;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The stages, in chain order

/**
 * Repetition, frequency and presence penalties for the tokens in the last `repeat_last_n` of `history`
 * (llama.cpp's rule): logit = logit < 0 ? logit·r : logit / r, then logit −= count·frequency + (count > 0)·presence.
 * Expects the full vocabulary in id order, as loaded.
 */
function applyPenalties(c: Candidates, history: readonly number[], params: SamplingParams, counts: Uint32Array): void {
  const { repeat_penalty: repeat, frequency_penalty: frequency, presence_penalty: presence } = params;
  if (params.repeat_last_n === 0 || (repeat === 1 && frequency === 0 && presence === 0)) return;
  const start = params.repeat_last_n < 0 ? 0 : Math.max(0, history.length - params.repeat_last_n);
  for (let i = start; i < history.length; i++) {
    const token = history[i];
    if (!Number.isInteger(token) || token < 0 || token >= counts.length) {
      for (let j = start; j < i; j++) counts[history[j]] = 0;
      throw new SamplingError(`history[${i}] = ${token} is not a token id below ${counts.length}`);
    }
    counts[token]++;
  }
  for (let i = start; i < history.length; i++) {
    const token = history[i];
    const count = counts[token];
    if (count === 0) continue; // already penalized (a repeat within the window)
    const logit = c.logits[token];
    c.logits[token] = (logit < 0 ? logit * repeat : logit / repeat) - count * frequency - presence;
    counts[token] = 0;
  }
}

/** Greedy decoding is top-k with k = 1, so a temperature ≤ 0 folds into this stage. */
function effectiveTopK(params: SamplingParams): number {
  return params.temperature <= 0 ? 1 : params.top_k;
}

function applyTopK(c: Candidates, k: number, scratch: CandidateScratch): Candidates {
  if (k <= 0 || k >= c.count) return c;
  return keepBest(c, k, scratch);
}

/**
 * Keeps the smallest set of most likely tokens whose probabilities (softmax of the current logits) sum
 * to ≥ p. An unsorted set is first cut to a bound that provably contains that set (a threshold pass),
 * so only the survivors are sorted.
 */
function applyTopP(c: Candidates, p: number, scratch: CandidateScratch): Candidates {
  if (p >= 1 || c.count <= 1) return c;
  const logZ = logSumExp(c.logits, 0, c.count);
  if (!c.sorted) {
    keepAtLeast(c, nucleusLowerBound(c, p, logZ, scratch.massByDistance));
    c = keepBest(c, c.count, scratch);
  }
  let cumulative = 0;
  for (let i = 0; i < c.count; i++) {
    cumulative += Math.exp(c.logits[i] - logZ);
    if (cumulative >= p) {
      c.count = i + 1;
      break;
    }
  }
  return c; // if rounding left the total just under p, everything stays
}

/**
 * A logit below which no token of the top-p set lies: probability mass is binned by distance below the
 * max logit (bins of BIN_WIDTH nats), and the bound is the lower edge of the bin where the mass counted
 * from the top first reaches p. −Infinity if the bins (DISTANCE_BINS · BIN_WIDTH nats) never reach it.
 */
function nucleusLowerBound(c: Candidates, p: number, logZ: number, massByDistance: Float64Array): number {
  massByDistance.fill(0);
  const max = maxLogit(c);
  for (let i = 0; i < c.count; i++) {
    const bin = Math.floor((max - c.logits[i]) / BIN_WIDTH);
    if (bin < DISTANCE_BINS) massByDistance[bin] += Math.exp(c.logits[i] - logZ);
  }
  let cumulative = 0;
  for (let bin = 0; bin < DISTANCE_BINS; bin++) {
    cumulative += massByDistance[bin];
    if (cumulative >= p) return max - (bin + 1) * BIN_WIDTH;
  }
  return -Infinity;
}

/** Keeps tokens with p_i ≥ min_p · p_max, i.e. logit_i ≥ logit_max + ln(min_p). */
function applyMinP(c: Candidates, minP: number): Candidates {
  if (minP <= 0 || c.count <= 1) return c;
  keepAtLeast(c, maxLogit(c) + Math.log(minP));
  return c;
}

function maxLogit(c: Candidates): number {
  if (c.sorted) return c.logits[0];
  let max = -Infinity;
  for (let i = 0; i < c.count; i++) if (c.logits[i] > max) max = c.logits[i];
  return max;
}

/** Drops candidates whose logit is below `threshold`, in place, preserving order. */
function keepAtLeast(c: Candidates, threshold: number): void {
  let kept = 0;
  for (let i = 0; i < c.count; i++) {
    if (c.logits[i] >= threshold) {
      c.ids[kept] = c.ids[i];
      c.logits[kept] = c.logits[i];
      kept++;
    }
  }
  c.count = kept;
}

/** logits /= temperature (temperature ≤ 0 was already reduced to one candidate by effectiveTopK). */
function applyTemperature(c: Candidates, temperature: number): Candidates {
  if (temperature <= 0 || temperature === 1) return c;
  for (let i = 0; i < c.count; i++) c.logits[i] /= temperature;
  return c;
}

/** Runs the logits processors over the loaded vocabulary; some token must stay possible. */
function applyProcessors(c: Candidates, processors: readonly LogitsProcessor[]): void {
  for (const processor of processors) processor.process(c.logits);
  for (let i = 0; i < c.count; i++) if (c.logits[i] !== -Infinity) return;
  throw new SamplingError(processors.length > 0 ? 'every logit is −Infinity after the logits processors: no token is allowed' : 'every logit is −Infinity: no token can be sampled');
}

export type SamplingStage = 'processors' | 'penalties' | 'top_k' | 'top_p' | 'min_p' | 'temperature';

/** Runs the chain on a loaded copy of `logits`; `observe` sees the candidates after each stage. */
function runChain(
  scratch: CandidateScratch, logits: Float32Array, history: readonly number[], params: SamplingParams,
  processors: readonly LogitsProcessor[], observe?: (stage: SamplingStage, c: Candidates) => void,
): Candidates {
  let c = scratch.load(logits);
  applyProcessors(c, processors);
  if (processors.length > 0) observe?.('processors', c);
  applyPenalties(c, history, params, scratch.counts);
  observe?.('penalties', c);
  c = applyTopK(c, effectiveTopK(params), scratch);
  observe?.('top_k', c);
  c = applyTopP(c, params.top_p, scratch);
  observe?.('top_p', c);
  c = applyMinP(c, params.min_p);
  observe?.('min_p', c);
  c = applyTemperature(c, params.temperature);
  observe?.('temperature', c);
  return c;
}

/** Picks the candidate where the cumulative softmax first exceeds u ∈ [0, 1). */
function drawCandidate(c: Candidates, u: number): number {
  const logZ = logSumExp(c.logits, 0, c.count);
  let cumulative = 0;
  let lastPossible = 0;
  for (let i = 0; i < c.count; i++) {
    if (c.logits[i] === -Infinity) continue;
    cumulative += Math.exp(c.logits[i] - logZ);
    if (u < cumulative) return c.ids[i];
    lastPossible = i;
  }
  return c.ids[lastPossible]; // u landed in the rounding gap just below 1
}

// ---------------------------------------------------------------------------------------------------------
// The sampler

/**
 * One sequence's sampler. `sample` draws the next token; `accept` commits it. Until `accept` is called,
 * sampling again repeats the same random draw, so a sequence preempted between the two resumes exactly;
 * `state()` is the committed RNG state, which is all a resumed sequence needs (penalties read `history`).
 */
export class Sampler {
  readonly params: SamplingParams;
  private readonly scratch: CandidateScratch;
  private readonly rng: Rng;
  private committed: RngState;

  /** `processors` run in order before the chain; `accept` passes the chosen token on to them. */
  constructor(params: Partial<SamplingParams>, readonly vocabSize: number, private readonly processors: readonly LogitsProcessor[] = []) {
    if (!Number.isSafeInteger(vocabSize) || vocabSize <= 0) throw new SamplingError(`bad vocabulary size ${vocabSize}`);
    this.params = resolveSamplingParams({ seed: randomSeed(), ...withoutUndefined(params) });
    this.scratch = new CandidateScratch(vocabSize);
    this.rng = new Rng(this.params.seed);
    this.committed = this.rng.state();
  }

  /** The next token for `logits` ([vocab]); `history` is the sequence so far (prompt and generated). */
  sample(logits: Float32Array, history: readonly number[]): number {
    const c = runChain(this.scratch, logits, history, this.params, this.processors);
    this.rng.restore(this.committed);
    if (c.count === 1) return c.ids[0]; // no randomness needed (greedy, or the filters left one token)
    return drawCandidate(c, this.rng.nextFloat());
  }

  /** Commits `token` as this step's choice: the next `sample` uses fresh randomness. */
  accept(token: number): void {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
      throw new SamplingError(`accepted token ${token} is not below the vocabulary size ${this.vocabSize}`);
    }
    this.committed = this.rng.state();
    for (const processor of this.processors) processor.accept(token);
  }

  state(): RngState {
    return this.committed;
  }

  restore(state: RngState): void {
    try {
      this.rng.restore(state);
    } catch (error) {
      if (error instanceof RngError) throw new SamplingError(error.message);
      throw error;
    }
    this.committed = this.rng.state();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Log-probabilities and the stage-by-stage explanation

export interface TokenLogprob {
  token: number;
  logprob: number;
}

/** log softmax of `logits` ([vocab] → new [vocab]). */
export function logSoftmax(logits: Float32Array): Float32Array {
  const logZ = logSumExp(logits, 0, logits.length);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logZ;
  return out;
}

/** The k most likely tokens under softmax(logits), most likely first (ties: lower id first). */
export function topLogprobs(logits: Float32Array, k: number): TokenLogprob[] {
  return topOf(logits, null, logits.length, k).map(({ token, logprob }) => ({ token, logprob }));
}

function topOf(logits: Float32Array, ids: Int32Array | null, count: number, k: number): ExplainedCandidate[] {
  if (!Number.isSafeInteger(k) || k < 0) throw new SamplingError(`k must be a non-negative integer, got ${k}`);
  const n = Math.min(k, count);
  const outIds = new Int32Array(n), outLogits = new Float32Array(n);
  selectTop(logits, ids, count, n, outIds, outLogits);
  const logZ = logSumExp(logits, 0, count);
  return Array.from(outIds, (token, i) => {
    const logprob = outLogits[i] - logZ;
    return { token, logit: outLogits[i], logprob, prob: Math.exp(logprob) };
  });
}

export interface ExplainedCandidate {
  token: number;
  /** the logit as modified by the stages so far */
  logit: number;
  /** probability within this stage's candidate set (softmax of the kept logits) */
  prob: number;
  logprob: number;
}

export interface ExplainedStage {
  stage: SamplingStage;
  /** how many tokens are still candidates after this stage */
  kept: number;
  /** the `k` most likely of them */
  top: ExplainedCandidate[];
}

/** The distribution after each stage of the chain, as the Sampler would see it (no token is drawn). */
export function explainSampling(
  logits: Float32Array, params: Partial<SamplingParams>, history: readonly number[], k: number,
): ExplainedStage[] {
  const stages: ExplainedStage[] = [];
  runChain(new CandidateScratch(logits.length), logits, history, resolveSamplingParams(params), [], (stage, c) => {
    stages.push({ stage, kept: c.count, top: topOf(c.logits, c.ids, c.count, k) });
  });
  return stages;
}
