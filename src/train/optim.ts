// Optimization: AdamW with decoupled weight decay and bias correction (Loshchilov & Hutter), global-norm gradient
// clipping folded into its step (as llm.c), and a linear-warmup + cosine-decay learning-rate schedule. Gradients
// accumulate in each Param's `grad` across backward passes (gradient accumulation) until `zeroGrad`. The arithmetic
// is the training backend's (sumSquares, adamw: pooled kernels over the params where they live).

import type { OptimizerTensor } from '../kernels/backend.js';
import type { Param } from './autograd.js';
import { allocFloats, trainingBackend } from './backend.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** decoupled: p −= lr · weightDecay · p, applied to matrices only (not to norm weights or biases) */
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** What AdamW carries between steps, for checkpoints. */
export interface AdamWState {
  /** steps taken */
  t: number;
  /** first and second moment estimates, one per param */
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW {
  private state: AdamWState;
  /** each param with its moments, as the backend's optimizer kernels take them */
  private readonly tensors: OptimizerTensor[];

  /** the moments live in the training backend's memory: make the optimizer before a step's mark, as the params */
  constructor(readonly params: readonly Param[], readonly options: AdamWOptions = DEFAULT_ADAMW) {
    this.state = { t: 0, m: params.map((p) => allocFloats(p.value.length)), v: params.map((p) => allocFloats(p.value.length)) };
    this.tensors = params.map((p, i) => ({ value: p.value, grad: p.grad, m: this.state.m[i], v: this.state.v[i], decayed: p.dims.length > 1 }));
  }

  get stepsTaken(): number {
    return this.state.t;
  }

  /**
   * One update with learning rate `lr` from the params' accumulated gradients; with maxNorm > 0 the gradients are
   * first scaled so that their global L2 norm is at most maxNorm. Returns that norm before clipping (0 without).
   */
  step(lr: number, maxNorm = 0): number {
    const { beta1, beta2, eps, weightDecay } = this.options;
    const t = ++this.state.t;
    const kernels = trainingBackend();
    const norm = maxNorm > 0 ? Math.sqrt(kernels.sumSquares(this.tensors)) : 0;
    const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
    kernels.adamw(this.tensors, { lr, beta1, beta2, eps, weightDecay, c1: 1 - Math.pow(beta1, t), c2: 1 - Math.pow(beta2, t), scale });
    return norm;
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad.fill(0);
  }

  saveState(): AdamWState {
    return this.state;
  }

  loadState(state: AdamWState): void {
    const sizes = this.params.map((p) => p.value.length);
    if (state.m.length !== sizes.length || state.m.some((m, i) => m.length !== sizes[i] || state.v[i]?.length !== sizes[i])) {
      throw new RangeError('optimizer state does not match the model parameters');
    }
    // copied into the moments' buffers, which the kernels know
    this.state.t = state.t;
    state.m.forEach((m, i) => this.state.m[i].set(m));
    state.v.forEach((v, i) => this.state.v[i].set(v));
  }
}

export interface Schedule {
  /** peak learning rate */
  lr: number;
  /** final learning rate (end of the cosine) */
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** Learning rate for (0-based) step: linear warmup to lr, then cosine decay to minLr at totalSteps. */
export function learningRate(step: number, s: Schedule): number {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  const progress = Math.min(1, (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps));
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
