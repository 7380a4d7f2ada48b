// Direct Preference Optimization (Rafailov et al. 2023) on {prompt, chosen, rejected} pairs against a frozen
// reference model:
//   loss = −log σ(β · [(log πθ(y_w|x) − log πref(y_w|x)) − (log πθ(y_l|x) − log πref(y_l|x))])
// with each log π(y|x) the sum of the response tokens' log-probabilities (prompt tokens masked out).
// A batch holds B pairs as 2B sequences of one padded length: the B chosen, then the B rejected.

import { readFileSync } from 'node:fs';
import { Rng } from '../generate/rng.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { Var, backward, tokenLogprobs } from './autograd.js';
import { allocFloats, floatsMark, releaseFloats } from './backend.js';
import { AdamW } from './optim.js';
import { forwardLogits, type TrainModel } from './llama-model.js';

export class PreferenceDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreferenceDataError';
  }
}

export interface PreferencePair {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** One pair as token ids. */
export interface TokenizedPair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

/** Reads JSONL, one {prompt, chosen, rejected} object of strings per non-empty line. */
export function readPreferences(path: string): PreferencePair[] {
  return readFileSync(path, 'utf8').split('\n').flatMap((line, i) => {
    if (line.trim() === '') return [];
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch (e) {
      throw new PreferenceDataError(`${path}:${i + 1}: ${(e as Error).message}`);
    }
    const d = doc as Record<string, unknown>;
    if (typeof d !== 'object' || d === null || !['prompt', 'chosen', 'rejected'].every((k) => typeof d[k] === 'string')) {
      throw new PreferenceDataError(`${path}:${i + 1}: expected an object with string fields prompt, chosen and rejected`);
    }
    return [{ prompt: d.prompt as string, chosen: d.chosen as string, rejected: d.rejected as string }];
  });
}

export function tokenizePairs(pairs: readonly PreferencePair[], tokenizer: Tokenizer, maxLen: number): TokenizedPair[] {
  const encode = (text: string) => tokenizer.encode(text, { addSpecial: false, parseSpecial: false });
  return pairs.map((p, i) => {
    const t = { prompt: encode(p.prompt), chosen: encode(p.chosen), rejected: encode(p.rejected) };
    if (t.prompt.length === 0 || t.chosen.length === 0 || t.rejected.length === 0) throw new PreferenceDataError(`pair ${i}: prompt and responses must be non-empty`);
    const longest = t.prompt.length + Math.max(t.chosen.length, t.rejected.length) - 1;
    if (longest > maxLen) throw new PreferenceDataError(`pair ${i}: ${longest} tokens exceed the model's context ${maxLen}`);
    return t;
  });
}

/**
 * Inputs and targets of the 2B sequences (chosen first), padded to one length L with token 0 and target −1:
 * tokens [2B · L], targets [2B · L] where only response tokens are targets.
 */
function sequences(pairs: readonly TokenizedPair[]): { tokens: Int32Array; targets: Int32Array; nSeq: number; seqLen: number } {
  const full = [...pairs.map((p) => [...p.prompt, ...p.chosen]), ...pairs.map((p) => [...p.prompt, ...p.rejected])];
  const promptLen = [...pairs, ...pairs].map((p) => p.prompt.length);
  const seqLen = Math.max(...full.map((s) => s.length - 1)), nSeq = full.length;
  const tokens = new Int32Array(nSeq * seqLen), targets = new Int32Array(nSeq * seqLen).fill(-1);
  full.forEach((s, b) => {
    for (let i = 0; i + 1 < s.length; i++) {
      tokens[b * seqLen + i] = s[i];
      // position i predicts s[i + 1]: a response token when i + 1 ≥ prompt length
      if (i + 1 >= promptLen[b]) targets[b * seqLen + i] = s[i + 1];
    }
  });
  return { tokens, targets, nSeq, seqLen };
}

/** Σ of each sequence's rows of x [nSeq · seqLen, 1] → [nSeq, 1] */
function sumPerSequence(x: Var, nSeq: number, seqLen: number): Var {
  const out = allocFloats(nSeq);
  for (let b = 0; b < nSeq; b++) for (let i = 0; i < seqLen; i++) out[b] += x.value[b * seqLen + i];
  return new Var(out, nSeq, 1, [x], (g) => {
    const dx = x.gradient();
    for (let b = 0; b < nSeq; b++) for (let i = 0; i < seqLen; i++) dx[b * seqLen + i] += g[b];
  });
}

/** log π(y|x) of every sequence: [2B, 1] (chosen, then rejected) */
function sequenceLogprobs(model: TrainModel, pairs: readonly TokenizedPair[]): Var {
  const { tokens, targets, nSeq, seqLen } = sequences(pairs);
  return sumPerSequence(tokenLogprobs(forwardLogits(model, tokens, nSeq, seqLen), targets), nSeq, seqLen);
}

const logSigmoid = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Mean DPO loss over B pairs from the policy's sequence log-probs [2B, 1] and the reference's (constants) → a
 * scalar [1, 1]. With m = (πw − rw) − (πl − rl): loss = −log σ(βm), d/dπw = −β σ(−βm), d/dπl = +β σ(−βm).
 */
export function dpoLoss(policy: Var, reference: Float32Array, beta: number): Var {
  const B = policy.rows / 2;
  const margins = Array.from({ length: B }, (_, i) => policy.value[i] - reference[i] - (policy.value[B + i] - reference[B + i]));
  const out = allocFloats(1);
  out[0] = -margins.reduce((s, m) => s + logSigmoid(beta * m), 0) / B;
  return new Var(out, 1, 1, [policy], (g) => {
    const dp = policy.gradient();
    margins.forEach((m, i) => {
      const k = (g[0] * beta * sigmoid(-beta * m)) / B;
      dp[i] -= k;
      dp[B + i] += k;
    });
  });
}

export interface PreferenceStats {
  /** mean of the implicit-reward margin (log πθ/πref of chosen − of rejected) */
  margin: number;
  /** fraction of pairs where the policy gives the chosen response a higher log-probability than the rejected */
  accuracy: number;
  /** fraction of pairs with a positive margin */
  rewardAccuracy: number;
  loss: number;
}

/** reference log-probs [2B] of each batch of pairs, computed once (the reference is frozen) */
function referenceLogprobs(reference: TrainModel, pairs: readonly TokenizedPair[]): Float32Array {
  const mark = floatsMark();
  const out = Float32Array.from(sequenceLogprobs(reference, pairs).value);
  releaseFloats(mark);
  return out;
}

/** Margin, accuracies and loss of `policy` on `pairs` against `reference`, in batches of batchSize pairs. */
export function preferenceStats(policy: TrainModel, reference: TrainModel, pairs: readonly TokenizedPair[], beta: number, batchSize: number): PreferenceStats {
  let margin = 0, accuracy = 0, rewardAccuracy = 0, loss = 0;
  for (let i = 0; i < pairs.length; i += batchSize) {
    const batch = pairs.slice(i, i + batchSize), B = batch.length;
    const ref = referenceLogprobs(reference, batch);
    const mark = floatsMark();
    const pol = sequenceLogprobs(policy, batch);
    loss += dpoLoss(pol, ref, beta).value[0] * B;
    for (let j = 0; j < B; j++) {
      const m = pol.value[j] - ref[j] - (pol.value[B + j] - ref[B + j]);
      margin += m;
      if (m > 0) rewardAccuracy++;
      if (pol.value[j] > pol.value[B + j]) accuracy++;
    }
    releaseFloats(mark);
  }
  const n = pairs.length;
  return { margin: margin / n, accuracy: accuracy / n, rewardAccuracy: rewardAccuracy / n, loss: loss / n };
}

export interface DpoOptions {
  beta: number;
  steps: number;
  /** pairs per step */
  batchSize: number;
  lr: number;
  seed: number;
  gradClip: number;
  onStep?: (step: number, loss: number) => void;
}

/** Trains `policy` in place on `pairs` (batches drawn at random from a seeded generator) with `reference` frozen. */
export function trainDpo(policy: TrainModel, reference: TrainModel, pairs: readonly TokenizedPair[], o: DpoOptions): void {
  if (!(o.beta > 0)) throw new PreferenceDataError(`beta must be positive, got ${o.beta}`);
  if (pairs.length === 0) throw new PreferenceDataError('no preference pairs');
  const optimizer = new AdamW(policy.params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
  const rng = new Rng(o.seed);
  for (let step = 0; step < o.steps; step++) {
    const batch = Array.from({ length: Math.min(o.batchSize, pairs.length) }, () => pairs[Math.floor(rng.nextFloat() * pairs.length)]);
    const ref = referenceLogprobs(reference, batch);
    const mark = floatsMark();
    const loss = dpoLoss(sequenceLogprobs(policy, batch), ref, o.beta);
    backward(loss);
    const value = loss.value[0];
    releaseFloats(mark);
    optimizer.step(o.lr, o.gradClip);
    optimizer.zeroGrad();
    o.onStep?.(step + 1, value);
  }
}
