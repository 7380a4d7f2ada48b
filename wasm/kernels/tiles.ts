// Prefill kernels, several tokens per weight row: Q8_0/IQ4_NL rows widened to int16, Q4_0/Q5_0/Q4_K/Q6_K rows packed,
// 4-token tiles of the K-quants and IQ4_XS, and the f32 GEMM of float weights.

import { F16, F32, IQ4_NL, Q4_0, Q4_K, Q5_0, Q5_K, Q6_K, Q8_0, RELAXED, hsum, loadF16 } from './common';
import { dotUnsigned, highNibbles, iq4Levels, iq4Magnitudes, iq4Negative, lowNibbles, madd, nibbles, scales4, storeRows, widenF16 } from './simd';
import { blockOffset, nibbleValuesHigh, nibbleValuesLow } from './dot-legacy';
import { iq4_XSScale, iq4_XSSubBlock, kPair, minsDotBsums, q5_KFifth, scalesMinsK4 } from './dot-kquants';

// ---- Q8_0 and IQ4_NL times several tokens: four rows widened to int16 once per token tile ------------------------
//
// widenRows4 writes four weight rows (Q8_0's values, or IQ4_NL's levels) into scratch as int16, each block as 16
// vectors of value pairs
//   vector v = [row0 (q_2v, q_2v+1), row1 (q_2v, q_2v+1), row2 (…), row3 (…)]
// then the rows' d as f32x4 (WIDE_BLOCK bytes per block). i32x4.dot_i16x8_s of vector v with a token's pair
// (x_2v, x_2v+1) splat to all lanes adds that pair's products to every row's lane, so a block's four row sums come out
// in one vector: no sign transfer (both operands are signed) and no per-token transposition, as the 4-row kernels
// need. The integer sums are the exact ones of ggml; widening costs once per row and token tile, not per token.

const WIDE_BLOCK: usize = 272;
/** The fewest tokens for which matmul widens rows (fewer go through the 4-row kernels, faster below this). */
export const WIDE_TOKENS: i32 = 8;

/** Four rows' vectors, their i32 lanes transposed: dst + 16·v = [a_v, b_v, c_v, d_v], v = 0…3. */
@inline function storeLanesTransposed(a: v128, b: v128, c: v128, d: v128, dst: usize): void {
  const ab01 = v128.shuffle<i32>(a, b, 0, 4, 1, 5), ab23 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
  const cd01 = v128.shuffle<i32>(c, d, 0, 4, 1, 5), cd23 = v128.shuffle<i32>(c, d, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<i64>(ab01, cd01, 0, 2));
  v128.store(dst + 16, v128.shuffle<i64>(ab01, cd01, 1, 3));
  v128.store(dst + 32, v128.shuffle<i64>(ab23, cd23, 0, 2));
  v128.store(dst + 48, v128.shuffle<i64>(ab23, cd23, 1, 3));
}

/** Values 0–15 (half 0) or 16–31 (half 1) of the Q8_0 or IQ4_NL block at w as int8. */
@inline function int8Values(type: i32, w: usize, half: usize): v128 {
  if (type == Q8_0) return v128.load(w + 2 + (half << 4));
  return iq4Levels(v128.load(w + 2), half != 0);
}

/** Q8_0 or IQ4_NL rows at w, w + rb, w + 2·rb, w + 3·rb (nb blocks each; rb 0: one row, repeated) → dst, widened as above. */
function widenRows4(type: i32, w: usize, rb: usize, nb: i32, dst: usize): void {
  const blockBytes: usize = type == Q8_0 ? 34 : 18;
  for (let b = 0; b < nb; b++) {
    for (let half: usize = 0; half < 2; half++) { // values 0–15, 16–31
      const at = dst + (half << 7);
      const q0 = int8Values(type, w, half), q1 = int8Values(type, w + rb, half), q2 = int8Values(type, w + 2 * rb, half), q3 = int8Values(type, w + 3 * rb, half);
      storeLanesTransposed(i16x8.extend_low_i8x16_s(q0), i16x8.extend_low_i8x16_s(q1), i16x8.extend_low_i8x16_s(q2), i16x8.extend_low_i8x16_s(q3), at);
      storeLanesTransposed(i16x8.extend_high_i8x16_s(q0), i16x8.extend_high_i8x16_s(q1), i16x8.extend_high_i8x16_s(q2), i16x8.extend_high_i8x16_s(q3), at + 64);
    }
    v128.store(dst + 256, scales4(w, rb));
    w += blockBytes;
    dst += WIDE_BLOCK;
  }
}

/** s + the four rows' products with four value pairs of a token (its eight int16 values at x; the rows' in w0…w3). */
@inline function widePairs4(s: v128, w0: v128, w1: v128, w2: v128, w3: v128, x: usize): v128 {
  const p01 = i32x4.add(i32x4.dot_i16x8_s(w0, v128.load32_splat(x)), i32x4.dot_i16x8_s(w1, v128.load32_splat(x, 4)));
  const p23 = i32x4.add(i32x4.dot_i16x8_s(w2, v128.load32_splat(x, 8)), i32x4.dot_i16x8_s(w3, v128.load32_splat(x, 12)));
  return i32x4.add(s, i32x4.add(p01, p23));
}

/**
 * One step of a block: the four rows' next four value pairs (vectors at w) times each token's (int16 values at x0…x3),
 * added to the tokens' block sums at sums (i32x4 each). The sums stay in memory: each store keeps the engine from
 * loading every step's values up front, which would spill registers.
 */
@inline function wideStep(w: usize, x0: usize, x1: usize, x2: usize, x3: usize, sums: usize): void {
  const w0 = v128.load(w), w1 = v128.load(w, 16), w2 = v128.load(w, 32), w3 = v128.load(w, 48);
  v128.store(sums, widePairs4(v128.load(sums), w0, w1, w2, w3, x0));
  v128.store(sums, widePairs4(v128.load(sums, 16), w0, w1, w2, w3, x1), 16);
  v128.store(sums, widePairs4(v128.load(sums, 32), w0, w1, w2, w3, x2), 32);
  v128.store(sums, widePairs4(v128.load(sums, 48), w0, w1, w2, w3, x3), 48);
}

/** The f32 accumulator at acc + (d_w · d_x)·s (s: a block's integer sums of four rows, dw their d, dx the token's). */
@inline function wideScaleInto(acc: usize, s: v128, dw: v128, dx: f32): void {
  v128.store(acc, madd(f32x4.convert_i32x4_s(s), f32x4.mul(dw, f32x4.splat(dx)), v128.load(acc)));
}

/**
 * Four widened rows (at wide, nb blocks) · four tokens' Q8_0_WIDE rows at x, x1, x2, x3 (only the first nt are real;
 * the others repeat one) → out + t·outStride, row k at + k·laneStride (laneStride 0: a single row, lane 0).
 * wide is followed by 128 bytes for the block sums and the f32 accumulators (in memory, see wideStep).
 */
