// Kernels of the 32-value block types: Q4_1 and Q5_1 row dots, and the 4-row kernels of Q8_0, Q4_0, Q5_0 and IQ4_NL.

import { IQ4_NL, Q4_0, Q5_0, Q8_0, RELAXED, hsum, loadF16 } from './common';
import { dotUnsigned, dotUnsigned2, highNibbles, iq4Levels, lowNibbles, madd, nibbleMask, pairSums2, rowSums4, scales4, storeRows } from './simd';

// ---- row dot products: one weight row (nb blocks at w) · one activation row (at x) ----------------------------

/** Q4_1 · Q8_1: d_w·d_x·Σ q·x + m_w·s_x (s_x = d_x·Σx). */
export function dotQ4_1(w: usize, x: usize, nb: i32): f32 {
  let acc = f32x4.splat(0);
  let minTerm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const qs = v128.load(w + 4);
    const s = dotUnsigned2(v128.load(x + 4), lowNibbles(qs), v128.load(x + 20), highNibbles(qs));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.splat(loadF16(w) * loadF16(x))));
    minTerm += loadF16(w + 2) * loadF16(x + 2);
    w += 20;
    x += 36;
  }
  return hsum(acc) + minTerm;
}

/** The 5th bits of a Q5 block (u32 qh, bit j for value j) as 0x10 in bytes: values 0…15 and 16…31. */
@inline function fifthBits(qh: u32, upper: bool): v128 {
  // spread 16 bits to 16 bytes: byte k gets bit k of the half
  const half = upper ? qh >> 16 : qh & 0xffff;
  const bytes = i8x16.swizzle(i16x8.splat(<i16>half), i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const bit = v128.and(bytes, i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128));
  return v128.and(i8x16.ne(bit, i8x16.splat(0)), i8x16.splat(0x10));
}

/** Q5_1 · Q8_1: d_w·d_x·Σ q·x + m_w·s_x, q = nibble | fifth bit << 4. */
export function dotQ5_1(w: usize, x: usize, nb: i32): f32 {
  let acc = f32x4.splat(0);
  let minTerm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const qh = load<u32>(w + 4);
    const qs = v128.load(w + 8);
    const q0 = v128.or(lowNibbles(qs), fifthBits(qh, false));
    const q1 = v128.or(highNibbles(qs), fifthBits(qh, true));
    const s = dotUnsigned2(v128.load(x + 4), q0, v128.load(x + 20), q1);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.splat(loadF16(w) * loadF16(x))));
    minTerm += loadF16(w + 2) * loadF16(x + 2);
    w += 24;
    x += 36;
  }
  return hsum(acc) + minTerm;
}

// ---- 4-row kernels (Q8_0, Q4_0, Q5_0, IQ4_NL): four weight rows at once, against 1 token (decode) or 4 (prefill) ----
// Every (row, token) block product is an exact integer, as in ggml. rowSums4 gathers the four rows' partial sums into
// one vector, so converting, scaling by d_w·d_x and accumulating happen once per four rows. A last group of fewer than
// four rows is done one row at a time with a row stride of 0 (the row repeated, lane 0 stored).

/**
 * i32x4 partial sums of one block of int8 weight values (v0: values 0–15, v1: 16–31) · one Q8_0_SIGNS activation block
 * (|x| in a0, a1, sign masks in s0, s1): x's signs move onto the weights.
 */
@inline function signedBlockSum(v0: v128, v1: v128, a0: v128, a1: v128, s0: v128, s1: v128): v128 {
  return i32x4.add(dotUnsigned(i8x16.sub(v128.xor(v0, s0), s0), a0), dotUnsigned(i8x16.sub(v128.xor(v1, s1), s1), a1));
}

/** signedBlockSum of the Q8_0 weight block at w. */
@inline function q8_0BlockSum(w: usize, a0: v128, a1: v128, s0: v128, s1: v128): v128 {
  return signedBlockSum(v128.load(w + 2), v128.load(w + 18), a0, a1, s0, s1);
}

