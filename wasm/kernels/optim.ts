// Training's optimizer step (as llm.c's adamw kernel): the squared sums of global-norm clipping and AdamW's update,
// over a table of chunks, i32 [grad, value, m, v (byte addresses), count, decayed (1 for matrices)] per chunk, claimed
// from the counter. The arithmetic is the reference backend's (src/kernels/reference-training.ts), lane for lane.

import { promoteHigh } from './elementwise';

const FIELDS = 6;

/**
 * Σ g² of each chunk in f64 into partials[chunk] (f64): values 4i + k summed in lane k (k = 0…3) in order, then
 * (s0 + s2) + (s1 + s3), then the last count % 4 values in order. The caller adds the chunks up in order, so the
 * norm does not depend on which thread took a chunk. (`scratch`: unused.)
 */
export function sum_squares(table: usize, nChunks: i32, partials: usize, counter: usize, scratch: usize): void {
  while (true) {
    const c = atomic.add<i32>(counter, 1);
    if (c >= nChunks) break;
    const entry = table + <usize>(c * FIELDS) * 4;
    const g = <usize>load<u32>(entry), n = load<i32>(entry, 16);
    let low = f64x2.splat(0), high = f64x2.splat(0);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(g + (<usize>i << 2));
      const a = f64x2.promote_low_f32x4(v), b = promoteHigh(v);
      low = f64x2.add(low, f64x2.mul(a, a));
      high = f64x2.add(high, f64x2.mul(b, b));
    }
    const lanes = f64x2.add(low, high);
    let sum = f64x2.extract_lane(lanes, 0) + f64x2.extract_lane(lanes, 1);
    for (; i < n; i++) {
      const v = <f64>load<f32>(g + (<usize>i << 2));
      sum += v * v;
    }
    store<f64>(partials + (<usize>c << 3), sum);
  }
}

/** f32 values p[0], p[1] (or p[0] twice) widened to f64 lanes */
@inline function pairAt(p: usize, two: bool): v128 {
  return f64x2.promote_low_f32x4(two ? v128.load64_zero(p) : v128.load32_splat(p));
}

/** f64 lanes rounded to f32 and widened back (a value stored to and read from f32 memory) */
@inline function roundF32(x: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(x));
}

/** stores lane 0 (and 1) of f64 lanes x, rounded to f32, at p */
@inline function storePair(p: usize, x: v128, two: bool): void {
  const r = f32x4.demote_f64x2_zero(x);
  if (two) v128.store64_lane(p, r, 0);
  else v128.store32_lane(p, r, 0);
}

/**
 * AdamW with bias corrections c1 = 1 − β1^t, c2 = 1 − β2^t and decoupled decay (lr·weightDecay on chunks marked
 * decayed), each gradient first scaled by `scale` (global-norm clipping; 1: none) and rounded to f32:
 * m = β1·m + (1 − β1)·g, v = β2·v + (1 − β2)·g·g (each rounded to f32), w −= lr·(m/c1)/(sqrt(v/c2) + eps) + decay·w,
 * in f64, two values at a time. (`scratch`: unused.)
 */
export function adamw(table: usize, nChunks: i32, lr: f64, beta1: f64, beta2: f64, eps: f64, weightDecay: f64, c1: f64, c2: f64, scale: f64,
  counter: usize, scratch: usize): void {
  const decayed = lr * weightDecay;
  const vb1 = f64x2.splat(beta1), vb2 = f64x2.splat(beta2), va1 = f64x2.splat(1 - beta1), va2 = f64x2.splat(1 - beta2);
  const vlr = f64x2.splat(lr), vc1 = f64x2.splat(c1), vc2 = f64x2.splat(c2), veps = f64x2.splat(eps), vscale = f64x2.splat(scale);
  while (true) {
    const c = atomic.add<i32>(counter, 1);
    if (c >= nChunks) break;
    const entry = table + <usize>(c * FIELDS) * 4;
    const g = <usize>load<u32>(entry), w = <usize>load<u32>(entry, 4), m = <usize>load<u32>(entry, 8), v = <usize>load<u32>(entry, 12);
    const n = load<i32>(entry, 16), decay = f64x2.splat(load<i32>(entry, 20) != 0 ? decayed : 0);
    for (let i = 0; i < n; i += 2) {
      // two values a step; an odd last value is computed in both lanes
      const at = <usize>i << 2, two = i + 1 < n;
      const gs = roundF32(f64x2.mul(pairAt(g + at, two), vscale));
      const m1 = f64x2.add(f64x2.mul(vb1, pairAt(m + at, two)), f64x2.mul(va1, gs));
      const v1 = f64x2.add(f64x2.mul(vb2, pairAt(v + at, two)), f64x2.mul(f64x2.mul(va2, gs), gs));
      const mr = roundF32(m1), vr = roundF32(v1), wv = pairAt(w + at, two);
      const step = f64x2.div(f64x2.mul(vlr, f64x2.div(mr, vc1)), f64x2.add(f64x2.sqrt(f64x2.div(vr, vc2)), veps));
      storePair(w + at, f64x2.sub(wv, f64x2.add(step, f64x2.mul(decay, wv))), two);
      storePair(m + at, m1, two);
      storePair(v + at, v1, two);
    }
  }
}
