// Row dots and 4-row kernels of the K-quants (Q2_K … Q6_K) and IQ4_XS, one token at a time.

import { Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, RELAXED, hsum, loadF16 } from './common';
import { dotUnsigned, dotUnsignedScaled, flipSigns, highNibbles, iq4Magnitudes, iq4Negative, lowNibbles, madd, rowSums4, scales4, shiftLanes, storeRows } from './simd';

/**
 * The 8 6-bit scales and 8 6-bit mins of a Q4_K/Q5_K super-block (12 packed bytes at p, get_scale_min_k4's layout)
 * as the bytes of one vector: scales in bytes 0…7, mins in 8…15; four 32-bit steps, as ggml's utmp trick.
 */
@inline export function scalesMinsK4(p: usize): v128 {
  const kmask1: u32 = 0x3f3f3f3f, kmask2: u32 = 0x0f0f0f0f, kmask3: u32 = 0x03030303;
  const a = load<u32>(p), b = load<u32>(p + 4), c = load<u32>(p + 8);
  let v = i32x4.splat(a & kmask1);
  v = i32x4.replace_lane(v, 1, (c & kmask2) | (((a >> 6) & kmask3) << 4));
  v = i32x4.replace_lane(v, 2, b & kmask1);
  return i32x4.replace_lane(v, 3, ((c >> 4) & kmask2) | (((b >> 6) & kmask3) << 4));
}

/**
 * int16 lanes 0…3 (pairsLow) or 4…7 (pairsHigh) of s, each twice: i32 lane j is s_j | s_j << 16, so a splat of lane j
 * (scaleSplat, one shuffle of 32-bit lanes) is s_j in every int16 lane, the operand of i32x4.dot_i16x8_s.
 */
@inline function pairsLow(s: v128): v128 {
  return i8x16.shuffle(s, s, 0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7);
}

@inline function pairsHigh(s: v128): v128 {
  return i8x16.shuffle(s, s, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 15, 14, 15);
}

/** i32x4 partial sums of Σ_j m_j·(bsum[2j] + bsum[2j+1]): sm from scalesMinsK4, bsums of a Q8_K block. */
@inline export function minsDotBsums(sm: v128, bsums: usize): v128 {
  // each min as int16, twice: it covers two groups of 16
  const mins = i16x8.extend_high_i8x16_u(sm);
  return i32x4.add(i32x4.dot_i16x8_s(v128.load(bsums), pairsLow(mins)), i32x4.dot_i16x8_s(v128.load(bsums + 16), pairsHigh(mins)));
}

/** Lane `lane` of scale pairs splat (lane a constant where inlined). */
@inline function scaleSplat(pairs: v128, lane: i32): v128 {
  switch (lane) {
    case 0: return i32x4.shuffle(pairs, pairs, 0, 0, 0, 0);
    case 1: return i32x4.shuffle(pairs, pairs, 1, 1, 1, 1);
    case 2: return i32x4.shuffle(pairs, pairs, 2, 2, 2, 2);
    default: return i32x4.shuffle(pairs, pairs, 3, 3, 3, 3);
  }
}

/**
 * isum + s_low·Σ x·low + s_high·Σ x·high over a pair of sub-blocks (x: their 64 Q8_K values; low, high: each
 * sub-block's 32 unsigned values in two vectors; s_low, s_high: scale splats as from scaleSplat). In the relaxed build
 * a sub-block's two int16 dot products are added before its scale multiplies them.
 */
@inline export function kPair(isum: v128, x: usize, lowA: v128, lowB: v128, highA: v128, highB: v128, scaleLow: v128, scaleHigh: v128): v128 {
  if (RELAXED) {
    const low = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x), lowA), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x + 16), lowB));
    const high = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x + 32), highA), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x + 48), highB));
    return i32x4.add(isum, i32x4.add(i32x4.dot_i16x8_s(low, scaleLow), i32x4.dot_i16x8_s(high, scaleHigh)));
  }
  const low = i32x4.add(dotUnsigned(v128.load(x), lowA), dotUnsigned(v128.load(x + 16), lowB));
  const high = i32x4.add(dotUnsigned(v128.load(x + 32), highA), dotUnsigned(v128.load(x + 48), highB));
  return i32x4.add(isum, i32x4.add(i32x4.mul(low, i32x4.shr_s(scaleLow, 16)), i32x4.mul(high, i32x4.shr_s(scaleHigh, 16))));
}

