// ModelOps for training: activations are autograd Vars, weights are trainable Params, and the batch is nSeq
// sequences of seqLen tokens laid out one after another (row b·seqLen + s is token s of sequence b, at position s).
// Attention is causal within each sequence; there is no KV cache, and every row's logits are wanted.

import type { AttentionShape, RopeParams } from '../kernels/backend.js';
import type { ExpertWeights, ModelOps } from '../models/ops.js';
import { routeToExperts } from '../models/ops.js';
import {
  add, attention, combineExperts, embedding, gatherRows, linear, rmsnorm, rope, routerWeights, swiglu,
  type ExpertChoice, type Param, type Var,
} from './autograd.js';
import { ropeAngles, type RopeAngles } from '../kernels/rope.js';

export class TrainOps implements ModelOps<Var, Param> {
  /** [nSeq · seqLen] position of each row within its sequence */
  readonly positions: Int32Array;
  /** rotation angles at `positions`, per rope setting (the same for every layer) */
  private readonly angles = new Map<RopeParams, RopeAngles>();

  /** `tokens` [nSeq · seqLen] */
  constructor(readonly tokens: Int32Array, readonly nSeq: number, readonly seqLen: number) {
    if (tokens.length !== nSeq * seqLen) throw new RangeError(`${tokens.length} tokens are not ${nSeq} sequences of ${seqLen}`);
    this.positions = Int32Array.from(tokens, (_, i) => i % seqLen);
  }

  embed(table: Param): Var {
    return embedding(table, this.tokens);
  }

  linear(x: Var, w: Param, bias?: Param): Var {
    return linear(x, w, bias);
  }

  rmsnorm(x: Var, weight: Param, eps: number): Var {
    return rmsnorm(x, weight, eps);
  }

  rope(x: Var, nHeads: number, headDim: number, params: RopeParams): Var {
    let angles = this.angles.get(params);
    if (!angles) this.angles.set(params, (angles = ropeAngles(this.positions, params)));
    return rope(x, nHeads, headDim, angles, params);
  }

  attention(_layer: number, q: Var, k: Var, v: Var, shape: AttentionShape): Var {
    return attention(q, k, v, shape, this.nSeq, this.seqLen);
  }

  swiglu(gate: Var, up: Var): Var {
    return swiglu(gate, up);
  }

  add(a: Var, b: Var): Var {
    return add(a, b);
  }

  /** route each token (no gradient through the choice), run every expert on its tokens, sum with router weights */
  mixtureOfExperts(_layer: number, x: Var, experts: ExpertWeights<Param>): Var {
    const logits = linear(x, experts.router); // [n, nExpert]
    const nExpert = logits.cols, nFF = experts.gate.dims[1];
    const choice: ExpertChoice = { experts: [] };
    const tokensOf: number[][] = Array.from({ length: nExpert }, () => []);
    for (let t = 0; t < x.rows; t++) {
      const { experts: chosen } = routeToExperts(logits.value.subarray(t * nExpert, (t + 1) * nExpert), experts.nUsed, experts.normalizeWeights);
      choice.experts.push(chosen);
      for (const e of chosen) tokensOf[e].push(t);
    }
    const weights = routerWeights(logits, choice, experts.normalizeWeights); // [n, nUsed]
    const outputs = tokensOf.map((tokens, e) => {
      if (tokens.length === 0) return undefined;
      const xe = gatherRows(x, tokens);
      const hidden = swiglu(linear(xe, experts.gate.rowSlice(e * nFF, nFF)), linear(xe, experts.up.rowSlice(e * nFF, nFF)));
      return linear(hidden, experts.down.rowSlice(e * x.cols, x.cols)); // [tokens, dim]
    });
    return combineExperts(weights, choice, tokensOf, outputs, x.cols);
  }

  outputRows(x: Var): Var {
    return x;
  }
}