function wideTokens4(wide: usize, nb: i32, x: usize, x1: usize, x2: usize, x3: usize, out: usize, outStride: usize, laneStride: usize, nt: i32): void {
  const dAt = <usize>nb << 6; // the tokens' d [nb] f32 follow their values
  const sums = wide + <usize>nb * WIDE_BLOCK, acc = sums + 64; // [4] i32x4, [4] f32x4
  const zero = f32x4.splat(0);
  v128.store(acc, zero); v128.store(acc, zero, 16); v128.store(acc, zero, 32); v128.store(acc, zero, 48);
  for (let b = 0; b < nb; b++) {
    const wb = wide + <usize>b * WIDE_BLOCK, xb = <usize>b << 6;
    v128.store(sums, zero); v128.store(sums, zero, 16); v128.store(sums, zero, 32); v128.store(sums, zero, 48);
    wideStep(wb, x + xb, x1 + xb, x2 + xb, x3 + xb, sums); // value pairs 0–3
    wideStep(wb + 64, x + xb + 16, x1 + xb + 16, x2 + xb + 16, x3 + xb + 16, sums);
    wideStep(wb + 128, x + xb + 32, x1 + xb + 32, x2 + xb + 32, x3 + xb + 32, sums);
    wideStep(wb + 192, x + xb + 48, x1 + xb + 48, x2 + xb + 48, x3 + xb + 48, sums);
    const dw = v128.load(wb + 256), db = dAt + (<usize>b << 2);
    wideScaleInto(acc, v128.load(sums), dw, load<f32>(x + db));
    wideScaleInto(acc + 16, v128.load(sums, 16), dw, load<f32>(x1 + db));
    wideScaleInto(acc + 32, v128.load(sums, 32), dw, load<f32>(x2 + db));
    wideScaleInto(acc + 48, v128.load(sums, 48), dw, load<f32>(x3 + db));
  }
  storeRows(out, v128.load(acc), laneStride);
  if (nt > 1) storeRows(out + outStride, v128.load(acc, 16), laneStride);
  if (nt > 2) storeRows(out + 2 * outStride, v128.load(acc, 32), laneStride);
  if (nt > 3) storeRows(out + 3 * outStride, v128.load(acc, 48), laneStride);
}

/** Four Q8_0 or IQ4_NL rows (rb apart; rb 0: one row) · tokens t0…t1−1 of act (Q8_0_WIDE), the rows widened into scratch first. */
@inline export function wideRowsTokens(type: i32, row: usize, rb: usize, act: usize, actStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize, t0: i32, t1: i32, scratch: usize): void {
  widenRows4(type, row, rb, nb, scratch);
  for (let t = t0; t < t1; t += 4) {
    const nt = min(4, t1 - t), x = act + <usize>t * actStride;
    wideTokens4(scratch, nb, x, tileRow(x, actStride, 1, nt), tileRow(x, actStride, 2, nt), tileRow(x, actStride, 3, nt), out + <usize>t * outStride, outStride, laneStride, nt);
  }
}

// ---- Q4_0 and Q5_0 times several tokens: four rows' values interleaved once per token tile -----------------------
//
// packRows4 writes four weight rows into scratch with each block as 8 vectors of value quads
//   vector v = [row0 (q_4v … q_4v+3), row1 (…), row2 (…), row3 (…)]   (unsigned: nibbles 0…15, Q5_0 0…31)
// then the rows' d as f32x4 (PACKED_BLOCK bytes per block). The int8 dot of vector v with a token's quad
// (x_4v … x_4v+3) splat to all lanes gives each row's two pair sums in int16. Added up in int16 over half a block (8
// products per lane, |Σ| ≤ 8·127·31 < 2^15; Q4_0 over a whole block, 16·127·15) and widened once, lanes 2k, 2k+1 hold
// row k's Σ q·x. Then, as in nibbleToken, Σ (q − offset)·x = Σ q·x − offset·Σx, exactly (the token's block offsets).

const PACKED_BLOCK: usize = 144;
/** The fewest tokens for which matmul packs Q4_0/Q5_0 rows (fewer go through the 4-row kernels; relaxed build only). */
export const PACKED_TOKENS: i32 = 4;

/** Q4_0/Q5_0 rows at w, w + rb, w + 2·rb, w + 3·rb (nb blocks each; rb 0: one row, repeated) → dst, packed as above. */
function packRows4(type: i32, w: usize, rb: usize, nb: i32, dst: usize): void {
  const blockBytes: usize = type == Q4_0 ? 18 : 22;
  for (let b = 0; b < nb; b++) {
    storeLanesTransposed(nibbleValuesLow(type, w), nibbleValuesLow(type, w + rb), nibbleValuesLow(type, w + 2 * rb), nibbleValuesLow(type, w + 3 * rb), dst);
    storeLanesTransposed(nibbleValuesHigh(type, w), nibbleValuesHigh(type, w + rb), nibbleValuesHigh(type, w + 2 * rb), nibbleValuesHigh(type, w + 3 * rb), dst + 64);
    v128.store(dst + 128, scales4(w, rb));
    w += blockBytes;
    dst += PACKED_BLOCK;
  }
}

/** int16 pair sums of x (int8) and q (0…127) lane by lane (relaxed build only: the SIMD128 build never packs). */
@inline function pairSums(x: v128, q: v128): v128 {
  if (RELAXED) return i16x8.relaxed_dot_i8x16_i7x16_s(x, q);
  return unreachable();
}

/** The four rows' int16 pair sums over four value quads (vectors at w) with a token's quads (int8 at x). */
@inline function quads4(w: usize, x: usize): v128 {
  const s01 = i16x8.add(pairSums(v128.load32_splat(x), v128.load(w)), pairSums(v128.load32_splat(x, 4), v128.load(w, 16)));
  const s23 = i16x8.add(pairSums(v128.load32_splat(x, 8), v128.load(w, 32)), pairSums(v128.load32_splat(x, 12), v128.load(w, 48)));
  return i16x8.add(s01, s23);
}

/**
 * Four packed rows (at packed, nb blocks) · one token's Q8_0_SUMS row at x → out, row k at out + k·laneStride
 * (laneStride 0: a single row, lane 0). order: 16 bytes of scratch, where each block's first half is stored so that the
 * engine does not load the second half's values up front (which spills registers).
 */
@inline function packedToken(type: i32, packed: usize, nb: i32, x: usize, out: usize, laneStride: usize, order: usize): void {
  let d = x + (<usize>nb << 5); // the token's d [nb] f32, then its block offsets [nb] i32
  const end = d;
  let acc = f32x4.splat(0);
  for (; x < end; x += 32) {
    const low = quads4(packed, x); // values 0–15
    v128.store(order, low);
    const high = quads4(packed + 64, x + 16); // values 16–31
    const qx = type == Q4_0 ? i32x4.extadd_pairwise_i16x8_s(i16x8.add(low, high)) : i32x4.add(i32x4.extadd_pairwise_i16x8_s(low), i32x4.extadd_pairwise_i16x8_s(high));
    const s = i32x4.add(qx, blockOffset(type, d + (<usize>nb << 2)));
    acc = madd(f32x4.convert_i32x4_s(s), f32x4.mul(v128.load(packed + 128), f32x4.splat(load<f32>(d))), acc);
    packed += PACKED_BLOCK;
    d += 4;
  }
  storeRows(out, acc, laneStride);
}