/** The 64 unsigned values of sub-blocks 2p, 2p+1 of a Q4_K or Q5_K super-block (w) · x, added to isum as kPair does. */
@inline function k45Pair(type: i32, isum: v128, w: usize, x: usize, pair: i32, scaleLow: v128, scaleHigh: v128): v128 {
  const q = w + (type == Q5_K ? 48 : 16) + 32 * pair;
  const qa = v128.load(q), qb = v128.load(q + 16);
  let lowA = lowNibbles(qa), lowB = lowNibbles(qb), highA = highNibbles(qa), highB = highNibbles(qb);
  if (type == Q5_K) {
    const qha = v128.load(w + 16), qhb = v128.load(w + 32);
    lowA = v128.or(lowA, q5_KFifth(qha, 2 * pair));
    lowB = v128.or(lowB, q5_KFifth(qhb, 2 * pair));
    highA = v128.or(highA, q5_KFifth(qha, 2 * pair + 1));
    highB = v128.or(highB, q5_KFifth(qhb, 2 * pair + 1));
  }
  return kPair(isum, x + 4 + 64 * pair, lowA, lowB, highA, highB, scaleLow, scaleHigh);
}

/**
 * Σ_j s_j·Σ q·x over one Q4_K or Q5_K super-block (w) and its Q8_K activations (x), sm its scalesMinsK4; the values
 * of sub-block 2p are the low nibbles of bytes 32p…32p+31, of 2p+1 the high ones (Q5_K: | the fifth bit from qh).
 * The partial sum is stored to `order` (16 bytes of scratch) after each pair of sub-blocks: TurboFan moves a loop's
 * loads ahead of the arithmetic up to the last store before them, and 4 rows' worth of loads at once spill registers.
 */
@inline function blockK45(type: i32, w: usize, x: usize, sm: v128, order: usize): v128 {
  const scales = i16x8.extend_low_i8x16_u(sm), low = pairsLow(scales), high = pairsHigh(scales);
  let isum = k45Pair(type, i32x4.splat(0), w, x, 0, scaleSplat(low, 0), scaleSplat(low, 1));
  v128.store(order, isum);
  isum = k45Pair(type, isum, w, x, 1, scaleSplat(low, 2), scaleSplat(low, 3));
  v128.store(order, isum);
  isum = k45Pair(type, isum, w, x, 2, scaleSplat(high, 0), scaleSplat(high, 1));
  v128.store(order, isum);
  isum = k45Pair(type, isum, w, x, 3, scaleSplat(high, 2), scaleSplat(high, 3));
  v128.store(order, isum);
  return isum;
}

/**
 * Bit k (0…7) of each byte of a Q5_K block's qh (16 bytes) moved to 0x10: the fifth bit of those values. One int16
 * shift, as hmaskFour: bit 4 of either byte of a lane comes from bit k of the same byte.
 */
@inline export function q5_KFifth(qh: v128, k: i32): v128 {
  return v128.and(shiftLanes(qh, 4 - k), i8x16.splat(0x10));
}

/**
 * Q4_K or Q5_K · Q8_K: value = d·sc_j·q − dmin·m_j per sub-block j of 32; q the nibbles (low nibbles: even j), Q5_K
 * with a fifth bit per value from qh (bit 2j / 2j+1 of qh[l] for sub-blocks 2j / 2j+1).
 */
