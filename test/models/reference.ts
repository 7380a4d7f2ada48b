// Reading llama.cpp's reference runs (../shared/conformance/reference/MODEL.PROMPT.json) and comparing kiln to them.

import { readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import { Model } from '../../src/generate/model.js';
import { SingleSequence } from '../../src/generate/generate.js';

export type TopK = [number, number][];

export interface ReferenceRun {
  prompt: string;
  n_vocab: number;
  prompt_tokens: number[];
  prompt_topk: TopK[];
  last_logits: number[];
  greedy: number[];
  greedy_topk: TopK[];
}

export function readReference(name: string): ReferenceRun {
  return JSON.parse(readFileSync(sharedPath('conformance', 'reference', name), 'utf8')) as ReferenceRun;
}

const models = new Map<string, Model>();

/** Models are cached across tests of one file. */
export function loadModel(...path: string[]): Model {
  const key = path.join('/');
  let model = models.get(key);
  if (!model) models.set(key, (model = Model.load(sharedPath(...path))));
  return model;
}

/** Largest |kiln − reference| over the reference's top-k entries of one position. */
export function maxTopKError(logits: Float32Array, offset: number, top: TopK): number {
  let worst = 0;
  for (const [id, value] of top) worst = Math.max(worst, Math.abs(logits[offset + id] - value));
  return worst;
}

export function argmax(logits: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[offset + i] > logits[offset + best]) best = i;
  return best;
}

export interface ReplayResult {
  /** logits after each prompt position, [prompt, vocab] (one prefill batch) */
  promptLogits: Float32Array;
  /** logits before choosing greedy token j, from decoding the reference's greedy tokens one at a time */
  stepLogits: Float32Array[];
}

/** Prefill the prompt, then feed the reference's greedy tokens one at a time (teacher-forced decode). */
export function replay(model: Model, ref: ReferenceRun): ReplayResult {
  const seq = new SingleSequence(model, ref.prompt_tokens.length + ref.greedy.length);
  const promptLogits = seq.feed(ref.prompt_tokens, true);
  const n = ref.n_vocab;
  const stepLogits: Float32Array[] = [promptLogits.slice((ref.prompt_tokens.length - 1) * n)];
  for (const token of ref.greedy.slice(0, -1)) stepLogits.push(seq.feed([token]));
  return { promptLogits, stepLogits };
}
