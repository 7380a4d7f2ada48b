// SIMD building blocks shared by the kernel families: int8 × uint8 dot steps, nibble unpacking, IQ4 levels,
// f16 widening and madd, and the 4-row helpers (lane sums, f16 scales of four rows, storing four rows' results).

import { F16_EXP_ADJUST, RELAXED, loadF16 } from './common';

// ---- SIMD integer dot products --------------------------------------------------------------------------------

/** i32x4 partial sums of Σ x_i·q_i over two pairs of 16 lanes: x signed int8, q unsigned 0…31. */
@inline export function dotUnsigned2(x0: v128, q0: v128, x1: v128, q1: v128): v128 {
  // relaxed: the int16 pair sums of both halves fit int16 together (|Σ| ≤ 4·127·31 < 2^15)
  if (RELAXED) return i32x4.extadd_pairwise_i16x8_s(pairSums2(x0, q0, x1, q1));
  return i32x4.add(dotUnsigned(x0, q0), dotUnsigned(x1, q1));
}

/** int16 pair sums of x0·q0 + x1·q1 (x signed int8, q unsigned 0…31; relaxed build only): |lane| ≤ 4·127·31 < 2^15. */
@inline export function pairSums2(x0: v128, q0: v128, x1: v128, q1: v128): v128 {
  if (RELAXED) return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, q0), i16x8.relaxed_dot_i8x16_i7x16_s(x1, q1));
  return unreachable();
}

/** i32x4 partial sums of Σ x_i·q_i over 16 lanes: x signed int8, q unsigned 0…127. */
@inline export function dotUnsigned(x: v128, q: v128): v128 {
  if (RELAXED) return i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(x, q));
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(x), i16x8.extend_low_i8x16_u(q)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(x), i16x8.extend_high_i8x16_u(q)),
  );
}

/** i32x4 partial sums of s·Σ x_i·q_i over 16 lanes (x int8, q 0…127; scale: s in every int16 lane, as i16x8.splat). */
@inline export function dotUnsignedScaled(x: v128, q: v128, scale: v128): v128 {
  if (RELAXED) return i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(x, q), scale);
  return i32x4.mul(dotUnsigned(x, q), i32x4.shr_s(scale, 16));
}

/**
 * v's int16 lanes shifted left by s bits (s > 0), right by −s (s < 0, logical), or v itself (s a constant where
 * inlined: V8 emits a shift by 0 as an instruction).
 */
@inline export function shiftLanes(v: v128, s: i32): v128 {
  return s > 0 ? i16x8.shl(v, s) : s < 0 ? i16x8.shr_u(v, -s) : v;
}

// ---- constants held in registers ---------------------------------------------------------------------------
// V8 does not keep a v128.const in a register through a loop: it builds it again (three instructions) at every use.
// A loop that uses one loads it from here before the loop (a load is not rebuilt) and passes it to the helpers
// below, whose default is the constant itself.
const CONSTANTS = memory.data<u32>([
  0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, // low nibbles
  0x8fffe000, 0x8fffe000, 0x8fffe000, 0x8fffe000, // widenF16's mask
  0x77800000, 0x77800000, 0x77800000, 0x77800000, // F16_EXP_ADJUST
  0x38000000, 0x38000000, 0x38000000, 0x38000000, // the f16 → f32 exponent rebase (dot-float.ts widenF16Rebased)
  0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, // the high halves of i32 lanes
], 16);

/** i8x16.splat(0x0f), loaded (see CONSTANTS). */
@inline export function nibbleMask(): v128 {
  return v128.load(CONSTANTS);
}

/** widenF16's two constants, loaded (see CONSTANTS). */
@inline export function f16Mask(): v128 {
  return v128.load(CONSTANTS, 16);
}

@inline export function f16Adjust(): v128 {
  return v128.load(CONSTANTS, 32);
}

/** i32x4.splat(0x38000000), loaded (see CONSTANTS). */
@inline export function f16Rebase(): v128 {
  return v128.load(CONSTANTS, 48);
}

/** i32x4.splat(0xffff0000), loaded (see CONSTANTS). */
@inline export function highHalves(): v128 {
  return v128.load(CONSTANTS, 64);
}

const LOW_NIBBLES = i8x16.splat(0x0f);

@inline export function nibbles(v: v128, high: bool): v128 {
  return high ? highNibbles(v) : lowNibbles(v);
}

@inline export function lowNibbles(v: v128, mask: v128 = LOW_NIBBLES): v128 {
  return v128.and(v, mask);
}

@inline export function highNibbles(v: v128, mask: v128 = LOW_NIBBLES): v128 {
  return v128.and(i16x8.shr_u(v, 4), mask);
}

/** The 16 levels the 4-bit indices of IQ4_NL and IQ4_XS select (ggml's kvalues_iq4nl). */
const IQ4_LEVELS = i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

