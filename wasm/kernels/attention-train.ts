// Causal attention for training, forward and backward side by side: nSeq sequences of S consecutive rows, no KV
// cache. q, out, dq [n, nHeads·hd]; k, v, dk, dv [n, nKvHeads·hd]; probs [nSeq, nHeads, S, S] (the softmax weights,
// kept for the backward pass; the upper triangle is left alone). Threads claim one (sequence, kv head) at a time,
// with every query head of its group, so that no two threads add into the same rows of dk and dv.
// hd must be a multiple of 4. Sums of rows weighted by coefficients keep 16 columns of the sum in registers while the
// rows stream by (weightedRows); scores are four dot products at a time (dots4).

import { dotF32Plain, expNonPositive } from './attention';
import { madd } from './simd';

/** Σ_d a[d]·b_i[d] for the four rows b_i = b + i·bStride, as lanes 0…3 */
@inline function dots4(a: usize, b: usize, bStride: usize, hd: i32): v128 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let d = 0; d < hd; d += 4) {
    const at = <usize>d << 2, av = v128.load(a + at);
    s0 = madd(av, v128.load(b + at), s0);
    s1 = madd(av, v128.load(b + bStride + at), s1);
    s2 = madd(av, v128.load(b + 2 * bStride + at), s2);
    s3 = madd(av, v128.load(b + 3 * bStride + at), s3);
  }
  // transpose-add: lane i = Σ of s_i's lanes
  const t0 = f32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
  const t1 = f32x4.add(i32x4.shuffle(s2, s3, 0, 4, 1, 5), i32x4.shuffle(s2, s3, 2, 6, 3, 7));
  return f32x4.add(i64x2.shuffle(t0, t1, 0, 2), i64x2.shuffle(t0, t1, 1, 3));
}

/** scores[j] = scale · a·b_j for j in [0, count), b_j = b + j·bStride */
@inline function scoreRow(scores: usize, a: usize, b: usize, bStride: usize, count: i32, hd: i32, scale: f32): void {
  let j = 0;
  for (; j + 4 <= count; j += 4) v128.store(scores + (<usize>j << 2), f32x4.mul(dots4(a, b + <usize>j * bStride, bStride, hd), f32x4.splat(scale)));
  for (; j < count; j++) store<f32>(scores + (<usize>j << 2), scale * dotF32Plain(a, b + <usize>j * bStride, hd));
}

/**
 * dst[0, hd) (+)= Σ_{j in [j0, j1)} coef[j·coefStride]·rows[j·rowStride + (0, hd)]: 16 columns at a time in registers
 * (then 4), adding to dst when `accumulate`.
 */
@inline function weightedRows(dst: usize, coef: usize, coefStride: usize, rows: usize, rowStride: usize, j0: i32, j1: i32, hd: i32, accumulate: bool): void {
  let d = 0;
  for (; d + 16 <= hd; d += 16) {
    const at = <usize>d << 2;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    if (accumulate) {
      a0 = v128.load(dst + at); a1 = v128.load(dst + at, 16); a2 = v128.load(dst + at, 32); a3 = v128.load(dst + at, 48);
    }
    for (let j = j0; j < j1; j++) {
      const c = v128.load32_splat(coef + <usize>j * coefStride), r = rows + <usize>j * rowStride + at;
      a0 = madd(c, v128.load(r), a0); a1 = madd(c, v128.load(r, 16), a1);
      a2 = madd(c, v128.load(r, 32), a2); a3 = madd(c, v128.load(r, 48), a3);
    }
    v128.store(dst + at, a0); v128.store(dst + at, a1, 16); v128.store(dst + at, a2, 32); v128.store(dst + at, a3, 48);
  }
  for (; d < hd; d += 4) {
    const at = <usize>d << 2;
    let a = accumulate ? v128.load(dst + at) : f32x4.splat(0);
    for (let j = j0; j < j1; j++) a = madd(v128.load32_splat(coef + <usize>j * coefStride), v128.load(rows + <usize>j * rowStride + at), a);
    v128.store(dst + at, a);
  }
}

/**
 * P[s, j] = softmax_j≤s(scale · q[s]·k[j]) (e^ as inference's attention computes it), out[s] = Σ_j P[s, j]·v[j],
 * for each claimed (sequence, kv head). out's rows are overwritten.
 */
