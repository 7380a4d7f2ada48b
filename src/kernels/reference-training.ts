// The reference backend's training kernels (backend.ts TrainingBackend): plain TypeScript, the oracle the WASM
// training kernels are checked against. Memory is ordinary Float32Arrays (the garbage collector frees them).

import { OPTIMIZER_CHUNK, type AdamWStep, type AttentionShape, type OptimizerTensor, type RopeParams, type TrainingBackend } from './backend.js';
import { expF64, ReferenceBackend } from './reference.js';
import type { RopeAngles } from './rope.js';
import { rmsScale } from './formulas.js';

/** angles with sin negated: the rotation by −θ */
const reversed = new WeakMap<RopeAngles, RopeAngles>();

export class ReferenceTrainingBackend extends ReferenceBackend implements TrainingBackend {
  allocFloats(n: number): Float32Array {
    return new Float32Array(n);
  }

  floatsMark(): number {
    return 0;
  }

  releaseFloats(): void {}

  gemm(c: Float32Array, a: Float32Array, b: Float32Array, m: number, n: number, k: number, transA: boolean, transB: boolean, accumulate: boolean): void {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[transA ? p * m + i : i * k + p] * b[transB ? j * k + p : p * n + j];
        c[i * n + j] = Math.fround((accumulate ? c[i * n + j] : 0) + sum);
      }
    }
  }

  rmsnormBackward(dx: Float32Array, dweight: Float32Array, g: Float32Array, x: Float32Array, weight: Float32Array, nTokens: number, dim: number, eps: number): void {
    for (let t = 0; t < nTokens; t++) {
      const o = t * dim, r = rmsScale(x, o, dim, eps);
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += g[o + i] * weight[i] * x[o + i];
      const k = (r * r * r * dot) / dim;
      for (let i = 0; i < dim; i++) {
        dx[o + i] += r * g[o + i] * weight[i] - k * x[o + i];
        dweight[i] += g[o + i] * x[o + i] * r;
      }
    }
  }

  ropeBackward(dx: Float32Array, g: Float32Array, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles, p: RopeParams): void {
    let back = reversed.get(angles);
    if (!back) reversed.set(angles, (back = { cos: angles.cos, sin: angles.sin.map((v) => -v) }));
    const n = nTokens * nHeads * headDim, rotated = g.slice(0, n);
    this.rope(rotated, nTokens, nHeads, headDim, back, p);
    this.addInPlace(dx, rotated, n);
  }

  sumSquares(tensors: OptimizerTensor[]): number {
    let total = 0;
    for (const { grad } of tensors) {
      for (let start = 0; start < grad.length; start += OPTIMIZER_CHUNK) {
        const end = Math.min(grad.length, start + OPTIMIZER_CHUNK), lanes = [0, 0, 0, 0];
        let i = start;
        for (; i + 4 <= end; i += 4) for (let k = 0; k < 4; k++) lanes[k] += grad[i + k] * grad[i + k];
        let sum = lanes[0] + lanes[2] + (lanes[1] + lanes[3]);
        for (; i < end; i++) sum += grad[i] * grad[i];
        total += sum;
      }
    }
    return total;
  }

  adamw(tensors: OptimizerTensor[], { lr, beta1, beta2, eps, weightDecay, c1, c2, scale }: AdamWStep): void {
    const g = new Float32Array(1);
    for (const { value: w, grad, m, v, decayed } of tensors) {
      const decay = decayed ? lr * weightDecay : 0;
      for (let j = 0; j < w.length; j++) {
        g[0] = grad[j] * scale;
        m[j] = beta1 * m[j] + (1 - beta1) * g[0];
        v[j] = beta2 * v[j] + (1 - beta2) * g[0] * g[0];
        w[j] -= (lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + eps) + decay * w[j];
      }
    }
  }

  crossEntropyForward(logits: Float32Array, targets: Int32Array, rows: number, cols: number, probs: Float64Array): void {
    for (let r = 0; r < rows; r++) {
      if (targets[r] < 0) continue;
      const x = logits.subarray(r * cols, (r + 1) * cols), p = probs.subarray(r * cols, (r + 1) * cols);
      let m = -Infinity;
      for (let c = 0; c < cols; c++) m = Math.max(m, x[c]);
      let even = 0, odd = 0, c = 0;
      for (; c + 2 <= cols; c += 2) {
        even += p[c] = expF64(x[c] - m);
        odd += p[c + 1] = expF64(x[c + 1] - m);
      }
      let s = even + odd;
      if (c < cols) s += (p[c] = expF64(x[c] - m));
      for (c = 0; c < cols; c++) p[c] /= s;
    }
  }

  crossEntropyBackward(dlogits: Float32Array, probs: Float64Array, targets: Int32Array, rows: number, cols: number, k: number): void {
    for (let r = 0; r < rows; r++) {
      const t = targets[r], at = r * cols;
      if (t < 0) continue;
      for (let c = 0; c < cols; c++) dlogits[at + c] += k * probs[at + c];
      dlogits[at + t] -= k;
    }
  }

  swigluBackward(dgate: Float32Array, dup: Float32Array, g: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      const x = gate[i], sig = 1 / (1 + expF64(-x));
      dgate[i] += g[i] * up[i] * sig * (1 + x * (1 - sig));
      dup[i] += g[i] * x * sig;
    }
  }

  attentionForward(out: Float32Array, probs: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, nSeq: number, S: number, shape: AttentionShape): void {
    const { nHeads, nKvHeads, headDim: hd, scale } = shape;
    const qw = nHeads * hd, kw = nKvHeads * hd, group = nHeads / nKvHeads;
    for (let b = 0; b < nSeq; b++) {
      for (let h = 0; h < nHeads; h++) {
        const kCol = Math.floor(h / group) * hd, P = (b * nHeads + h) * S * S;
        for (let s = 0; s < S; s++) {
          const row = P + s * S, qs = (b * S + s) * qw + h * hd;
          let max = -Infinity;
          for (let j = 0; j <= s; j++) {
            const kj = (b * S + j) * kw + kCol;
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += q[qs + d] * k[kj + d];
            max = Math.max(max, (probs[row + j] = Math.fround(dot) * scale));
          }
          let sum = 0;
          for (let j = 0; j <= s; j++) sum += probs[row + j] = Math.exp(probs[row + j] - max);
          for (let j = 0; j <= s; j++) probs[row + j] /= sum;
          for (let d = 0; d < hd; d++) {
            let acc = 0;
            for (let j = 0; j <= s; j++) acc += probs[row + j] * v[(b * S + j) * kw + kCol + d];
            out[qs + d] = acc;
          }
        }
      }
    }
  }

  attentionBackward(dq: Float32Array, dk: Float32Array, dv: Float32Array, g: Float32Array, probs: Float32Array, q: Float32Array,
    k: Float32Array, v: Float32Array, nSeq: number, S: number, shape: AttentionShape): void {
    const { nHeads, nKvHeads, headDim: hd, scale } = shape;
    const qw = nHeads * hd, kw = nKvHeads * hd, group = nHeads / nKvHeads;
    const dP = new Float64Array(S);
    for (let b = 0; b < nSeq; b++) {
      for (let h = 0; h < nHeads; h++) {
        const kCol = Math.floor(h / group) * hd, P = (b * nHeads + h) * S * S;
        for (let s = 0; s < S; s++) {
          const row = P + s * S, qs = (b * S + s) * qw + h * hd;
          let dot = 0;
          for (let j = 0; j <= s; j++) {
            const kj = (b * S + j) * kw + kCol;
            let dp = 0;
            for (let d = 0; d < hd; d++) {
              dp += g[qs + d] * v[kj + d];
              dv[kj + d] += probs[row + j] * g[qs + d];
            }
            dP[j] = dp;
            dot += probs[row + j] * dp;
          }
          for (let j = 0; j <= s; j++) {
            const kj = (b * S + j) * kw + kCol, ds = scale * probs[row + j] * (dP[j] - dot);
            for (let d = 0; d < hd; d++) {
              dq[qs + d] += ds * k[kj + d];
              dk[kj + d] += ds * q[qs + d];
            }
          }
        }
      }
    }
  }
}