/** The int8 levels of 16 bytes of IQ4 indices: their low nibbles (values 0–15 of a block of 32) or high (16–31). */
@inline export function iq4Levels(qs: v128, high: bool): v128 {
  return i8x16.swizzle(IQ4_LEVELS, nibbles(qs, high));
}

/** |IQ4_LEVELS| (for the unsigned side of the int8 products; the signs go onto the activations). */
const IQ4_MAGNITUDES = i8x16(127, 104, 83, 65, 49, 35, 22, 10, 1, 13, 25, 38, 53, 69, 89, 113);

/** The magnitudes of the levels of 16 IQ4 indices (nibbles 0…15). */
@inline export function iq4Magnitudes(indices: v128): v128 {
  return i8x16.swizzle(IQ4_MAGNITUDES, indices);
}

/** 0xff where the level of an IQ4 index is negative (indices 0…7). */
@inline export function iq4Negative(indices: v128): v128 {
  return i8x16.lt_u(indices, i8x16.splat(8));
}

/** x with its signs flipped where `negative` is 0xff (x·sign lane by lane). */
@inline export function flipSigns(x: v128, negative: v128): v128 {
  return i8x16.sub(v128.xor(x, negative), negative);
}

// ---- f16 widening, madd, and the 4-row kernels' lane sums, scales and stores ------------------------------------

/**
 * Four f32 lanes of 16-bit floats: `bits` holds the pattern in the top half of each i32 lane (sign at bit 31).
 * f16: shift exponent and mantissa down by 3 (sign copies fill bits 28–30, masked off), then rescale by 2^112.
 */
@inline export function widenF16(bits: v128, mask: v128 = i32x4.splat(0x8fffe000), adjust: v128 = f32x4.splat(F16_EXP_ADJUST)): v128 {
  return f32x4.mul(v128.and(i32x4.shr_s(bits, 3), mask), adjust);
}

/** acc + a·b (fused where the relaxed build allows). */
@inline export function madd(a: v128, b: v128, acc: v128): v128 {
  if (RELAXED) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** [Σ s0, Σ s1, Σ s2, Σ s3]: the lane sums of four vectors, of i32 lanes or (`floats`) of f32 lanes. */
@inline export function laneSums4(s0: v128, s1: v128, s2: v128, s3: v128, floats: bool): v128 {
  // [s0₀+s0₂, s1₀+s1₂, s0₁+s0₃, s1₁+s1₃], likewise for s2, s3; then add the halves
  const a0 = i8x16.shuffle(s0, s1, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), b0 = i8x16.shuffle(s0, s1, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const a1 = i8x16.shuffle(s2, s3, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), b1 = i8x16.shuffle(s2, s3, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const t0 = floats ? f32x4.add(a0, b0) : i32x4.add(a0, b0), t1 = floats ? f32x4.add(a1, b1) : i32x4.add(a1, b1);
  const a = i8x16.shuffle(t0, t1, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), b = i8x16.shuffle(t0, t1, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  return floats ? f32x4.add(a, b) : i32x4.add(a, b);
}

/** [Σ s0, Σ s1, Σ s2, Σ s3] of four i32x4 vectors. */
@inline export function rowSums4(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  return laneSums4(s0, s1, s2, s3, false);
}

/**
 * f32 of the four f16 values at p, p + stride, p + 2·stride, p + 3·stride, by F16_TABLE: widenF16's multiply takes a
 * subnormal f32 operand for every subnormal f16, and x86 multiplies those through a microcode assist (hundreds of
 * cycles). Block scales are often subnormal f16 (a Q6_K d of weights near 0.01; Q4_K's dmin), where the assist made
 * a decode product up to 1.8× slower.
 */
@inline export function scales4(p: usize, stride: usize): v128 {
  let v = f32x4.splat(loadF16(p));
  v = f32x4.replace_lane(v, 1, loadF16(p + stride));
  v = f32x4.replace_lane(v, 2, loadF16(p + 2 * stride));
  return f32x4.replace_lane(v, 3, loadF16(p + 3 * stride));
}

/** The four rows' values of one token, row k's at out + k·laneStride (laneStride 0: a single row, lane 0). */
@inline export function storeRows(out: usize, acc: v128, laneStride: usize): void {
  if (laneStride == 4) {
    v128.store(out, acc);
  } else {
    store<f32>(out, f32x4.extract_lane(acc, 0));
    if (laneStride) {
      store<f32>(out + laneStride, f32x4.extract_lane(acc, 1));
      store<f32>(out + 2 * laneStride, f32x4.extract_lane(acc, 2));
      store<f32>(out + 3 * laneStride, f32x4.extract_lane(acc, 3));
    }
  }
}