function packedTokenQ4_0(packed: usize, nb: i32, x: usize, out: usize, laneStride: usize, order: usize): void {
  packedToken(Q4_0, packed, nb, x, out, laneStride, order);
}

function packedTokenQ5_0(packed: usize, nb: i32, x: usize, out: usize, laneStride: usize, order: usize): void {
  packedToken(Q5_0, packed, nb, x, out, laneStride, order);
}

// Q4_K the same way, per super-block of 256 values (PACKED_K_BLOCK bytes): 64 vectors of value quads (sub-block j's
// quads u = 0…7 at 8·j + u), then per sub-block j the rows' scales as int16 pairs [sc_r0,j (twice), sc_r1,j (twice), …]
// (SC), the rows' mins the same way (MN), and the rows' d and dmin as f32x4. A sub-block's pair sums (int16, 16
// products per lane, |Σ| ≤ 16·127·15) times its scales through i32x4.dot_i16x8_s give each row's sc_j·Σ q·x; the mins times the token's two
// bsums of the sub-block (splat) give m_j·Σx the same way. value = d·sc_j·q − dmin·m_j, as in dotQ4_K.
const PACKED_K_BLOCK: usize = 1312, PK_SC: usize = 1024, PK_MN: usize = 1152, PK_D: usize = 1280, PK_DMIN: usize = 1296;
/** The fewest tokens for which matmul packs Q4_K rows (fewer go through tileQ4_K; relaxed build only). */
export const PACKED_K_TOKENS: i32 = 8;

/** Q4_K rows at w, w + rb, w + 2·rb, w + 3·rb (nb super-blocks each; rb 0: one row, repeated) → dst, packed as above. */
function packRows4Q4_K(w: usize, rb: usize, nb: i32, dst: usize, unpacked: usize): void {
  for (let b = 0; b < nb; b++) {
    for (let j: usize = 0; j < 16; j++) { // sub-block j >> 1, its values 0–15 (j even) or 16–31
      // sub-block i: low nibbles (i even) or high nibbles of bytes 32·(i >> 1) …
      const high = (j & 2) != 0, q = w + 16 + ((j >> 2) << 5) + ((j & 1) << 4);
      storeLanesTransposed(nibbles(v128.load(q), high), nibbles(v128.load(q + rb), high), nibbles(v128.load(q + 2 * rb), high), nibbles(v128.load(q + 3 * rb), high), dst + (j << 6));
    }
    for (let r: usize = 0; r < 4; r++) {
      v128.store(unpacked, scalesMinsK4(w + r * rb + 4));
      for (let j: usize = 0; j < 8; j++) {
        const sc = <u32>load<u8>(unpacked + j), m = <u32>load<u8>(unpacked + 8 + j);
        store<u32>(dst + PK_SC + (j << 4) + (r << 2), sc | (sc << 16));
        store<u32>(dst + PK_MN + (j << 4) + (r << 2), m | (m << 16));
      }
    }
    v128.store(dst + PK_D, scales4(w, rb));
    v128.store(dst + PK_DMIN, scales4(w + 2, rb));
    w += 144;
    dst += PACKED_K_BLOCK;
  }
}

/** Four packed Q4_K rows (nb super-blocks) · one token's Q8_K row at x → out, as packedToken (order: 16 bytes). */
function packedTokenQ4_K(packed: usize, nb: i32, x: usize, out: usize, laneStride: usize, order: usize): void {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let isum = i32x4.splat(0), mins = i32x4.splat(0);
    for (let j: usize = 0; j < 8; j++) {
      const w = packed + (j << 7), xq = x + 4 + (j << 5);
      const low = quads4(w, xq);
      v128.store(order, low);
      const pairs = i16x8.add(low, quads4(w + 64, xq + 16));
      isum = i32x4.add(isum, i32x4.dot_i16x8_s(pairs, v128.load(packed + PK_SC + (j << 4))));
      mins = i32x4.add(mins, i32x4.dot_i16x8_s(v128.load(packed + PK_MN + (j << 4)), v128.load32_splat(x + 260 + (j << 2))));
      v128.store(order, isum);
    }
    const dx = f32x4.splat(load<f32>(x));
    acc = madd(f32x4.convert_i32x4_s(isum), f32x4.mul(v128.load(packed + PK_D), dx), acc);
    acc = f32x4.sub(acc, f32x4.mul(f32x4.convert_i32x4_s(mins), f32x4.mul(v128.load(packed + PK_DMIN), dx)));
    packed += PACKED_K_BLOCK;
    x += 292;
  }
  storeRows(out, acc, laneStride);
}

/** The i32 sums at isums (8 × i32x4, as the f32 ones at acc) += a Q4_K sub-block's int16 pair sums sK times its scales sc (the rows r…, r+4…). */
@inline function q4_KScaleInto8(isums: usize, scA: v128, scB: v128, s0: v128, s1: v128, s2: v128, s3: v128, s4: v128, s5: v128, s6: v128, s7: v128): void {
  v128.store(isums, i32x4.add(v128.load(isums), i32x4.dot_i16x8_s(s0, scA)));
  v128.store(isums, i32x4.add(v128.load(isums, 16), i32x4.dot_i16x8_s(s1, scB)), 16);
  v128.store(isums, i32x4.add(v128.load(isums, 32), i32x4.dot_i16x8_s(s2, scA)), 32);
  v128.store(isums, i32x4.add(v128.load(isums, 48), i32x4.dot_i16x8_s(s3, scB)), 48);
  v128.store(isums, i32x4.add(v128.load(isums, 64), i32x4.dot_i16x8_s(s4, scA)), 64);
  v128.store(isums, i32x4.add(v128.load(isums, 80), i32x4.dot_i16x8_s(s5, scB)), 80);
  v128.store(isums, i32x4.add(v128.load(isums, 96), i32x4.dot_i16x8_s(s6, scA)), 96);
  v128.store(isums, i32x4.add(v128.load(isums, 112), i32x4.dot_i16x8_s(s7, scB)), 112);
}

/**
 * acc (two f32x4 sums of one token, its Q8_K super-block at x) += d_w·d_x·Σ sc·q·x − dmin_w·d_x·Σ m·bsum for the
 * super-block of packed rows at pa (rows r…) and pb (rows r+4…), their scaled integer sums at isums (two i32x4).
 */