@inline function dotK45(type: i32, w: usize, x: usize, nb: i32, order: usize): f32 {
  let acc = f32x4.splat(0), minAcc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const dx = load<f32>(x), sm = scalesMinsK4(w + 4);
    acc = madd(f32x4.convert_i32x4_s(blockK45(type, w, x, sm, order)), f32x4.splat(dx * loadF16(w)), acc);
    minAcc = madd(f32x4.convert_i32x4_s(minsDotBsums(sm, x + 260)), f32x4.splat(dx * loadF16(w + 2)), minAcc);
    w += type == Q5_K ? 176 : 144;
    x += 292;
  }
  return hsum(acc) - hsum(minAcc);
}

export function dotQ4_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK45(Q4_K, w, x, nb, order); }
export function dotQ5_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK45(Q5_K, w, x, nb, order); }

/**
 * K-quant (Q2_K…Q6_K) rows at w, w + rb, w + 2·rb, w + 3·rb (nb super-blocks; rb 0: one row, lane 0 stored) · one Q8_K
 * row → out + k·laneStride for row k: each super-block's four integer sums are gathered into one vector (rowSums4),
 * so converting and scaling by d·d_x (and dmin·d_x) happen once per four rows.
 */
@inline function rows4K(type: i32, w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void {
  let acc = f32x4.splat(0), minAcc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const dx = f32x4.splat(load<f32>(x));
    if (type == Q2_K || type == Q3_K || type == Q6_K) {
      const sums = rowSums4(blockK(type, w, x, order), blockK(type, w + rb, x, order), blockK(type, w + 2 * rb, x, order), blockK(type, w + 3 * rb, x, order));
      acc = madd(f32x4.convert_i32x4_s(sums), f32x4.mul(scales4(w + scaleOffsetK(type), rb), dx), acc);
      if (type == Q2_K) {
        const mins = rowSums4(minsQ2_K(w, x), minsQ2_K(w + rb, x), minsQ2_K(w + 2 * rb, x), minsQ2_K(w + 3 * rb, x));
        minAcc = madd(f32x4.convert_i32x4_s(mins), f32x4.mul(scales4(w + 82, rb), dx), minAcc);
      }
    } else {
      const sm0 = scalesMinsK4(w + 4), sm1 = scalesMinsK4(w + rb + 4), sm2 = scalesMinsK4(w + 2 * rb + 4), sm3 = scalesMinsK4(w + 3 * rb + 4);
      const sums = rowSums4(blockK45(type, w, x, sm0, order), blockK45(type, w + rb, x, sm1, order), blockK45(type, w + 2 * rb, x, sm2, order), blockK45(type, w + 3 * rb, x, sm3, order));
      const bsums = x + 260;
      const mins = rowSums4(minsDotBsums(sm0, bsums), minsDotBsums(sm1, bsums), minsDotBsums(sm2, bsums), minsDotBsums(sm3, bsums));
      acc = madd(f32x4.convert_i32x4_s(sums), f32x4.mul(scales4(w, rb), dx), acc);
      minAcc = madd(f32x4.convert_i32x4_s(mins), f32x4.mul(scales4(w + 2, rb), dx), minAcc);
    }
    w += blockBytesK(type);
    x += 292;
  }
  storeRows(out, f32x4.sub(acc, minAcc), laneStride);
}

// rows4K made once per type
export function rows4Q4_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q4_K, w, rb, x, nb, out, laneStride, order); }
export function rows4Q5_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q5_K, w, rb, x, nb, out, laneStride, order); }
export function rows4Q6_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q6_K, w, rb, x, nb, out, laneStride, order); }
export function rows4Q2_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q2_K, w, rb, x, nb, out, laneStride, order); }
export function rows4Q3_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q3_K, w, rb, x, nb, out, laneStride, order); }

/**
 * Q6_K: q = (4 bits of ql | 2 bits of qh << 4) − 32, a signed int8 scale per group of 16. Half h (128 values): value
 * 32k + l takes ql[64h + l (+32 for k odd)] low (k < 2) or high nibble and bits 2k of qh[32h + l]. One quarter of a
 * super-block: half h, values l = 16·part … 16·part + 15 of each k (groups 8h + 2k + part); p01, p23: pairsLow/High
 * of groups 8h…8h+7's scales. Adds Σ s_g·q·x (q unsigned 0…63 here) to isum.
 */
