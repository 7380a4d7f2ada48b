// Element-wise ops (swiglu, gelu, geglu, softcap, scale, add) and the f64 exp/tanh they share with attention.

import { GELU_TABLE } from './common';

// ---- element-wise ---------------------------------------------------------------------------------------------

// e^t in f64 lanes, step for step as the reference backend's expF64 (src/kernels/reference.ts), so both give the same
// bits: t clamped to [−708, 709]; n = round(t·log2 e) by the 1.5·2^52 trick; r = t − n·ln2 in two parts (n·LN2_HI is
// exact); e^r by its degree-12 Taylor polynomial (|r| ≤ 0.35: truncation below 2e−16 relative), evaluated by
// Estrin's scheme; times 2^n built in the exponent bits.
const EXP_ROUND: f64 = 6755399441055744; // 1.5·2^52
const LOG2E: f64 = 1.4426950408889634;
const LN2_HI: f64 = 0.6931471803691238; // ln 2 to 32 bits
const LN2_LO: f64 = 1.9082149292705877e-10; // ln 2 − LN2_HI

@inline export function expF64x2(t: v128): v128 {
  t = f64x2.pmin(f64x2.pmax(t, f64x2.splat(-708)), f64x2.splat(709)); // NaN stays NaN
  const z = f64x2.add(f64x2.mul(t, f64x2.splat(LOG2E)), f64x2.splat(EXP_ROUND));
  const n = f64x2.sub(z, f64x2.splat(EXP_ROUND));
  const r = f64x2.sub(f64x2.sub(t, f64x2.mul(n, f64x2.splat(LN2_HI))), f64x2.mul(n, f64x2.splat(LN2_LO)));
  // Σ r^k/k!, k = 0 … 12, by Estrin's scheme (pairs, then powers r², r⁴, r⁸): a short dependency chain
  const r2 = f64x2.mul(r, r), r4 = f64x2.mul(r2, r2), r8 = f64x2.mul(r4, r4);
  const q0 = f64x2.add(f64x2.splat(1), r); // 1/0! + r/1!
  const q1 = f64x2.add(f64x2.splat(0.5), f64x2.mul(r, f64x2.splat(1.0 / 6)));
  const q2 = f64x2.add(f64x2.splat(1.0 / 24), f64x2.mul(r, f64x2.splat(1.0 / 120)));
  const q3 = f64x2.add(f64x2.splat(1.0 / 720), f64x2.mul(r, f64x2.splat(1.0 / 5040)));
  const q4 = f64x2.add(f64x2.splat(1.0 / 40320), f64x2.mul(r, f64x2.splat(1.0 / 362880)));
  const q5 = f64x2.add(f64x2.splat(1.0 / 3628800), f64x2.mul(r, f64x2.splat(1.0 / 39916800)));
  const s0 = f64x2.add(q0, f64x2.mul(q1, r2)), s1 = f64x2.add(q2, f64x2.mul(q3, r2));
  const s2 = f64x2.add(q4, f64x2.mul(q5, r2));
  const u0 = f64x2.add(s0, f64x2.mul(s1, r4));
  const u1 = f64x2.add(s2, f64x2.mul(f64x2.splat(1.0 / 479001600), r4));
  const p = f64x2.add(u0, f64x2.mul(u1, r8));
  // z's low mantissa bits hold n: shifted into the exponent field and added to 1.0's bits, they make 2^n
  return f64x2.mul(p, i64x2.add(i64x2.shl(z, 52), i64x2.splat(0x3ff0000000000000)));
}

/**
 * tanh(y) in f64 lanes: (1 − e^−2|y|) / (1 + e^−2|y|) with y's sign; below |y| = 1/64, where 1 − e^−2|y| would
 * cancel, its Taylor polynomial y − y³/3 + 2y⁵/15 − 17y⁷/315 (truncation below 1e-16 relative). Relative error about
 * 1e-14 at worst (near 1/64), far below an f32 step: rounded to f32 it is the correctly rounded tanh nearly always.
 */
@inline function tanhF64x2(y: v128): v128 {
  const a = f64x2.abs(y);
  const e = expF64x2(f64x2.mul(a, f64x2.splat(-2)));
  const large = f64x2.div(f64x2.sub(f64x2.splat(1), e), f64x2.add(f64x2.splat(1), e));
  const a2 = f64x2.mul(a, a);
  let p = f64x2.add(f64x2.splat(2.0 / 15), f64x2.mul(a2, f64x2.splat(-17.0 / 315)));
  p = f64x2.add(f64x2.splat(-1.0 / 3), f64x2.mul(a2, p));
  const small = f64x2.add(a, f64x2.mul(f64x2.mul(a, a2), p));
  return v128.or(v128.bitselect(small, large, f64x2.lt(a, f64x2.splat(1.0 / 64))), v128.and(y, i64x2.splat(0x8000000000000000)));
}