@inline function q4_KInto8(acc: usize, isums: usize, pa: usize, pb: usize, x: usize): void {
  let mA = i32x4.splat(0), mB = mA;
  for (let j: usize = 0; j < 8; j++) {
    const bsums = v128.load32_splat(x + 260 + (j << 2));
    mA = i32x4.add(mA, i32x4.dot_i16x8_s(v128.load(pa + PK_MN + (j << 4)), bsums));
    mB = i32x4.add(mB, i32x4.dot_i16x8_s(v128.load(pb + PK_MN + (j << 4)), bsums));
  }
  const dx = v128.load32_splat(x);
  v128.store(acc, f32x4.sub(madd(f32x4.convert_i32x4_s(v128.load(isums)), f32x4.mul(v128.load(pa + PK_D), dx), v128.load(acc)), f32x4.mul(f32x4.convert_i32x4_s(mA), f32x4.mul(v128.load(pa + PK_DMIN), dx))));
  v128.store(acc, f32x4.sub(madd(f32x4.convert_i32x4_s(v128.load(isums, 16)), f32x4.mul(v128.load(pb + PK_D), dx), v128.load(acc, 16)), f32x4.mul(f32x4.convert_i32x4_s(mB), f32x4.mul(v128.load(pb + PK_DMIN), dx))), 16);
}

// Q6_K the same way, per super-block (PACKED_6_BLOCK bytes): 64 vectors of value quads (unsigned 0…63; sub-block g's
// quads u = 0…3 at 4·g + u), then per sub-block g the rows' scales as int16 pairs [sc_r0,g (twice), sc_r1,g (twice), …]
// (P6_SC), per pair of sub-blocks j the rows' 32·scale of sub-blocks 2j and 2j+1 as int16 pairs (P6_C: the −32 offset
// times the token's two bsums, splat), and the rows' d as f32x4. A sub-block's pair sums are added in int16 two quads
// at a time (|Σ| ≤ 4·127·63 < 2^15) and multiplied by the scales through i32x4.dot_i16x8_s, as in q6_KTokenBlock.
const PACKED_6_BLOCK: usize = 1424, P6_SC: usize = 1024, P6_C: usize = 1280, P6_D: usize = 1408;
/** Bytes of unpackQ6_K's layout per row (the rows are unpacked there before they are interleaved). */
const UNPACKED_6: usize = 368;

/** Q6_K rows at w, w + rb, w + 2·rb, w + 3·rb (nb super-blocks each; rb 0: one row, repeated) → dst, packed as above. */
function packRows4Q6_K(w: usize, rb: usize, nb: i32, dst: usize, unpacked: usize): void {
  const u1 = unpacked + UNPACKED_6, u2 = u1 + UNPACKED_6, u3 = u2 + UNPACKED_6;
  for (let b = 0; b < nb; b++) {
    unpackQ6_K(w, unpacked);
    unpackQ6_K(w + rb, u1);
    unpackQ6_K(w + 2 * rb, u2);
    unpackQ6_K(w + 3 * rb, u3);
    for (let g: usize = 0; g < 16; g++) {
      const q = UQ + (g << 4), sc = US + (g << 2);
      storeLanesTransposed(v128.load(unpacked + q), v128.load(u1 + q), v128.load(u2 + q), v128.load(u3 + q), dst + (g << 6));
      store<u32>(dst + P6_SC + (g << 4), load<u32>(unpacked + sc));
      store<u32>(dst + P6_SC + (g << 4), load<u32>(u1 + sc), 4);
      store<u32>(dst + P6_SC + (g << 4), load<u32>(u2 + sc), 8);
      store<u32>(dst + P6_SC + (g << 4), load<u32>(u3 + sc), 12);
    }
    for (let j: usize = 0; j < 8; j++) {
      const c = UC + (j << 2); // c_2j, c_2j+1 (int16 each)
      store<u32>(dst + P6_C + (j << 4), load<u32>(unpacked + c));
      store<u32>(dst + P6_C + (j << 4), load<u32>(u1 + c), 4);
      store<u32>(dst + P6_C + (j << 4), load<u32>(u2 + c), 8);
      store<u32>(dst + P6_C + (j << 4), load<u32>(u3 + c), 12);
    }
    v128.store(dst + P6_D, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(unpacked + UD)), 1, load<f32>(u1 + UD)), 2, load<f32>(u2 + UD)), 3, load<f32>(u3 + UD)));
    w += 210;
    dst += PACKED_6_BLOCK;
  }
}

/** The four rows' int16 pair sums over two value quads (vectors at w) with a token's quads (int8 at x). */
@inline function quads2(w: usize, x: usize): v128 {
  return i16x8.add(pairSums(v128.load32_splat(x), v128.load(w)), pairSums(v128.load32_splat(x, 4), v128.load(w, 16)));
}

/** Four packed Q6_K rows (nb super-blocks) · one token's Q8_K row at x → out, as packedToken (order: 16 bytes). */
function packedTokenQ6_K(packed: usize, nb: i32, x: usize, out: usize, laneStride: usize, order: usize): void {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let isum = i32x4.splat(0);
    for (let g: usize = 0; g < 16; g++) {
      const w = packed + (g << 6), xq = x + 4 + (g << 4), sc = v128.load(packed + P6_SC + (g << 4));
      isum = i32x4.add(isum, i32x4.add(i32x4.dot_i16x8_s(quads2(w, xq), sc), i32x4.dot_i16x8_s(quads2(w + 32, xq + 8), sc)));
      v128.store(order, isum);
    }
    let corr = i32x4.splat(0);
    for (let j: usize = 0; j < 8; j++) corr = i32x4.add(corr, i32x4.dot_i16x8_s(v128.load(packed + P6_C + (j << 4)), v128.load32_splat(x + 260 + (j << 2))));
    acc = madd(f32x4.convert_i32x4_s(i32x4.sub(isum, corr)), f32x4.mul(v128.load(packed + P6_D), f32x4.splat(load<f32>(x))), acc);
    packed += PACKED_6_BLOCK;
    x += 292;
  }
  storeRows(out, acc, laneStride);
}

/**
 * Four Q4_0/Q5_0/Q4_K/Q6_K rows (rb apart; rb 0: one row) · tokens t0…t1−1 of act (Q8_0_SUMS; the K-quants: Q8_K), the
 * rows packed into scratch first: [packed rows | 16 bytes (order) | Q4_K: 16 bytes, Q6_K: 4 unpacked rows].
 */