@inline function q6Quarter(isum: v128, w: usize, x: usize, h: i32, part: i32, p01: v128, p23: v128): v128 {
  const mask2 = i8x16.splat(0x30);
  const l = 16 * part, ql = w + 64 * h + l, qhv = v128.load(w + 128 + 32 * h + l), xq = x + 4 + 128 * h + l;
  const qlA = v128.load(ql), qlB = v128.load(ql + 32);
  const q0 = v128.or(lowNibbles(qlA), v128.and(i16x8.shl(qhv, 4), mask2));
  const q1 = v128.or(lowNibbles(qlB), v128.and(i16x8.shl(qhv, 2), mask2));
  const q2 = v128.or(highNibbles(qlA), v128.and(qhv, mask2));
  const q3 = v128.or(highNibbles(qlB), v128.and(i16x8.shr_u(qhv, 2), mask2));
  isum = i32x4.add(isum, dotUnsignedScaled(v128.load(xq), q0, scaleSplat(p01, part)));
  isum = i32x4.add(isum, dotUnsignedScaled(v128.load(xq + 32), q1, scaleSplat(p01, 2 + part)));
  isum = i32x4.add(isum, dotUnsignedScaled(v128.load(xq + 64), q2, scaleSplat(p23, part)));
  return i32x4.add(isum, dotUnsignedScaled(v128.load(xq + 96), q3, scaleSplat(p23, 2 + part)));
}

/**
 * Σ s_g·(q − 32)·x over one Q6_K super-block (w) and its Q8_K activations (x): Σ s·q·x − 32·Σ s_g·bsum_g. The partial
 * sum is stored to `order` between quarters, as in blockK45.
 */
@inline function blockQ6_K(w: usize, x: usize, order: usize): v128 {
  const sc = v128.load(w + 192), low = i16x8.extend_low_i8x16_s(sc), high = i16x8.extend_high_i8x16_s(sc);
  let isum = q6Quarter(i32x4.splat(0), w, x, 0, 0, pairsLow(low), pairsHigh(low));
  v128.store(order, isum);
  isum = q6Quarter(isum, w, x, 0, 1, pairsLow(low), pairsHigh(low));
  v128.store(order, isum);
  isum = q6Quarter(isum, w, x, 1, 0, pairsLow(high), pairsHigh(high));
  v128.store(order, isum);
  isum = q6Quarter(isum, w, x, 1, 1, pairsLow(high), pairsHigh(high));
  v128.store(order, isum);
  const offset = i32x4.add(i32x4.dot_i16x8_s(low, v128.load(x + 260)), i32x4.dot_i16x8_s(high, v128.load(x + 276)));
  return i32x4.sub(isum, i32x4.shl(offset, 5));
}

/**
 * Q2_K and Q3_K, value 128h + 32g + l of a super-block: 2 bits (qs[32h + l] >> 2g) & 3, group of 16 8h + 2g + (l ≥ 16).
 * Q3_K adds 4 where bit 4h + g of hmask[l] is set (q + 4, unsigned 0…7; 4·Σ s·bsum comes off afterwards).
 * isum + s_a·Σ q·x + s_b·Σ q·x over groups 8h + 2g, 8h + 2g + 1 (g, h constants where inlined).
 */
@inline function twoBitGroups(type: i32, isum: v128, w: usize, x: usize, h: i32, g: i32, sa: v128, sb: v128): v128 {
  const three = i8x16.splat(3), q = w + (type == Q3_K ? 32 : 16) + 32 * h, xq = x + 4 + 128 * h + 32 * g;
  let a = v128.and(shiftLanes(v128.load(q), -2 * g), three), b = v128.and(shiftLanes(v128.load(q + 16), -2 * g), three);
  if (type == Q3_K) {
    a = v128.or(a, hmaskFour(v128.load(w), 4 * h + g));
    b = v128.or(b, hmaskFour(v128.load(w + 16), 4 * h + g));
  }
  return i32x4.add(isum, i32x4.add(dotUnsignedScaled(v128.load(xq), a, sa), dotUnsignedScaled(v128.load(xq + 16), b, sb)));
}