/** acc + (d_w · d_x)·Σ w·x for one block of four rows (at w, stride rb) and one token (its block at x, loaded once). */
@inline function q8_0Token(acc: v128, w: usize, rb: usize, x: usize, dw: v128, dx: f32): v128 {
  const a0 = v128.load(x), a1 = v128.load(x + 16), s0 = v128.load(x + 32), s1 = v128.load(x + 48);
  const s = rowSums4(q8_0BlockSum(w, a0, a1, s0, s1), q8_0BlockSum(w + rb, a0, a1, s0, s1), q8_0BlockSum(w + 2 * rb, a0, a1, s0, s1), q8_0BlockSum(w + 3 * rb, a0, a1, s0, s1));
  return madd(f32x4.convert_i32x4_s(s), f32x4.mul(dw, f32x4.splat(dx)), acc);
}

/**
 * acc + (d_w · d_x)·Σ level·x for one token (its Q8_0_SIGNS block at x) and an IQ4_NL block of four rows whose levels
 * were looked up once for all tokens (lowK, highK for row k).
 */
@inline function levelsToken(acc: v128, x: usize, dw: v128, dx: f32,
  low0: v128, high0: v128, low1: v128, high1: v128, low2: v128, high2: v128, low3: v128, high3: v128): v128 {
  const a0 = v128.load(x), a1 = v128.load(x + 16), s0 = v128.load(x + 32), s1 = v128.load(x + 48);
  const s = rowSums4(signedBlockSum(low0, high0, a0, a1, s0, s1), signedBlockSum(low1, high1, a0, a1, s0, s1),
    signedBlockSum(low2, high2, a0, a1, s0, s1), signedBlockSum(low3, high3, a0, a1, s0, s1));
  return madd(f32x4.convert_i32x4_s(s), f32x4.mul(dw, f32x4.splat(dx)), acc);
}

/**
 * The 32 unsigned values of a Q4_0 (nibbles) or Q5_0 (nibble | fifth bit << 4) weight block at w: values 0–15, 16–31
 * (mask: the low nibbles', as lowNibbles).
 */
@inline export function nibbleValuesLow(type: i32, w: usize, mask: v128 = i8x16.splat(0x0f)): v128 {
  if (type == Q4_0) return lowNibbles(v128.load(w + 2), mask);
  return v128.or(lowNibbles(v128.load(w + 6), mask), fifthBits(load<u32>(w + 2), false));
}

@inline export function nibbleValuesHigh(type: i32, w: usize, mask: v128 = i8x16.splat(0x0f)): v128 {
  if (type == Q4_0) return highNibbles(v128.load(w + 2), mask);
  return v128.or(highNibbles(v128.load(w + 6), mask), fifthBits(load<u32>(w + 2), true));
}

/**
 * −offset·Σx in every i32 lane for a Q4_0 (offset 8) or Q5_0 (16) block, from the token's block offsets at p
 * (Q8_0_SUMS: the int16 pair of −8·Σx over the two halves of each value quad).
 */
@inline export function blockOffset(type: i32, p: usize): v128 {
  const offset = i32x4.extadd_pairwise_i16x8_s(v128.load32_splat(p));
  return type == Q4_0 ? offset : i32x4.shl(offset, 1);
}

/**
 * [Σ (q − offset)·x of row 0, …, row 3] for one block: rK the row's int16 pair sums over the block (relaxed build;
 * lane i: values 2i, 2i+1, 16 + 2i, 17 + 2i), offsets the token's block offsets (Q8_0_SUMS) times offset/8 in both
 * int16 halves of every i32 lane. The rows' lanes are folded together in int16 — lanes of even i into the low half
 * of row k's i32 lane, odd i into the high half, the halves the block offsets are made for — and widened once. int16
 * adds wrap, and each half ends at a sum of 16 products (q − offset)·x, |Σ| ≤ 16·16·127 < 2^15, so it is exact.
 */
@inline function foldRows4(r0: v128, r1: v128, r2: v128, r3: v128, offsets: v128): v128 {
  const t01 = i16x8.add(v128.shuffle<i32>(r0, r1, 0, 4, 1, 5), v128.shuffle<i32>(r0, r1, 2, 6, 3, 7));
  const t23 = i16x8.add(v128.shuffle<i32>(r2, r3, 0, 4, 1, 5), v128.shuffle<i32>(r2, r3, 2, 6, 3, 7));
  const u = i16x8.add(v128.shuffle<i64>(t01, t23, 0, 2), v128.shuffle<i64>(t01, t23, 1, 3));
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(u, offsets));
}