/** f32 lanes 2, 3 of v widened to f64 (lanes 0, 1: f64x2.promote_low_f32x4). */
@inline export function promoteHigh(v: v128): v128 {
  return f64x2.promote_low_f32x4(i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
}

/** Four f32 lanes from two f64x2 (low: lanes 0, 1; high: lanes 2, 3), each rounded once. */
@inline export function demotePairs(low: v128, high: v128): v128 {
  return i8x16.shuffle(f32x4.demote_f64x2_zero(low), f32x4.demote_f64x2_zero(high), 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
}

/** c·tanh(x/c) in four f32 lanes, in ggml's steps: x·(1/c) in f32, tanh rounded to f32, times c in f32. */
@inline function softcapF32x4(x: v128, inverse: f32, cap: f32): v128 {
  const y = f32x4.mul(x, f32x4.splat(inverse));
  return f32x4.mul(demotePairs(tanhF64x2(f64x2.promote_low_f32x4(y)), tanhF64x2(promoteHigh(y))), f32x4.splat(cap));
}

/** The f16 patterns nearest to four f32 values (ties to even, as toF16: overflow to ±inf, NaN to ±0x7e00), in i32 lanes. */
@inline function toF16x4(x: v128): v128 {
  const magnitude = v128.and(x, i32x4.splat(0x7fffffff));
  const rebiased = i32x4.sub(magnitude, i32x4.splat(0x38000000));
  const normal = i32x4.shr_u(i32x4.add(rebiased, i32x4.add(i32x4.splat(0xfff), v128.and(i32x4.shr_u(rebiased, 13), i32x4.splat(1)))), 13);
  // below 2^−14: a subnormal, round(|x|·2^24)
  const subnormal = i32x4.trunc_sat_f32x4_u(f32x4.nearest(f32x4.mul(magnitude, f32x4.splat(16777216))));
  let h = v128.bitselect(subnormal, normal, i32x4.lt_s(magnitude, i32x4.splat(0x38800000)));
  h = v128.bitselect(i32x4.splat(0x7c00), h, i32x4.ge_s(magnitude, i32x4.splat(0x477ff000)));
  h = v128.bitselect(i32x4.splat(0x7e00), h, i32x4.gt_s(magnitude, i32x4.splat(0x7f800000)));
  return v128.or(h, v128.and(i32x4.shr_u(x, 16), i32x4.splat(0x8000)));
}

/** gelu as llama.cpp's CPU evaluates it (formulas.ts gelu): 0 at or below −10, x at or above 10, else GELU_TABLE at x's f16 pattern. */
@inline function geluF32x4(x: v128): v128 {
  const h = i32x4.shl(toF16x4(x), 2);
  let g = v128.load32_zero(GELU_TABLE + <usize>i32x4.extract_lane(h, 0));
  g = v128.load32_lane(GELU_TABLE + <usize>i32x4.extract_lane(h, 1), g, 1);
  g = v128.load32_lane(GELU_TABLE + <usize>i32x4.extract_lane(h, 2), g, 2);
  g = v128.load32_lane(GELU_TABLE + <usize>i32x4.extract_lane(h, 3), g, 3);
  return v128.andnot(v128.bitselect(x, g, f32x4.ge(x, f32x4.splat(10))), f32x4.le(x, f32x4.splat(-10)));
}

/** silu(g)·u = g / (1 + e^−g) · u in f64 lanes. */
@inline function swigluF64x2(g: v128, u: v128): v128 {
  return f64x2.mul(f64x2.div(g, f64x2.add(f64x2.splat(1), expF64x2(f64x2.neg(g)))), u);
}

/** swiglu of four f32 lanes: silu(g)·u in f64, rounded once to f32. */
@inline function swigluF32x4(g: v128, u: v128): v128 {
  return demotePairs(swigluF64x2(f64x2.promote_low_f32x4(g), f64x2.promote_low_f32x4(u)), swigluF64x2(promoteHigh(g), promoteHigh(u)));
}

// the element-wise ops of `elementwise`: out = swiglu(x, y), gelu(x), gelu(x)·y, c·tanh(x/c) (a = 1/c, b = c), a·x,
// x + y (training's residual adds and gradient accumulations), 0 (training's gradient buffers)
const SWIGLU = 0, GELU = 1, GEGLU = 2, SOFTCAP = 3, SCALE = 4, ADD = 5, ZERO = 6;

@inline function opF32x4(op: i32, x: v128, y: v128, a: f32, b: f32): v128 {
  switch (op) {
    case SWIGLU: return swigluF32x4(x, y);
    case GELU: return geluF32x4(x);
    case GEGLU: return f32x4.mul(geluF32x4(x), y);
    case SOFTCAP: return softcapF32x4(x, a, b);
    case ADD: return f32x4.add(x, y);
    default: return f32x4.mul(x, f32x4.splat(a));
  }
}

/** out[i] = op(x[i], y[i]) for i0 ≤ i < i1: four values at a time, the last ones one by one. */
@inline function opValues(op: i32, x: usize, y: usize, out: usize, i0: i32, i1: i32, a: f32, b: f32): void {
  const binary = op == SWIGLU || op == GEGLU || op == ADD;
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const at = <usize>i << 2;
    v128.store(out + at, opF32x4(op, v128.load(x + at), binary ? v128.load(y + at) : f32x4.splat(0), a, b));
  }
  for (; i < i1; i++) {
    const at = <usize>i << 2;
    v128.store32_lane(out + at, opF32x4(op, v128.load32_zero(x + at), binary ? v128.load32_zero(y + at) : f32x4.splat(0), a, b), 0);
  }
}

/**
 * out[i] = op(x[i], y[i]) (the ops above; y only for SWIGLU, GEGLU and ADD, neither for ZERO) for chunks of `chunk` values
 * claimed from the counter. (`scratch`: the pooled kernels' per-thread area, unused.)
 */
export function elementwise(op: i32, x: usize, y: usize, out: usize, n: i32, a: f32, b: f32, counter: usize, chunk: i32, scratch: usize): void {
  while (true) {
    const i0 = atomic.add<i32>(counter, chunk);
    if (i0 >= n) break;
    const i1 = min(n, i0 + chunk);
    switch (op) {
      case SWIGLU: opValues(SWIGLU, x, y, out, i0, i1, a, b); break;
      case GELU: opValues(GELU, x, y, out, i0, i1, a, b); break;
      case GEGLU: opValues(GEGLU, x, y, out, i0, i1, a, b); break;
      case SOFTCAP: opValues(SOFTCAP, x, y, out, i0, i1, a, b); break;
      case ADD: opValues(ADD, x, y, out, i0, i1, a, b); break;
      case ZERO: memory.fill(out + (<usize>i0 << 2), 0, <usize>(i1 - i0) << 2); break;
      default: opValues(SCALE, x, y, out, i0, i1, a, b); break;
    }
  }
}

// what rowSumsPair adds up: x² in f64 (rmsnorm), x, or (x − mean)² with the difference and its square rounded to f32 (layernorm)

/** f32 values p[0], p[1] (or p[0] twice) widened to f64 lanes */
@inline export function pairAt(p: usize, two: bool): v128 {
  return f64x2.promote_low_f32x4(two ? v128.load64_zero(p) : v128.load32_splat(p));
}

/**
 * Gradients of out = silu(gate)·up, added: dgate += g·up·σ·(1 + gate·(1 − σ)), dup += g·silu(gate), σ = σ(gate) in
 * f64 (the forward's e^), each rounded once to f32; chunks of `chunk` values claimed from the counter.
 */
export function swiglu_backward(g: usize, gate: usize, up: usize, dgate: usize, dup: usize, n: i32, counter: usize, chunk: i32, scratch: usize): void {
  while (true) {
    const i0 = atomic.add<i32>(counter, chunk);
    if (i0 >= n) break;
    const i1 = min(n, i0 + chunk);
    for (let i = i0; i < i1; i += 2) {
      // two values a step (f64 lanes); an odd last value is computed in both lanes
      const at = <usize>i << 2, two = i + 1 < i1;
      const x = pairAt(gate + at, two), u = pairAt(up + at, two), gv = pairAt(g + at, two);
      const sig = f64x2.div(f64x2.splat(1), f64x2.add(f64x2.splat(1), expF64x2(f64x2.neg(x))));
      const silu = f64x2.mul(x, sig);
      const dsilu = f64x2.mul(sig, f64x2.add(f64x2.splat(1), f64x2.mul(x, f64x2.sub(f64x2.splat(1), sig))));
      const dg = f32x4.add(v128.load64_zero(dgate + at), f32x4.demote_f64x2_zero(f64x2.mul(f64x2.mul(gv, u), dsilu)));
      const du = f32x4.add(v128.load64_zero(dup + at), f32x4.demote_f64x2_zero(f64x2.mul(gv, silu)));
      if (two) {
        v128.store64_lane(dgate + at, dg, 0);
        v128.store64_lane(dup + at, du, 0);
      } else {
        v128.store32_lane(dgate + at, dg, 0);
        v128.store32_lane(dup + at, du, 0);
      }
    }
  }
}