@inline export function packedRowsTokens(type: i32, row: usize, rb: usize, act: usize, actStride: usize, nIn: i32, out: usize, outStride: usize, laneStride: usize, t0: i32, t1: i32, scratch: usize): void {
  const kQuant = type == Q4_K || type == Q6_K;
  const nb = kQuant ? nIn >> 8 : nIn >> 5;
  const order = scratch + <usize>nb * (type == Q4_K ? PACKED_K_BLOCK : type == Q6_K ? PACKED_6_BLOCK : PACKED_BLOCK);
  if (type == Q4_K) packRows4Q4_K(row, rb, nb, scratch, order);
  else if (type == Q6_K) packRows4Q6_K(row, rb, nb, scratch, order + 16);
  else packRows4(type, row, rb, nb, scratch);
  for (let t = t0; t < t1; t++) {
    const x = act + <usize>t * actStride, o = out + <usize>t * outStride;
    if (type == Q4_0) packedTokenQ4_0(scratch, nb, x, o, laneStride, order);
    else if (type == Q5_0) packedTokenQ5_0(scratch, nb, x, o, laneStride, order);
    else if (type == Q6_K) packedTokenQ6_K(scratch, nb, x, o, laneStride, order);
    else packedTokenQ4_K(scratch, nb, x, o, laneStride, order);
  }
}

// ---- eight rows × four tokens in registers (Q8_0, IQ4_NL widened; Q4_0 packed) ---------------------------------
//
// Two 4-row layouts (rows r…r+3 at a, r+4…r+7 at b, made as above) are read side by side: each token pair (quad) that
// is splat feeds both layouts' vectors and each weight vector feeds four tokens, so a step issues 8 integer dots for 6
// loads (wideTokens4 and packedToken: 1 dot per 2 loads, the sums kept in memory). The eight integer sums of a block
// (2 layouts × 4 tokens) stay in registers; the f32 sums at acc (token t: rows r… at 32t, rows r+4… at 32t + 16) are
// loaded and stored once per block. A step loads 6 vectors, so V8 keeps them and the 8 sums in registers.

/** Zeroes the eight f32 sums at acc. */
@inline function zeroSums8(acc: usize): void {
  const zero = f32x4.splat(0);
  for (let k: usize = 0; k < 128; k += 16) v128.store(acc + k, zero);
}

/** The nt tokens' eight row sums at acc → out + t·outStride (eight adjacent outputs each). */
@inline function storeSums8(acc: usize, out: usize, outStride: usize, nt: i32): void {
  for (let t = 0; t < nt; t++) {
    const o = out + <usize>t * outStride, a = acc + (<usize>t << 5);
    v128.store(o, v128.load(a));
    v128.store(o, v128.load(a, 16), 16);
  }
}

/** acc (two f32x4 sums of one token) += (d_w · d_x)·s for a block's integer sums sa (rows r…), sb (rows r+4…). */
@inline function scaleInto8(acc: usize, sa: v128, sb: v128, da: v128, db: v128, dx: v128): void {
  v128.store(acc, madd(f32x4.convert_i32x4_s(sa), f32x4.mul(da, dx), v128.load(acc)));
  v128.store(acc, madd(f32x4.convert_i32x4_s(sb), f32x4.mul(db, dx), v128.load(acc, 16)), 16);
}

/** Widened rows at a and b (nb blocks each) · four tokens' Q8_0_WIDE rows x0…x3 → out (first nt tokens); acc: 128 bytes. */
function wideTokens8x4(a: usize, b: usize, nb: i32, x0: usize, x1: usize, x2: usize, x3: usize, out: usize, outStride: usize, nt: i32, acc: usize): void {
  const dAt = <usize>nb << 6; // the tokens' d [nb] f32 follow their values
  zeroSums8(acc);
  for (let blk = 0; blk < nb; blk++) {
    const wa = a + <usize>blk * WIDE_BLOCK, wb = b + <usize>blk * WIDE_BLOCK, xb = <usize>blk << 6;
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    // value pair k: vector k of each layout, each token's int16 pair at xb + 4k (running pointers, see packedTokens8x4)
    let pa = wa, pb = wb, p0 = x0 + xb, p1 = x1 + xb, p2 = x2 + xb, p3 = x3 + xb;
    for (const end = p0 + 64; p0 < end; pa += 16, pb += 16, p0 += 4, p1 += 4, p2 += 4, p3 += 4) {
      const va = v128.load(pa), vb = v128.load(pb);
      let q = v128.load32_splat(p0);
      s0 = i32x4.add(s0, i32x4.dot_i16x8_s(va, q)); s1 = i32x4.add(s1, i32x4.dot_i16x8_s(vb, q));
      q = v128.load32_splat(p1);
      s2 = i32x4.add(s2, i32x4.dot_i16x8_s(va, q)); s3 = i32x4.add(s3, i32x4.dot_i16x8_s(vb, q));
      q = v128.load32_splat(p2);
      s4 = i32x4.add(s4, i32x4.dot_i16x8_s(va, q)); s5 = i32x4.add(s5, i32x4.dot_i16x8_s(vb, q));
      q = v128.load32_splat(p3);
      s6 = i32x4.add(s6, i32x4.dot_i16x8_s(va, q)); s7 = i32x4.add(s7, i32x4.dot_i16x8_s(vb, q));
    }
    const da = v128.load(wa + 256), db = v128.load(wb + 256), d = dAt + (<usize>blk << 2);
    scaleInto8(acc, s0, s1, da, db, v128.load32_splat(x0 + d));
    scaleInto8(acc + 32, s2, s3, da, db, v128.load32_splat(x1 + d));
    scaleInto8(acc + 64, s4, s5, da, db, v128.load32_splat(x2 + d));
    scaleInto8(acc + 96, s6, s7, da, db, v128.load32_splat(x3 + d));
  }
  storeSums8(acc, out, outStride, nt);
}

/**
 * acc (two f32x4 sums of one token, its Q8_0_SUMS row at x) += (d_w · d_x)·Σ (q − offset)·x for a Q4_0 (offset 8)
 * or Q5_0 (16) block: its int16 pair sums sa, sb — Q4_0's began at the token's block offsets, so they are
 * Σ (q − 8)·x already; Q5_0's are Σ q·x of the second half, to which the first half's (i32 at isums) and
 * −16·Σx are added.
 */
@inline function nibbleInto8(type: i32, acc: usize, sa: v128, sb: v128, isums: usize, da: v128, db: v128, x: usize, d: usize, offsets: usize): void {
  const dx = v128.load32_splat(x + d);
  let qa = i32x4.extadd_pairwise_i16x8_s(sa), qb = i32x4.extadd_pairwise_i16x8_s(sb);
  if (type == Q5_0) {
    const offset = blockOffset(Q5_0, x + offsets);
    qa = i32x4.add(i32x4.add(qa, v128.load(isums)), offset);
    qb = i32x4.add(i32x4.add(qb, v128.load(isums, 16)), offset);
  }
  scaleInto8(acc, qa, qb, da, db, dx);
}

/** The first half's pair sums sa, sb (int16) of a Q5_0 block → isums (two i32x4). */
@inline function keepHalf8(isums: usize, sa: v128, sb: v128): void {
  v128.store(isums, i32x4.extadd_pairwise_i16x8_s(sa));
  v128.store(isums, i32x4.extadd_pairwise_i16x8_s(sb), 16);
}