/**
 * acc + (d_w · d_x)·Σ (q − offset)·x for one token (its block at x, its block offsets at o) and a Q4_0 (offset 8)
 * or Q5_0 (offset 16) block of four rows whose values (q, 0…31) were extracted once for all tokens (lowK, highK for
 * row k): Σ q·x − offset·Σx, in integers (activations in the Q8_0_SUMS layout).
 */
@inline function nibbleToken(type: i32, acc: v128, x: usize, o: usize, dw: v128, dx: f32,
  low0: v128, high0: v128, low1: v128, high1: v128, low2: v128, high2: v128, low3: v128, high3: v128): v128 {
  const x0 = v128.load(x), x1 = v128.load(x + 16);
  let s: v128;
  if (RELAXED) {
    const offsets = type == Q4_0 ? v128.load32_splat(o) : i16x8.shl(v128.load32_splat(o), 1);
    s = foldRows4(pairSums2(x0, low0, x1, high0), pairSums2(x0, low1, x1, high1), pairSums2(x0, low2, x1, high2), pairSums2(x0, low3, x1, high3), offsets);
  } else {
    const sums = rowSums4(dotUnsigned2(x0, low0, x1, high0), dotUnsigned2(x0, low1, x1, high1), dotUnsigned2(x0, low2, x1, high2), dotUnsigned2(x0, low3, x1, high3));
    s = i32x4.add(sums, blockOffset(type, o));
  }
  return madd(f32x4.convert_i32x4_s(s), f32x4.mul(dw, f32x4.splat(dx)), acc);
}

/**
 * Rows at w, w + rb, w + 2·rb, w + 3·rb (nb blocks each) · nt (1 or 4, a constant where inlined) activation rows at
 * x + t·xStride → out + t·outStride + k·laneStride for row k (laneStride 0: one row, rb 0).
 */