export function attention_forward(q: usize, k: usize, v: usize, out: usize, probs: usize, nSeq: i32, S: i32, nHeads: i32,
  nKvHeads: i32, hd: i32, scale: f32, counter: usize, scratch: usize): void {
  const group = nHeads / nKvHeads, qRow = <usize>(nHeads * hd) << 2, kRow = <usize>(nKvHeads * hd) << 2, hdBytes = <usize>hd << 2;
  for (let job = atomic.add<i32>(counter, 1); job < nSeq * nKvHeads; job = atomic.add<i32>(counter, 1)) {
    // sequence b, kv head kvh: its rows of k and v start at kvOffset; query head h's weights at P
    const b = job / nKvHeads, kvh = job % nKvHeads, kvOffset = <usize>b * S * kRow + <usize>kvh * hdBytes;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      const P = probs + ((<usize>(b * nHeads + h) * S * S) << 2);
      for (let s = 0; s < S; s++) {
        const row = P + ((<usize>s * S) << 2);
        const qOffset = <usize>(b * S + s) * qRow + <usize>h * hdBytes;
        scoreRow(row, q + qOffset, k + kvOffset, kRow, s + 1, hd, scale);
        let top: f32 = -Infinity;
        for (let j = 0; j <= s; j++) top = max(top, load<f32>(row + (<usize>j << 2)));
        let sums = f32x4.splat(0);
        let j = 0;
        for (; j + 4 <= s + 1; j += 4) {
          const e = expNonPositive(f32x4.sub(v128.load(row + (<usize>j << 2)), f32x4.splat(top)));
          v128.store(row + (<usize>j << 2), e);
          sums = f32x4.add(sums, e);
        }
        let sum = f32x4.extract_lane(sums, 0) + f32x4.extract_lane(sums, 1) + f32x4.extract_lane(sums, 2) + f32x4.extract_lane(sums, 3);
        for (; j <= s; j++) {
          const e = f32x4.extract_lane(expNonPositive(f32x4.splat(load<f32>(row + (<usize>j << 2)) - top)), 0);
          store<f32>(row + (<usize>j << 2), e);
          sum += e;
        }
        const inv = f32x4.splat(<f32>1 / sum);
        for (j = 0; j + 4 <= s + 1; j += 4) v128.store(row + (<usize>j << 2), f32x4.mul(v128.load(row + (<usize>j << 2)), inv));
        for (; j <= s; j++) store<f32>(row + (<usize>j << 2), load<f32>(row + (<usize>j << 2)) * f32x4.extract_lane(inv, 0));
        weightedRows(out + qOffset, row, 4, v + kvOffset, kRow, 0, s + 1, hd, false);
      }
    }
  }
}

/**
 * The gradients of attention_forward, added into dq, dk, dv from g = d loss / d out: per row s, dP = g·vᵀ and
 * dS = scale · P ⊙ (dP − Σ_j P·dP), dq[s] += Σ_j dS[s, j]·k[j]; then per key row j, dv[j] += Σ_s P[s, j]·g[s] and
 * dk[j] += Σ_s dS[s, j]·q[s]. `scratch`: this thread's S·S floats (a head's dS).
 */
export function attention_backward(g: usize, q: usize, k: usize, v: usize, probs: usize, dq: usize, dk: usize, dv: usize,
  nSeq: i32, S: i32, nHeads: i32, nKvHeads: i32, hd: i32, scale: f32, counter: usize, scratch: usize): void {
  const group = nHeads / nKvHeads, qRow = <usize>(nHeads * hd) << 2, kRow = <usize>(nKvHeads * hd) << 2, hdBytes = <usize>hd << 2;
  const dS = scratch, sRow = <usize>S << 2;
  for (let job = atomic.add<i32>(counter, 1); job < nSeq * nKvHeads; job = atomic.add<i32>(counter, 1)) {
    // sequence b, kv head kvh: its rows of k and v start at kvOffset; query head h's weights at P
    const b = job / nKvHeads, kvh = job % nKvHeads, kvOffset = <usize>b * S * kRow + <usize>kvh * hdBytes;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      const P = probs + ((<usize>(b * nHeads + h) * S * S) << 2);
      const qBase = <usize>b * S * qRow + <usize>h * hdBytes;
      for (let s = 0; s < S; s++) {
        const row = P + <usize>s * sRow, dRow = dS + <usize>s * sRow, qOffset = qBase + <usize>s * qRow;
        scoreRow(dRow, g + qOffset, v + kvOffset, kRow, s + 1, hd, 1);
        let sum: f32 = 0;
        for (let j = 0; j <= s; j++) sum += load<f32>(row + (<usize>j << 2)) * load<f32>(dRow + (<usize>j << 2));
        for (let j = 0; j <= s; j++) {
          const at = <usize>j << 2;
          store<f32>(dRow + at, scale * load<f32>(row + at) * (load<f32>(dRow + at) - sum));
        }
        weightedRows(dq + qOffset, dRow, 4, k + kvOffset, kRow, 0, s + 1, hd, true);
      }
      for (let j = 0; j < S; j++) {
        const kvj = kvOffset + <usize>j * kRow, column = <usize>j << 2;
        weightedRows(dv + kvj, P + column, sRow, g + qBase, qRow, j, S, hd, true);
        weightedRows(dk + kvj, dS + column, sRow, q + qBase, qRow, j, S, hd, true);
      }
    }
  }
}