/**
 * Packed Q4_0, Q5_0 or Q4_K rows at a and b (nb blocks each) · four tokens' rows x0…x3 (Q8_0_SUMS; Q4_K: Q8_K) → out
 * (first nt tokens); acc: 256 bytes (f32 sums, then Q5_0's half-block sums or Q4_K's scaled sub-block sums). Pair sums
 * add up in int16 in registers over `span` values, then go into the sums in memory: half a Q5_0 block (8·127·31 <
 * 2^15); a Q4_K sub-block (16·127·15), times the rows' scales into i32 sums, the mins times the tokens' bsums once per
 * super-block; a Q4_0 block starting from the token's block offsets (−8·Σx of the lane's 16 values), so that a lane
 * ends at Σ (q − 8)·x of its 16 products, |Σ| ≤ 16·8·127 < 2^15 — int16 adds wrap, and a sum that ends in range is
 * exact whatever its partial sums did.
 */
@inline function packedTokens8x4(type: i32, a: usize, b: usize, nb: i32, x0: usize, x1: usize, x2: usize, x3: usize, out: usize, outStride: usize, nt: i32, acc: usize): void {
  const q4K = type == Q4_K;
  const blockBytes: usize = q4K ? PACKED_K_BLOCK : PACKED_BLOCK, values: usize = q4K ? 256 : 32;
  const dAt = <usize>nb << 5, offsetAt = dAt + (<usize>nb << 2); // Q4_0/Q5_0: the tokens' d [nb] f32, then block offsets [nb] i32
  const span: usize = type == Q5_0 ? 16 : 32, isums = acc + 128;
  zeroSums8(acc);
  for (let blk = 0; blk < nb; blk++) {
    const wa = a + <usize>blk * blockBytes, wb = b + <usize>blk * blockBytes;
    const xb: usize = q4K ? <usize>blk * 292 : <usize>blk << 5, offsets = offsetAt + (<usize>blk << 2);
    if (q4K) zeroSums8(isums);
    // values j…j+3: vector j/4 of each layout, each token's quad at xb + j (Q4_K: after its d); running pointers,
    // since V8 adds a base and an index in a separate instruction per load
    const xv = q4K ? xb + 4 : xb;
    for (let h: usize = 0; h < values; h += span) {
      let pa = wa + (h << 2), pb = wb + (h << 2), p0 = x0 + xv + h, p1 = x1 + xv + h, p2 = x2 + xv + h, p3 = x3 + xv + h;
      let s0 = i16x8.splat(0), s2 = s0, s4 = s0, s6 = s0;
      if (type == Q4_0) {
        s0 = v128.load32_splat(x0 + offsets); s2 = v128.load32_splat(x1 + offsets);
        s4 = v128.load32_splat(x2 + offsets); s6 = v128.load32_splat(x3 + offsets);
      }
      let s1 = s0, s3 = s2, s5 = s4, s7 = s6;
      for (const end = p0 + span; p0 < end; pa += 16, pb += 16, p0 += 4, p1 += 4, p2 += 4, p3 += 4) {
        const va = v128.load(pa), vb = v128.load(pb);
        let q = v128.load32_splat(p0);
        s0 = i16x8.add(s0, pairSums(q, va)); s1 = i16x8.add(s1, pairSums(q, vb));
        q = v128.load32_splat(p1);
        s2 = i16x8.add(s2, pairSums(q, va)); s3 = i16x8.add(s3, pairSums(q, vb));
        q = v128.load32_splat(p2);
        s4 = i16x8.add(s4, pairSums(q, va)); s5 = i16x8.add(s5, pairSums(q, vb));
        q = v128.load32_splat(p3);
        s6 = i16x8.add(s6, pairSums(q, va)); s7 = i16x8.add(s7, pairSums(q, vb));
      }
      if (q4K) { // sub-block h/32
        const sc = PK_SC + (h >> 1);
        q4_KScaleInto8(isums, v128.load(wa + sc), v128.load(wb + sc), s0, s1, s2, s3, s4, s5, s6, s7);
        continue;
      }
      if (h + span < 32) { // Q5_0's first half
        keepHalf8(isums, s0, s1); keepHalf8(isums + 32, s2, s3); keepHalf8(isums + 64, s4, s5); keepHalf8(isums + 96, s6, s7);
        continue;
      }
      const da = v128.load(wa + 128), db = v128.load(wb + 128), d = dAt + (<usize>blk << 2);
      nibbleInto8(type, acc, s0, s1, isums, da, db, x0, d, offsets);
      nibbleInto8(type, acc + 32, s2, s3, isums + 32, da, db, x1, d, offsets);
      nibbleInto8(type, acc + 64, s4, s5, isums + 64, da, db, x2, d, offsets);
      nibbleInto8(type, acc + 96, s6, s7, isums + 96, da, db, x3, d, offsets);
    }
    if (q4K) {
      q4_KInto8(acc, isums, wa, wb, x0 + xb);
      q4_KInto8(acc + 32, isums + 32, wa, wb, x1 + xb);
      q4_KInto8(acc + 64, isums + 64, wa, wb, x2 + xb);
      q4_KInto8(acc + 96, isums + 96, wa, wb, x3 + xb);
    }
  }
  storeSums8(acc, out, outStride, nt);
}

function packedTokens8x4Q4_0(a: usize, b: usize, nb: i32, x0: usize, x1: usize, x2: usize, x3: usize, out: usize, outStride: usize, nt: i32, acc: usize): void {
  packedTokens8x4(Q4_0, a, b, nb, x0, x1, x2, x3, out, outStride, nt, acc);
}

function packedTokens8x4Q5_0(a: usize, b: usize, nb: i32, x0: usize, x1: usize, x2: usize, x3: usize, out: usize, outStride: usize, nt: i32, acc: usize): void {
  packedTokens8x4(Q5_0, a, b, nb, x0, x1, x2, x3, out, outStride, nt, acc);
}

function packedTokens8x4Q4_K(a: usize, b: usize, nb: i32, x0: usize, x1: usize, x2: usize, x3: usize, out: usize, outStride: usize, nt: i32, acc: usize): void {
  packedTokens8x4(Q4_K, a, b, nb, x0, x1, x2, x3, out, outStride, nt, acc);
}

/**
 * Eight adjacent rows (at row, rb apart) · tokens t0…t1−1 of act: Q8_0 and IQ4_NL widened (activations Q8_0_WIDE),
 * Q4_0 and Q5_0 packed (Q8_0_SUMS), Q4_K packed (Q8_K). Both 4-row layouts are made in scratch first, then the tokens
 * go four at a time; scratch: the two layouts, then 256 bytes of sums.
 */
