// Prompt tuning (Lester et al. 2021): k trainable "virtual token" embeddings are put before every sequence's
// token embeddings; the model is frozen. PromptTuningOps is the training ModelOps over sequences of k + seqLen
// rows (virtual tokens at positions 0..k−1) whose output keeps only the real tokens' rows.

import { embedding, gatherRows, Param, Var } from './autograd.js';
import { allocFloats } from './backend.js';
import { TrainOps } from './train-ops.js';
import type { Rng } from '../generate/rng.js';
import { logitsOf, type TrainModel } from './llama-model.js';
import { GGMLType } from '../tensor/ggml-type.js';
import { metaString, metaU32, type GGUFWriteInput } from '../gguf/writer.js';

export interface PromptTuning {
  /** [k rows of dim] the virtual token embeddings, ggml dims [dim, k] */
  prompt: Param;
}

/** k virtual tokens initialized from the embeddings of random vocabulary tokens (a common, stable choice). */
export function createPromptTuning(model: TrainModel, k: number, rng: Rng): PromptTuning {
  const table = model.params.find((p) => p.name === 'token_embd.weight');
  if (!table) throw new RangeError('the model has no token_embd.weight');
  const dim = table.cols, prompt = new Param('prompt_tuning.weight', [dim, k]);
  for (let i = 0; i < k; i++) {
    const token = Math.floor(rng.nextFloat() * table.rows);
    prompt.value.set(table.value.subarray(token * dim, (token + 1) * dim), i * dim);
  }
  return { prompt };
}

/** per sequence: the k prompt rows, then that sequence's seqLen rows of x → [nSeq · (k + seqLen), dim] */
function prependRows(prompt: Var, x: Var, nSeq: number, seqLen: number): Var {
  const k = prompt.rows, dim = x.cols, span = (k + seqLen) * dim;
  const out = allocFloats(nSeq * span, false);
  for (let b = 0; b < nSeq; b++) {
    out.set(prompt.value, b * span);
    out.set(x.value.subarray(b * seqLen * dim, (b + 1) * seqLen * dim), b * span + k * dim);
  }
  return new Var(out, nSeq * (k + seqLen), dim, [prompt, x], (g) => {
    const dp = prompt.gradient(), dx = x.gradient();
    for (let b = 0; b < nSeq; b++) {
      for (let i = 0; i < k * dim; i++) dp[i] += g[b * span + i];
      for (let i = 0; i < seqLen * dim; i++) dx[b * seqLen * dim + i] += g[b * span + k * dim + i];
    }
  });
}

/** Training ops with k virtual tokens before each sequence; the model's weights get no updates. */
export class PromptTuningOps extends TrainOps {
  /** rows of the real tokens in the extended batch */
  private readonly realRows: number[];

  /** `tokens` [nSeq · seqLen]: the real tokens */
  constructor(private readonly realTokens: Int32Array, nSeq: number, private readonly realLen: number, private readonly tuning: PromptTuning) {
    const k = tuning.prompt.rows;
    // positions come from the extended layout; the token ids of the virtual rows are never read
    super(new Int32Array(nSeq * (k + realLen)), nSeq, k + realLen);
    this.realRows = Array.from({ length: nSeq * realLen }, (_, i) => Math.floor(i / realLen) * (k + realLen) + k + (i % realLen));
  }

  override embed(table: Param): Var {
    return prependRows(this.tuning.prompt, embedding(table, this.realTokens), this.nSeq, this.realLen);
  }

  override outputRows(x: Var): Var {
    return gatherRows(x, this.realRows);
  }
}

/** logits [nSeq · seqLen, vocab] of the real tokens with the virtual tokens before them */
export function promptTuningLogits(model: TrainModel, tuning: PromptTuning, tokens: Int32Array, nSeq: number, seqLen: number): Var {
  return logitsOf(model.bound.forward(new PromptTuningOps(tokens, nSeq, seqLen, tuning)));
}

/** The virtual tokens as a GGUF (kiln's own record: llama.cpp has no prompt-tuning adapter type). */
export function promptTuningGGUF(tuning: PromptTuning, architecture: string, name: string): GGUFWriteInput {
  const p = tuning.prompt;
  return {
    metadata: new Map([
      ['general.architecture', metaString(architecture)],
      ['general.type', metaString('adapter')],
      ['adapter.type', metaString('prompt_tuning')],
      ['adapter.prompt_tuning.tokens', metaU32(p.rows)],
      ['general.name', metaString(name)],
    ]),
    tensors: [{ name: p.name, dims: p.dims, type: GGMLType.F32, data: new Uint8Array(p.value.buffer, p.value.byteOffset, p.value.byteLength) }],
  };
}
