// ModelOps for training: activations are autograd Vars, weights are trainable Params, and the batch is nSeq
// sequences of seqLen tokens laid out one after another (row b·seqLen + s is token s of sequence b, at position s).
// Attention is causal within each sequence; there is no KV cache, and every row's logits are wanted.

import type { AttentionShape, RopeParams } from '../kernels/backend.js';
import type { AttentionMask, ExpertWeights, LatentAttentionShape, ModelOps } from '../models/ops.js';
import { routeToExperts } from '../models/ops.js';
import {
  add, attention, columns, combineExperts, embedding, gatherRows, gelu, layernorm, linear, rmsnorm, rope, routerWeights,
  scale, softcap, swiglu, type ExpertChoice, type Param, type Var,
} from './autograd.js';

/** A forward pass asked training for an op it does not differentiate yet. */
export class UnsupportedTrainingOpError extends Error {
  constructor(what: string) {
    super(`training does not support ${what} yet (kiln trains llama-family models)`);
    this.name = 'UnsupportedTrainingOpError';
  }
}
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

  embed(table: Param, rows: 'tokens' | 'positions' | number = 'tokens'): Var {
    const ids = rows === 'tokens' ? this.tokens : rows === 'positions' ? this.positions : new Int32Array(this.tokens.length).fill(rows);
    return embedding(table, ids);
  }

  linear(x: Var, w: Param, bias?: Param): Var {
    return linear(x, w, bias);
  }

  linears(x: Var, ws: readonly Param[], biases?: readonly (Param | undefined)[]): Var[] {
    return ws.map((w, i) => this.linear(x, w, biases?.[i]));
  }

  linearSplit(x: Var, w: Param, widths: readonly number[], bias?: Param): Var[] {
    const y = linear(x, w, bias);
    let start = 0;
    return widths.map((width) => columns(y, (start += width) - width, width));
  }

  columns(x: Var, start: number, width: number): Var {
    return columns(x, start, width);
  }

  rmsnorm(x: Var, weight: Param, eps: number): Var {
    return rmsnorm(x, weight, eps);
  }

  layernorm(x: Var, weight: Param, bias: Param, eps: number): Var {
    return layernorm(x, weight, bias, eps);
  }

  rope(x: Var, nHeads: number, headDim: number, params: RopeParams): Var {
    let angles = this.angles.get(params);
    if (!angles) this.angles.set(params, (angles = ropeAngles(this.positions, params)));
    return rope(x, nHeads, headDim, angles, params);
  }

  attention(_layer: number, q: Var, k: Var, v: Var, shape: AttentionShape, mask: AttentionMask = { kind: 'causal' }): Var {
    if (mask.kind !== 'causal') throw new UnsupportedTrainingOpError(`${mask.kind} attention`);
    if (shape.softcap !== undefined) throw new UnsupportedTrainingOpError('soft-capped attention');
    if ((shape.valueDim ?? shape.headDim) !== shape.headDim) throw new UnsupportedTrainingOpError('values narrower than keys');
    return attention(q, k, v, shape, this.nSeq, this.seqLen);
  }

  latentAttention(_layer: number, _q: Var, _latent: Var, _kRope: Var, _kvB: Param, _shape: LatentAttentionShape): Var {
    throw new UnsupportedTrainingOpError('multi-head latent attention');
  }

  swiglu(gate: Var, up: Var): Var {
    return swiglu(gate, up);
  }

  geglu(gate: Var, up: Var): Var {
    return gelu(gate, up);
  }

  gelu(x: Var): Var {
    return gelu(x);
  }

  softcap(x: Var, cap: number): Var {
    return softcap(x, cap);
  }

  scale(x: Var, s: number): Var {
    return scale(x, s);
  }

  add(a: Var, b: Var): Var {
    return add(a, b);
  }

  /** route each token (no gradient through the choice), run every expert on its tokens, sum with router weights */
  mixtureOfExperts(_layer: number, x: Var, experts: ExpertWeights<Param>): Var {
    if ((experts.weightScale ?? 1) !== 1) throw new UnsupportedTrainingOpError('scaled expert weights');
    const logits = linear(x, experts.router); // [n, nExpert]
    const nExpert = logits.cols, nFF = experts.gate.dims[1];
    const choice: ExpertChoice = { experts: [] };
    const tokensOf: number[][] = Array.from({ length: nExpert }, () => []);
    for (let t = 0; t < x.rows; t++) {
      const { experts: chosen } = routeToExperts(logits.value.subarray(t * nExpert, (t + 1) * nExpert), experts.nUsed, experts.normalizeWeights, experts.weightScale);
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

  endLayer(x: Var): Var {
    return x; // the tape needs every activation for the backward pass
  }
}