/**
 * 4 in the bytes of m (16 hmask bytes of Q3_K) whose bit k is set (k a constant where inlined): the bit moved to bit 2
 * by an int16 shift (bit 2 of either byte of a lane comes from the same byte) and masked.
 */
@inline function hmaskFour(m: v128, k: i32): v128 {
  return v128.and(shiftLanes(m, 2 - k), i8x16.splat(4));
}

/** isum + Σ s·q·x over half h of a Q2_K or Q3_K super-block; s8: the scales of its groups 8h…8h+7 as int16. */
@inline function twoBitHalf(type: i32, isum: v128, w: usize, x: usize, h: i32, s8: v128, order: usize): v128 {
  const low = pairsLow(s8), high = pairsHigh(s8);
  isum = twoBitGroups(type, isum, w, x, h, 0, scaleSplat(low, 0), scaleSplat(low, 1));
  isum = twoBitGroups(type, isum, w, x, h, 1, scaleSplat(low, 2), scaleSplat(low, 3));
  v128.store(order, isum);
  isum = twoBitGroups(type, isum, w, x, h, 2, scaleSplat(high, 0), scaleSplat(high, 1));
  isum = twoBitGroups(type, isum, w, x, h, 3, scaleSplat(high, 2), scaleSplat(high, 3));
  v128.store(order, isum);
  return isum;
}

/** The 16 6-bit scales of a Q3_K super-block (12 packed bytes at p) minus 32, as the int8 lanes of one vector. */
@inline function scalesQ3_K(p: usize): v128 {
  const a0 = load<u32>(p), a1 = load<u32>(p + 4), tmp = load<u32>(p + 8);
  const kmask1: u32 = 0x03030303, kmask2: u32 = 0x0f0f0f0f;
  let v = i32x4.splat((a0 & kmask2) | ((tmp & kmask1) << 4));
  v = i32x4.replace_lane(v, 1, (a1 & kmask2) | (((tmp >> 2) & kmask1) << 4));
  v = i32x4.replace_lane(v, 2, ((a0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4));
  v = i32x4.replace_lane(v, 3, ((a1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4));
  return i8x16.sub(v, i8x16.splat(32));
}

/**
 * Σ s_g·q·x over one super-block (w) of Q2_K (s = sc & 15; the mins are minsQ2_K's), Q3_K (s signed, q − 4:
 * Σ s·(q + 4)·x − 4·Σ s_g·bsum_g) or Q6_K (blockQ6_K) and its Q8_K activations (x).
 */
@inline function blockK(type: i32, w: usize, x: usize, order: usize): v128 {
  if (type == Q6_K) return blockQ6_K(w, x, order);
  if (type == Q2_K) {
    const s = v128.and(v128.load(w), i8x16.splat(15));
    const isum = twoBitHalf(Q2_K, i32x4.splat(0), w, x, 0, i16x8.extend_low_i8x16_u(s), order);
    return twoBitHalf(Q2_K, isum, w, x, 1, i16x8.extend_high_i8x16_u(s), order);
  }
  const s = scalesQ3_K(w + 96), low = i16x8.extend_low_i8x16_s(s), high = i16x8.extend_high_i8x16_s(s);
  const isum = twoBitHalf(Q3_K, twoBitHalf(Q3_K, i32x4.splat(0), w, x, 0, low, order), w, x, 1, high, order);
  const offset = i32x4.add(i32x4.dot_i16x8_s(low, v128.load(x + 260)), i32x4.dot_i16x8_s(high, v128.load(x + 276)));
  return i32x4.sub(isum, i32x4.shl(offset, 2));
}

/** i32x4 partial sums of Σ_g m_g·bsum_g of a Q2_K super-block (m = sc >> 4) and its Q8_K activations. */
@inline function minsQ2_K(w: usize, x: usize): v128 {
  const m = i8x16.shr_u(v128.load(w), 4);
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(m), v128.load(x + 260)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(m), v128.load(x + 276)));
}

