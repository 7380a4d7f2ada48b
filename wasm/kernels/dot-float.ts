// Row dots and 4-row kernels of float weights (F16, BF16, F32).

import { hsum } from './common';
import { f16Adjust, f16Mask, f16Rebase, highHalves, laneSums4, madd, storeRows, widenF16 } from './simd';

/**
 * Four f32 lanes of f16 patterns (as for widenF16) without the multiply: the exponent is rebased by an integer add.
 * Exact for normal values (and as widenF16 for inf/NaN, which weights do not hold). A zero or subnormal
 * (exponent field 0, value ±m·2^−24) comes out as ±2^−15·(1 + m/1024), which is ±2^−25·(1024 − m) too much; the
 * row's correction list takes that back off (f16_corrections). Subnormal operands would send widenF16's multiply down
 * the CPU's slow denormal path (random-like weights hold ~0.2% of them), so decode uses this one.
 */
@inline function widenF16Rebased(bits: v128, mask: v128 = i32x4.splat(0x8fffe000), rebase: v128 = i32x4.splat(0x38000000)): v128 {
  return i32x4.add(v128.and(i32x4.shr_s(bits, 3), mask), rebase);
}

// how dotHalf turns 16-bit weights into f32
const HALF_BF16 = 0, HALF_F16 = 1, HALF_F16_REBASED = 2;

/** A widening's two constants, loaded into registers before a loop (see simd.ts CONSTANTS; BF16 uses c0 only). */
@inline function halfConstant0(widening: i32): v128 {
  return widening == HALF_BF16 ? highHalves() : f16Mask();
}

@inline function halfConstant1(widening: i32): v128 {
  return widening == HALF_F16 ? f16Adjust() : f16Rebase();
}

/** bits widened to f32 lanes (c0, c1: the widening's constants) */
@inline function widenHalf(bits: v128, widening: i32, c0: v128, c1: v128): v128 {
  if (widening == HALF_F16) return widenF16(bits, c0, c1);
  if (widening == HALF_F16_REBASED) return widenF16Rebased(bits, c0, c1);
  return bits;
}

/**
 * Bytes ahead of the row being read that the 16-bit decode kernel touches: a load whose value is not waited for starts
 * the next lines' transfer early (WebAssembly has no prefetch instruction), so memory reads overlap the widening work.
 * (The 4-row integer kernels did not gain from it.)
 */
const READ_AHEAD: usize = 384;

/** The odd values of 8 halves in the top of each i32 lane (f16 widening masks the even ones off by itself; BF16: c0 the mask). */
@inline function oddHalves(v: v128, widening: i32, c0: v128): v128 {
  return widening == HALF_BF16 ? v128.and(v, c0) : v;
}

/** F16 or BF16 · f32 activations in the 8-group even/odd order: each i32 of weights holds an even and an odd value. */
@inline function dotHalf(w: usize, x: usize, n: i32, widening: i32): f32 {
  // four independent accumulators: 16 values per step keep the adds' latency hidden
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0), acc2 = f32x4.splat(0), acc3 = f32x4.splat(0);
  const c0 = halfConstant0(widening), c1 = halfConstant1(widening);
  let touched: u32 = 0;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const v = v128.load(w), u = v128.load(w + 16);
    touched += load<u8>(w + READ_AHEAD);
    acc0 = madd(widenHalf(i32x4.shl(v, 16), widening, c0, c1), v128.load(x), acc0);
    acc1 = madd(widenHalf(oddHalves(v, widening, c0), widening, c0, c1), v128.load(x + 16), acc1);
    acc2 = madd(widenHalf(i32x4.shl(u, 16), widening, c0, c1), v128.load(x + 32), acc2);
    acc3 = madd(widenHalf(oddHalves(u, widening, c0), widening, c0, c1), v128.load(x + 48), acc3);
    w += 32;
    x += 64;
  }
  if (i < n) {
    const v = v128.load(w);
    acc0 = madd(widenHalf(i32x4.shl(v, 16), widening, c0, c1), v128.load(x), acc0);
    acc1 = madd(widenHalf(oddHalves(v, widening, c0), widening, c0, c1), v128.load(x + 16), acc1);
  }
  readAheadSink += touched;
  return hsum(f32x4.add(f32x4.add(acc0, acc1), f32x4.add(acc2, acc3)));
}