@inline export function rows8Tokens(type: i32, row: usize, rb: usize, act: usize, actStride: usize, nIn: i32, out: usize, outStride: usize, t0: i32, t1: i32, scratch: usize): void {
  const wide = type == Q8_0 || type == IQ4_NL, q4K = type == Q4_K;
  const nb = q4K ? nIn >> 8 : nIn >> 5;
  const layoutBytes = <usize>nb * (wide ? WIDE_BLOCK : q4K ? PACKED_K_BLOCK : PACKED_BLOCK);
  const b = scratch + layoutBytes, acc = b + layoutBytes;
  if (wide) {
    widenRows4(type, row, rb, nb, scratch);
    widenRows4(type, row + 4 * rb, rb, nb, b);
  } else if (q4K) {
    packRows4Q4_K(row, rb, nb, scratch, acc);
    packRows4Q4_K(row + 4 * rb, rb, nb, b, acc);
  } else {
    packRows4(type, row, rb, nb, scratch);
    packRows4(type, row + 4 * rb, rb, nb, b);
  }
  for (let t = t0; t < t1; t += 4) {
    const nt = min(4, t1 - t), x = act + <usize>t * actStride, o = out + <usize>t * outStride;
    const x1 = tileRow(x, actStride, 1, nt), x2 = tileRow(x, actStride, 2, nt), x3 = tileRow(x, actStride, 3, nt);
    if (wide) wideTokens8x4(scratch, b, nb, x, x1, x2, x3, o, outStride, nt, acc);
    else if (q4K) packedTokens8x4Q4_K(scratch, b, nb, x, x1, x2, x3, o, outStride, nt, acc);
    else if (type == Q4_0) packedTokens8x4Q4_0(scratch, b, nb, x, x1, x2, x3, o, outStride, nt, acc);
    else packedTokens8x4Q5_0(scratch, b, nb, x, x1, x2, x3, o, outStride, nt, acc);
  }
}

// ---- 4-token tiles: each weight block is decoded once and multiplied with four activation rows ----------------

/**
 * Token k's activation row in a tile of nt tokens at x, xStride apart; past nt, the first row again. Kernels take the
 * four rows as arguments: computed inside, V8 evaluates these selects again on every loop iteration.
 */
@inline export function tileRow(x: usize, xStride: usize, k: i32, nt: i32): usize {
  return nt > k ? x + <usize>k * xStride : x;
}

/** Where a 4-token tile writes: token t's value goes to out + t·outStride (only the first nt are real tokens). */
@inline function storeTile(out: usize, outStride: usize, nt: i32, a0: f32, a1: f32, a2: f32, a3: f32): void {
  store<f32>(out, a0);
  if (nt > 1) store<f32>(out + outStride, a1);
  if (nt > 2) store<f32>(out + 2 * outStride, a2);
  if (nt > 3) store<f32>(out + 3 * outStride, a3);
}

// ---- float weights (F32, F16, BF16) for many tokens: rows widened once per token tile, then an f32 2×4 GEMM ----------

/** Weight row (n values at w) as f32 at dst, in the activations' order (each group of 8: even values, then odd). */
@inline export function widenRow(type: i32, w: usize, dst: usize, n: i32): void {
  const topHalf = i32x4.splat(0xffff0000);
  for (let i = 0; i < n; i += 8) {
    let even: v128, odd: v128;
    if (type == F32) {
      const a = v128.load(w + (<usize>i << 2)), b = v128.load(w + (<usize>i << 2) + 16);
      even = i8x16.shuffle(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
      odd = i8x16.shuffle(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    } else {
      const v = v128.load(w + (<usize>i << 1));
      even = i32x4.shl(v, 16);
      odd = v128.and(v, topHalf);
      if (type == F16) { even = widenF16(even); odd = widenF16(odd); }
    }
    v128.store(dst + (<usize>i << 2), even);
    v128.store(dst + (<usize>i << 2) + 16, odd);
  }
}

/**
 * Two widened rows (w0, w1; f32, n values) · nt ≤ 4 activation rows (x + t·xStride) → out + t·outStride (+4 for
 * row w1 when nRows is 2). Eight independent accumulators keep both multiply-add units busy.
 */
export function gemmF32(w0: usize, w1: usize, x: usize, x1: usize, x2: usize, x3: usize, n: i32, out: usize, outStride: usize, nt: i32, nRows: i32): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    const u = v128.load(w0 + o), v = v128.load(w1 + o);
    const v0 = v128.load(x + o), v1 = v128.load(x1 + o), v2 = v128.load(x2 + o), v3 = v128.load(x3 + o);
    a0 = madd(u, v0, a0); b0 = madd(v, v0, b0);
    a1 = madd(u, v1, a1); b1 = madd(v, v1, b1);
    a2 = madd(u, v2, a2); b2 = madd(v, v2, b2);
    a3 = madd(u, v3, a3); b3 = madd(v, v3, b3);
  }
  storeTile(out, outStride, nt, hsum(a0), hsum(a1), hsum(a2), hsum(a3));
  if (nRows > 1) storeTile(out + 4, outStride, nt, hsum(b0), hsum(b1), hsum(b2), hsum(b3));
}

/** acc + dx·(d·isum − dmin·Σ m_j·bsums) for one token's share of a Q4_K super-block (sm: its scalesMinsK4). */
@inline function q4_KTokenFinish(acc: v128, x: usize, isum: v128, sm: v128, d: f32, dmin: f32): v128 {
  const dx = load<f32>(x);
  const withScales = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dx * d)));
  return f32x4.sub(withScales, f32x4.mul(f32x4.convert_i32x4_s(minsDotBsums(sm, x + 260)), f32x4.splat(dx * dmin)));
}

/**
 * Q4_K or Q5_K (a constant where inlined) for a tile of 4 tokens: the values of each pair of sub-blocks (nibbles; Q5_K
 * adds each value's fifth bit from qh, values 0…31) are extracted once and used by all four tokens.
 */
@inline function tileK45(type: i32, w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, scratch: usize, out: usize, outStride: usize, nt: i32): void {
  const qs: usize = type == Q5_K ? 48 : 16, blockBytes: usize = type == Q5_K ? 176 : 144;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const sm = scalesMinsK4(w + 4);
    v128.store(scratch, sm);
    const qha = v128.load(w + 16), qhb = v128.load(w + 32); // (Q5_K only)
    const o = <usize>b * 292;
    let i0 = i32x4.splat(0), i1 = i0, i2 = i0, i3 = i0;
    for (let pair = 0; pair < 4; pair++) {
      const qa = v128.load(w + qs + 32 * pair), qb = v128.load(w + qs + 16 + 32 * pair);
      let lowA = lowNibbles(qa), lowB = lowNibbles(qb), highA = highNibbles(qa), highB = highNibbles(qb);
      if (type == Q5_K) {
        lowA = v128.or(lowA, q5_KFifth(qha, 2 * pair));
        lowB = v128.or(lowB, q5_KFifth(qhb, 2 * pair));
        highA = v128.or(highA, q5_KFifth(qha, 2 * pair + 1));
        highB = v128.or(highB, q5_KFifth(qhb, 2 * pair + 1));
      }
      const sLow = i16x8.splat(load<u8>(scratch + 2 * pair)), sHigh = i16x8.splat(load<u8>(scratch + 2 * pair + 1));
      const xo = o + 4 + 64 * pair;
      i0 = kPair(i0, x + xo, lowA, lowB, highA, highB, sLow, sHigh);
      i1 = kPair(i1, x1 + xo, lowA, lowB, highA, highB, sLow, sHigh);
      i2 = kPair(i2, x2 + xo, lowA, lowB, highA, highB, sLow, sHigh);
      i3 = kPair(i3, x3 + xo, lowA, lowB, highA, highB, sLow, sHigh);
    }
    const d = loadF16(w), dmin = loadF16(w + 2);
    a0 = q4_KTokenFinish(a0, x + o, i0, sm, d, dmin);
    a1 = q4_KTokenFinish(a1, x1 + o, i1, sm, d, dmin);
    a2 = q4_KTokenFinish(a2, x2 + o, i2, sm, d, dmin);
    a3 = q4_KTokenFinish(a3, x3 + o, i3, sm, d, dmin);
    w += blockBytes;
  }
  storeTile(out, outStride, nt, hsum(a0), hsum(a1), hsum(a2), hsum(a3));
}

