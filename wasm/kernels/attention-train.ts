// Causal attention for training, forward and backward side by side: nSeq sequences of S consecutive rows, no KV
// cache. q, out, dq [n, nHeads·hd]; k, v, dk, dv [n, nKvHeads·hd]; probs [nSeq, nHeads, S, S] (the softmax weights,
// kept for the backward pass; the upper triangle is left alone). Threads claim one (sequence, kv head) at a time,
// with every query head of its group, so that no two threads add into the same rows of dk and dv.
// hd must be a multiple of 4.

import { dotF32Plain, expNonPositive } from './attention';
import { madd } from './simd';

/** y[0, hd) += s·x[0, hd) */
@inline function axpy(y: usize, x: usize, s: f32, hd: i32): void {
  const vs = f32x4.splat(s);
  for (let d = 0; d < hd; d += 4) {
    const at = <usize>d << 2;
    v128.store(y + at, madd(vs, v128.load(x + at), v128.load(y + at)));
  }
}

/**
 * P[s, j] = softmax_j≤s(scale · q[s]·k[j]) (e^ as inference's attention computes it), out[s] = Σ_j P[s, j]·v[j],
 * for each claimed (sequence, kv head). out's rows are overwritten.
 */
export function attention_forward(q: usize, k: usize, v: usize, out: usize, probs: usize, nSeq: i32, S: i32, nHeads: i32,
  nKvHeads: i32, hd: i32, scale: f32, counter: usize, scratch: usize): void {
  const group = nHeads / nKvHeads, qRow = <usize>(nHeads * hd) << 2, kRow = <usize>(nKvHeads * hd) << 2, hdBytes = <usize>hd << 2;
  while (true) {
    const job = atomic.add<i32>(counter, 1);
    if (job >= nSeq * nKvHeads) break;
    const b = job / nKvHeads, kvh = job % nKvHeads;
    const kBase = k + <usize>b * S * kRow + <usize>kvh * hdBytes, vBase = v + <usize>b * S * kRow + <usize>kvh * hdBytes;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      const P = probs + ((<usize>(b * nHeads + h) * S * S) << 2);
      for (let s = 0; s < S; s++) {
        const row = P + ((<usize>s * S) << 2);
        const qs = q + <usize>(b * S + s) * qRow + <usize>h * hdBytes;
        let top: f32 = -Infinity;
        for (let j = 0; j <= s; j++) {
          const x = scale * dotF32Plain(qs, kBase + <usize>j * kRow, hd);
          store<f32>(row + (<usize>j << 2), x);
          top = max(top, x);
        }
        let sum: f32 = 0;
        let j = 0;
        for (; j + 4 <= s + 1; j += 4) {
          const e = expNonPositive(f32x4.sub(v128.load(row + (<usize>j << 2)), f32x4.splat(top)));
          v128.store(row + (<usize>j << 2), e);
          sum += f32x4.extract_lane(e, 0) + f32x4.extract_lane(e, 1) + f32x4.extract_lane(e, 2) + f32x4.extract_lane(e, 3);
        }
        for (; j <= s; j++) {
          const e = f32x4.extract_lane(expNonPositive(f32x4.splat(load<f32>(row + (<usize>j << 2)) - top)), 0);
          store<f32>(row + (<usize>j << 2), e);
          sum += e;
        }
        const inv: f32 = 1 / sum;
        const os = out + <usize>(b * S + s) * qRow + <usize>h * hdBytes;
        memory.fill(os, 0, hdBytes);
        for (let j = 0; j <= s; j++) {
          const p = load<f32>(row + (<usize>j << 2)) * inv;
          store<f32>(row + (<usize>j << 2), p);
          axpy(os, vBase + <usize>j * kRow, p, hd);
        }
      }
    }
  }
}

/**
 * The gradients of attention_forward, added into dq, dk, dv from g = d loss / d out:
 * dP = g·vᵀ; dv += Pᵀ·g; dS = scale · P ⊙ (dP − Σ_j P·dP); dq += dS·k; dk += dSᵀ·q.
 * `scratch`: this thread's S floats (a row of dS).
 */
export function attention_backward(g: usize, q: usize, k: usize, v: usize, probs: usize, dq: usize, dk: usize, dv: usize,
  nSeq: i32, S: i32, nHeads: i32, nKvHeads: i32, hd: i32, scale: f32, counter: usize, scratch: usize): void {
  const group = nHeads / nKvHeads, qRow = <usize>(nHeads * hd) << 2, kRow = <usize>(nKvHeads * hd) << 2, hdBytes = <usize>hd << 2;
  const dS = scratch;
  while (true) {
    const job = atomic.add<i32>(counter, 1);
    if (job >= nSeq * nKvHeads) break;
    const b = job / nKvHeads, kvh = job % nKvHeads;
    const kvOffset = <usize>b * S * kRow + <usize>kvh * hdBytes;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      const P = probs + ((<usize>(b * nHeads + h) * S * S) << 2);
      for (let s = 0; s < S; s++) {
        const row = P + ((<usize>s * S) << 2);
        const qOffset = <usize>(b * S + s) * qRow + <usize>h * hdBytes;
        const gs = g + qOffset;
        let dot: f32 = 0;
        for (let j = 0; j <= s; j++) {
          const p = load<f32>(row + (<usize>j << 2));
          const dp = dotF32Plain(gs, v + kvOffset + <usize>j * kRow, hd);
          store<f32>(dS + (<usize>j << 2), dp);
          dot += p * dp;
          axpy(dv + kvOffset + <usize>j * kRow, gs, p, hd);
        }
        const qs = q + qOffset, dqs = dq + qOffset;
        for (let j = 0; j <= s; j++) {
          const ds = scale * load<f32>(row + (<usize>j << 2)) * (load<f32>(dS + (<usize>j << 2)) - dot);
          axpy(dqs, k + kvOffset + <usize>j * kRow, ds, hd);
          axpy(dk + kvOffset + <usize>j * kRow, qs, ds, hd);
        }
      }
    }
  }
}