@inline function rows4(type: i32, w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, nt: i32, laneStride: usize): void {
  const blockBytes: usize = type == Q8_0 ? 34 : type == Q5_0 ? 22 : 18;
  const qBytes: usize = type == Q8_0 || type == IQ4_NL ? 64 : 32; // activation bytes per block
  const dAt = x + <usize>nb * qBytes, sumAt = dAt + (<usize>nb << 2); // the activation's d [nb] f32 (and offsets [nb] i32)
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const nibbles = nibbleMask(); // in a register (see CONSTANTS)
  for (let b = 0; b < nb; b++) {
    const dw = scales4(w, rb);
    const xb = x + <usize>b * qBytes, db = dAt + (<usize>b << 2), sb = sumAt + (<usize>b << 2);
    if (type == Q8_0) {
      a0 = q8_0Token(a0, w, rb, xb, dw, load<f32>(db));
      if (nt == 4) {
        a1 = q8_0Token(a1, w, rb, xb + xStride, dw, load<f32>(db + xStride));
        a2 = q8_0Token(a2, w, rb, xb + 2 * xStride, dw, load<f32>(db + 2 * xStride));
        a3 = q8_0Token(a3, w, rb, xb + 3 * xStride, dw, load<f32>(db + 3 * xStride));
      }
    } else if (type == IQ4_NL) {
      const q0 = v128.load(w + 2), q1 = v128.load(w + rb + 2), q2 = v128.load(w + 2 * rb + 2), q3 = v128.load(w + 3 * rb + 2);
      const l0 = iq4Levels(q0, false), h0 = iq4Levels(q0, true), l1 = iq4Levels(q1, false), h1 = iq4Levels(q1, true);
      const l2 = iq4Levels(q2, false), h2 = iq4Levels(q2, true), l3 = iq4Levels(q3, false), h3 = iq4Levels(q3, true);
      a0 = levelsToken(a0, xb, dw, load<f32>(db), l0, h0, l1, h1, l2, h2, l3, h3);
      if (nt == 4) {
        a1 = levelsToken(a1, xb + xStride, dw, load<f32>(db + xStride), l0, h0, l1, h1, l2, h2, l3, h3);
        a2 = levelsToken(a2, xb + 2 * xStride, dw, load<f32>(db + 2 * xStride), l0, h0, l1, h1, l2, h2, l3, h3);
        a3 = levelsToken(a3, xb + 3 * xStride, dw, load<f32>(db + 3 * xStride), l0, h0, l1, h1, l2, h2, l3, h3);
      }
    } else {
      const l0 = nibbleValuesLow(type, w, nibbles), h0 = nibbleValuesHigh(type, w, nibbles);
      const l1 = nibbleValuesLow(type, w + rb, nibbles), h1 = nibbleValuesHigh(type, w + rb, nibbles);
      const l2 = nibbleValuesLow(type, w + 2 * rb, nibbles), h2 = nibbleValuesHigh(type, w + 2 * rb, nibbles);
      const l3 = nibbleValuesLow(type, w + 3 * rb, nibbles), h3 = nibbleValuesHigh(type, w + 3 * rb, nibbles);
      a0 = nibbleToken(type, a0, xb, sb, dw, load<f32>(db), l0, h0, l1, h1, l2, h2, l3, h3);
      if (nt == 4) {
        a1 = nibbleToken(type, a1, xb + xStride, sb + xStride, dw, load<f32>(db + xStride), l0, h0, l1, h1, l2, h2, l3, h3);
        a2 = nibbleToken(type, a2, xb + 2 * xStride, sb + 2 * xStride, dw, load<f32>(db + 2 * xStride), l0, h0, l1, h1, l2, h2, l3, h3);
        a3 = nibbleToken(type, a3, xb + 3 * xStride, sb + 3 * xStride, dw, load<f32>(db + 3 * xStride), l0, h0, l1, h1, l2, h2, l3, h3);
      }
    }
    w += blockBytes;
  }
  storeRows(out, a0, laneStride);
  if (nt == 4) {
    storeRows(out + outStride, a1, laneStride);
    storeRows(out + 2 * outStride, a2, laneStride);
    storeRows(out + 3 * outStride, a3, laneStride);
  }
}

// rows4 made once per type and token count (with the type a variable, every block paid for the type tests)
function rows4Q8_0(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(Q8_0, w, rb, x, xStride, nb, out, outStride, 1, laneStride); }
function rows4Q4_0(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(Q4_0, w, rb, x, xStride, nb, out, outStride, 1, laneStride); }
function rows4Q5_0(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(Q5_0, w, rb, x, xStride, nb, out, outStride, 1, laneStride); }
function rows4IQ4_NL(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(IQ4_NL, w, rb, x, xStride, nb, out, outStride, 1, laneStride); }
function rows4Q8_0x4(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(Q8_0, w, rb, x, xStride, nb, out, outStride, 4, laneStride); }
function rows4Q4_0x4(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(Q4_0, w, rb, x, xStride, nb, out, outStride, 4, laneStride); }
function rows4Q5_0x4(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(Q5_0, w, rb, x, xStride, nb, out, outStride, 4, laneStride); }
function rows4IQ4_NLx4(w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void { rows4(IQ4_NL, w, rb, x, xStride, nb, out, outStride, 4, laneStride); }

/** rows4 of `type` for nt = 1 or 4 tokens. */
@inline export function rows4Of(type: i32, nt: i32, w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void {
  switch (type) {
    case Q8_0: if (nt == 4) rows4Q8_0x4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4Q8_0(w, rb, x, xStride, nb, out, outStride, laneStride); break;
    case Q4_0: if (nt == 4) rows4Q4_0x4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4Q4_0(w, rb, x, xStride, nb, out, outStride, laneStride); break;
    case Q5_0: if (nt == 4) rows4Q5_0x4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4Q5_0(w, rb, x, xStride, nb, out, outStride, laneStride); break;
    default: if (nt == 4) rows4IQ4_NLx4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4IQ4_NL(w, rb, x, xStride, nb, out, outStride, laneStride);
  }
}