export function tileQ4_K(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, scratch: usize, out: usize, outStride: usize, nt: i32): void {
  tileK45(Q4_K, w, x, x1, x2, x3, nb, scratch, out, outStride, nt);
}

export function tileQ5_K(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, scratch: usize, out: usize, outStride: usize, nt: i32): void {
  tileK45(Q5_K, w, x, x1, x2, x3, nb, scratch, out, outStride, nt);
}

export function tileIQ4_XS(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, out: usize, outStride: usize, nt: i32): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const o = <usize>b * 292;
    let i0 = i32x4.splat(0), i1 = i0, i2 = i0, i3 = i0;
    const scalesH = <u32>load<u16>(w + 2), scalesL = load<u32>(w + 4);
    for (let j = 0; j < 8; j++) {
      const qs = v128.load(w + 8 + 16 * j), scale = iq4_XSScale(scalesL, scalesH, j);
      const low = lowNibbles(qs), high = highNibbles(qs);
      const lm = iq4Magnitudes(low), ln = iq4Negative(low), hm = iq4Magnitudes(high), hn = iq4Negative(high);
      const xo = o + 4 + 32 * j;
      i0 = iq4_XSSubBlock(i0, x + xo, lm, ln, hm, hn, scale);
      i1 = iq4_XSSubBlock(i1, x1 + xo, lm, ln, hm, hn, scale);
      i2 = iq4_XSSubBlock(i2, x2 + xo, lm, ln, hm, hn, scale);
      i3 = iq4_XSSubBlock(i3, x3 + xo, lm, ln, hm, hn, scale);
    }
    const d = loadF16(w);
    a0 = f32x4.add(a0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.splat(load<f32>(x + o) * d)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.splat(load<f32>(x1 + o) * d)));
    a2 = f32x4.add(a2, f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.splat(load<f32>(x2 + o) * d)));
    a3 = f32x4.add(a3, f32x4.mul(f32x4.convert_i32x4_s(i3), f32x4.splat(load<f32>(x3 + o) * d)));
    w += 136;
  }
  storeTile(out, outStride, nt, hsum(a0), hsum(a1), hsum(a2), hsum(a3));
}

// Q6_K super-blocks unpacked once (into the thread's scratch) for the tokens of a tile:
//   +0 q[256] unsigned quants (0…63) in value order | +256 scale[16] i32 (the int16 scale in both halves) |
//   +320 c[16] i16 = 32·scale (the −32 offset) | +352 f32 d;  value = d·scale·(q − 32)
const UQ: usize = 0, US: usize = 256, UC: usize = 320, UD: usize = 352;

@inline function storeScale(u: usize, g: i32, scale: i32): void {
  store<i32>(u + US + (<usize>g << 2), (scale & 0xffff) | (scale << 16));
}

function unpackQ6_K(w: usize, u: usize): void {
  const mask2 = i8x16.splat(0x30);
  for (let h = 0; h < 2; h++) {
    const ql = w + 64 * h, qh = w + 128 + 32 * h, q = u + UQ + 128 * h;
    for (let half = 0; half < 2; half++) {
      const l = 16 * half;
      const qlA = v128.load(ql + l), qlB = v128.load(ql + 32 + l), qhv = v128.load(qh + l);
      v128.store(q + l, v128.or(lowNibbles(qlA), v128.and(i16x8.shl(qhv, 4), mask2)));
      v128.store(q + 32 + l, v128.or(lowNibbles(qlB), v128.and(i16x8.shl(qhv, 2), mask2)));
      v128.store(q + 64 + l, v128.or(highNibbles(qlA), v128.and(qhv, mask2)));
      v128.store(q + 96 + l, v128.or(highNibbles(qlB), v128.and(i16x8.shr_u(qhv, 2), mask2)));
    }
  }
  for (let g = 0; g < 16; g++) {
    const sc = <i32>load<i8>(w + 192 + g);
    storeScale(u, g, sc);
    store<i16>(u + UC + 2 * g, <i16>(sc << 5));
  }
  store<f32>(u + UD, loadF16(w + 208));
}

/** acc + d·dx·(Σ_g scale_g·Σ q·x − Σ_g c_g·bsum_g) for one token and an unpacked Q6_K super-block. */
@inline function q6_KTokenBlock(acc: v128, u: usize, x: usize): v128 {
  let isum = i32x4.splat(0);
  for (let g = 0; g < 16; g++) {
    const q = v128.load(u + UQ + (<usize>g << 4)), xv = v128.load(x + 4 + (<usize>g << 4));
    if (RELAXED) isum = i32x4.add(isum, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(xv, q), v128.load32_splat(u + US + (<usize>g << 2))));
    else isum = i32x4.add(isum, i32x4.mul(dotUnsigned(xv, q), i32x4.splat(load<i16>(u + US + (<usize>g << 2)))));
  }
  const corr = i32x4.add(i32x4.dot_i16x8_s(v128.load(x + 260), v128.load(u + UC)), i32x4.dot_i16x8_s(v128.load(x + 276), v128.load(u + UC + 16)));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(isum, corr)), f32x4.splat(load<f32>(x) * load<f32>(u + UD))));
}

export function tileQ6_K(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, u: usize, out: usize, outStride: usize, nt: i32): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    unpackQ6_K(w, u);
    const o = <usize>b * 292;
    a0 = q6_KTokenBlock(a0, u, x + o);
    a1 = q6_KTokenBlock(a1, u, x1 + o);
    a2 = q6_KTokenBlock(a2, u, x2 + o);
    a3 = q6_KTokenBlock(a3, u, x3 + o);
    w += 210;
  }
  storeTile(out, outStride, nt, hsum(a0), hsum(a1), hsum(a2), hsum(a3));
}