/** Where a Q2_K, Q3_K or Q6_K super-block keeps its d (f16), and its size in bytes. */
@inline function scaleOffsetK(type: i32): usize {
  return type == Q2_K ? 80 : type == Q3_K ? 108 : 208;
}

@inline function blockBytesK(type: i32): usize {
  switch (type) {
    case Q2_K: return 84;
    case Q3_K: return 110;
    case Q4_K: return 144;
    case Q5_K: return 176;
    default: return 210;
  }
}

/** Q2_K, Q3_K or Q6_K · Q8_K: Σ d·d_x·blockK (− dmin·d_x·minsQ2_K for Q2_K). */
@inline function dotK(type: i32, w: usize, x: usize, nb: i32, order: usize): f32 {
  let acc = f32x4.splat(0), minAcc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const dx = load<f32>(x);
    acc = madd(f32x4.convert_i32x4_s(blockK(type, w, x, order)), f32x4.splat(dx * loadF16(w + scaleOffsetK(type))), acc);
    if (type == Q2_K) minAcc = madd(f32x4.convert_i32x4_s(minsQ2_K(w, x)), f32x4.splat(dx * loadF16(w + 82)), minAcc);
    w += blockBytesK(type);
    x += 292;
  }
  return hsum(acc) - hsum(minAcc);
}

// dotK made once per type
export function dotQ2_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK(Q2_K, w, x, nb, order); }
export function dotQ3_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK(Q3_K, w, x, nb, order); }
export function dotQ6_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK(Q6_K, w, x, nb, order); }

/** Sub-block j's scale s_j − 32 of an IQ4_XS super-block: low nibble j of scalesL (its 4 bytes), high 2 bits from scalesH. */
@inline export function iq4_XSScale(scalesL: u32, scalesH: u32, j: i32): i32 {
  return <i32>(((scalesL >> (4 * j)) & 15) | (((scalesH >> (2 * j)) & 3) << 4)) - 32;
}

/**
 * isum + scale·Σ level·x over one IQ4_XS sub-block of 32 (x: its 32 Q8_K values): the levels' signs (masks for values
 * 0–15 and 16–31) move onto x, their magnitudes are the unsigned operand.
 */
@inline export function iq4_XSSubBlock(isum: v128, x: usize, lowMagnitudes: v128, lowNegative: v128, highMagnitudes: v128, highNegative: v128, scale: i32): v128 {
  const s0 = dotUnsignedScaled(flipSigns(v128.load(x), lowNegative), lowMagnitudes, i16x8.splat(<i16>scale));
  const s1 = dotUnsignedScaled(flipSigns(v128.load(x + 16), highNegative), highMagnitudes, i16x8.splat(<i16>scale));
  return i32x4.add(isum, i32x4.add(s0, s1));
}

/** IQ4_XS · Q8_K: value = d·(s_j − 32)·level per sub-block j of 32; the super-block's sum in integers, then · d·d_x. */
export function dotIQ4_XS(w: usize, x: usize, nb: i32): f32 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let isum = i32x4.splat(0);
    const scalesH = <u32>load<u16>(w + 2), scalesL = load<u32>(w + 4);
    for (let j = 0; j < 8; j++) {
      const qs = v128.load(w + 8 + 16 * j);
      const low = lowNibbles(qs), high = highNibbles(qs);
      isum = iq4_XSSubBlock(isum, x + 4 + 32 * j, iq4Magnitudes(low), iq4Negative(low), iq4Magnitudes(high), iq4Negative(high), iq4_XSScale(scalesL, scalesH, j));
    }
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(load<f32>(x) * loadF16(w))));
    w += 136;
    x += 292;
  }
  return hsum(acc);
}