/**
 * Rows at w, w + rb, w + 2·rb, w + 3·rb of F16 or BF16 (n values, a multiple of 8) · f32 activations in the 8-group
 * even/odd order → out + k·laneStride for row k (rb 0: one row, lane 0 stored): the activations are loaded once for the
 * four rows, and the four rows are read as four streams side by side.
 */
@inline function rows4Half(w: usize, rb: usize, x: usize, n: i32, out: usize, laneStride: usize, widening: i32): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  let touched: u32 = 0;
  const c0 = halfConstant0(widening), c1 = halfConstant1(widening);
  for (let i = 0; i < n; i += 8) {
    const x0 = v128.load(x), x1 = v128.load(x + 16);
    const v0 = v128.load(w), v1 = v128.load(w + rb), v2 = v128.load(w + 2 * rb), v3 = v128.load(w + 3 * rb);
    touched += load<u8>(w + READ_AHEAD) + load<u8>(w + rb + READ_AHEAD) + load<u8>(w + 2 * rb + READ_AHEAD) + load<u8>(w + 3 * rb + READ_AHEAD);
    a0 = madd(widenHalf(oddHalves(v0, widening, c0), widening, c0, c1), x1, madd(widenHalf(i32x4.shl(v0, 16), widening, c0, c1), x0, a0));
    a1 = madd(widenHalf(oddHalves(v1, widening, c0), widening, c0, c1), x1, madd(widenHalf(i32x4.shl(v1, 16), widening, c0, c1), x0, a1));
    a2 = madd(widenHalf(oddHalves(v2, widening, c0), widening, c0, c1), x1, madd(widenHalf(i32x4.shl(v2, 16), widening, c0, c1), x0, a2));
    a3 = madd(widenHalf(oddHalves(v3, widening, c0), widening, c0, c1), x1, madd(widenHalf(i32x4.shl(v3, 16), widening, c0, c1), x0, a3));
    w += 16;
    x += 32;
  }
  readAheadSink += touched;
  storeRows(out, laneSums4(a0, a1, a2, a3, true), laneStride);
}

// rows4Half made once per widening
export function rows4F16(w: usize, rb: usize, x: usize, n: i32, out: usize, laneStride: usize): void { rows4Half(w, rb, x, n, out, laneStride, HALF_F16); }
export function rows4F16Rebased(w: usize, rb: usize, x: usize, n: i32, out: usize, laneStride: usize): void { rows4Half(w, rb, x, n, out, laneStride, HALF_F16_REBASED); }
export function rows4BF16(w: usize, rb: usize, x: usize, n: i32, out: usize, laneStride: usize): void { rows4Half(w, rb, x, n, out, laneStride, HALF_BF16); }

// dotHalf made once per widening
export function dotF16(w: usize, x: usize, n: i32): f32 { return dotHalf(w, x, n, HALF_F16); }
export function dotF16Rebased(w: usize, x: usize, n: i32): f32 { return dotHalf(w, x, n, HALF_F16_REBASED); }
export function dotBF16(w: usize, x: usize, n: i32): f32 { return dotHalf(w, x, n, HALF_BF16); }

/** Keeps the read-ahead loads alive (their values are otherwise unused). */
let readAheadSink: u32 = 0;

/** F32 · f32 activations in the 8-group even/odd order. */
export function dotF32(w: usize, x: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  for (let i = 0; i < n; i += 8) {
    const a = v128.load(w), b = v128.load(w + 16);
    const even = i8x16.shuffle(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const odd = i8x16.shuffle(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    acc = f32x4.add(acc, f32x4.add(f32x4.mul(even, v128.load(x)), f32x4.mul(odd, v128.load(x + 16))));
    w += 32;
    x += 32;
  }
  return hsum(acc);
}
