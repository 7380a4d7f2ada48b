// Optimization: AdamW with decoupled weight decay and bias correction (Loshchilov & Hutter), global-norm gradient
// clipping, and a linear-warmup + cosine-decay learning-rate schedule. Gradients accumulate in each Param's `grad`
// across backward passes (gradient accumulation) until `zeroGrad`.

import type { Param } from './autograd.js';

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

  constructor(readonly params: readonly Param[], readonly options: AdamWOptions = DEFAULT_ADAMW) {
    this.state = {
      t: 0,
      m: params.map((p) => new Float32Array(p.value.length)),
      v: params.map((p) => new Float32Array(p.value.length)),
    };
  }

  get stepsTaken(): number {
    return this.state.t;
  }

  /** One update with learning rate `lr` from the params' accumulated gradients. */
  step(lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    const t = ++this.state.t;
    const c1 = 1 - Math.pow(beta1, t), c2 = 1 - Math.pow(beta2, t); // bias corrections
    this.params.forEach((p, i) => {
      const m = this.state.m[i], v = this.state.v[i], g = p.grad, w = p.value;
      const decay = p.dims.length > 1 ? lr * weightDecay : 0;
      for (let j = 0; j < w.length; j++) {
        m[j] = beta1 * m[j] + (1 - beta1) * g[j];
        v[j] = beta2 * v[j] + (1 - beta2) * g[j] * g[j];
        // w ← w − lr · (m̂ / (sqrt(v̂) + eps)) − lr · λ · w
        w[j] -= lr * (m[j] / c1) / (Math.sqrt(v[j] / c2) + eps) + decay * w[j];
      }
    });
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
    this.state = state;
  }
}

/** Scales all gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: readonly Param[], maxNorm: number): number {
  let sumSq = 0;
  for (const p of params) {
    const g = p.grad;
    for (let j = 0; j < g.length; j++) sumSq += g[j] * g[j];
  }
  const norm = Math.sqrt(sumSq);
  if (norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const p of params) for (let j = 0; j < p.grad.length; j++) p.grad[j] *= scale;
  }
  return norm;
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
