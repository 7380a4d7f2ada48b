// Activation quantizers: one row of f32 values → the Q8_0 / Q8_1 / Q8_K or float layout a weight type's kernels read.

import { BF16, F16, F32, IQ4_NL, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, f16, toBf16, toF16 } from './common';

// ---- activation quantizers (one row of n values at x → out) -------------------------------------------------

// Q8_0 and Q8_1 share one quantizer (d = amax/127, q = nearest-even(x·127/amax)) and differ in how a row is stored:
//   Q8_1: ggml's 36-byte blocks [d f16, d·Σq f16, q[32]];
//   Q8_0_SUMS (for Q4_0 and Q5_0 weights): q [nb, 32] int8 | d [nb] f32 (the f16-rounded d) | offsets [nb] i32,
//     a block's offsets: the int16 pair (−8·Σ q_i over i mod 4 ∈ {0, 1}, −8·Σ q_i over i mod 4 ∈ {2, 3}), the
//     −8·Σx of Σ (q_w − 8)·x split as the packed kernels' int16 lanes are (see packedTokens8x4);
//   Q8_0_SIGNS (for Q8_0 and IQ4_NL weights): per block |q| [32] then sign masks [32] (0xff where q < 0) | d [nb] f32;
//   Q8_0_WIDE (for Q8_0 and IQ4_NL weights times several tokens): q [nb, 32] int16 | d [nb] f32.
// SUMS and SIGNS feed the 4-row kernels: scales as f32 vectors, and the activations' signs moved onto the weights
// (see signedBlockSum); WIDE feeds the int16 tile (wideTokens4).
export const Q8_1_LAYOUT = 1, Q8_0_SUMS = 2, Q8_0_SIGNS = 3, Q8_0_WIDE = 4;

export function quantizeQ8Blocks(x: usize, out: usize, n: i32, layout: i32): void {
  const nb = n >> 5;
  const blockShift: usize = layout >= Q8_0_SIGNS ? 6 : 5; // bytes per block of the split layouts: 64 or 32
  const tail = out + (<usize>nb << blockShift); // where the split layouts keep d (and Σq)
  for (let b = 0; b < nb; b++) {
    let amax = f32x4.splat(0);
    for (let j = 0; j < 32; j += 4) amax = f32x4.max(amax, f32x4.abs(v128.load(x + (<usize>j << 2))));
    const a = max(max(f32x4.extract_lane(amax, 0), f32x4.extract_lane(amax, 1)), max(f32x4.extract_lane(amax, 2), f32x4.extract_lane(amax, 3)));
    const d: f32 = a / 127;
    const id: f32 = a != 0 ? <f32>127 / a : 0;
    const block: usize = layout == Q8_1_LAYOUT ? out + 36 * <usize>b : out + (<usize>b << blockShift);
    const qs: usize = layout == Q8_1_LAYOUT ? block + 4 : block;
    // q = nearest-even(x·id) for 32 values, narrowed to two vectors of 16 int8; Σq from the i32 lanes (lane k: i mod 4 = k)
    const scale = f32x4.splat(id);
    let q32 = i32x4.splat(0);
    for (let half = 0; half < 2; half++) {
      const at = x + (<usize>half << 6);
      const a0 = roundToInt(f32x4.mul(v128.load(at), scale));
      const a1 = roundToInt(f32x4.mul(v128.load(at + 16), scale));
      const a2 = roundToInt(f32x4.mul(v128.load(at + 32), scale));
      const a3 = roundToInt(f32x4.mul(v128.load(at + 48), scale));
      q32 = i32x4.add(q32, i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)));
      const q01 = i16x8.narrow_i32x4_s(a0, a1), q23 = i16x8.narrow_i32x4_s(a2, a3);
      if (layout == Q8_0_WIDE) {
        v128.store(qs + (<usize>half << 5), q01);
        v128.store(qs + (<usize>half << 5) + 16, q23);
        continue;
      }
      const q = i8x16.narrow_i16x8_s(q01, q23);
      if (layout == Q8_0_SIGNS) {
        v128.store(qs + (<usize>half << 4), i8x16.abs(q));
        v128.store(qs + 32 + (<usize>half << 4), i8x16.lt_s(q, i8x16.splat(0)));
      } else {
        v128.store(qs + (<usize>half << 4), q);
      }
    }
    const sum = i32x4.extract_lane(q32, 0) + i32x4.extract_lane(q32, 1) + i32x4.extract_lane(q32, 2) + i32x4.extract_lane(q32, 3);
    if (layout == Q8_1_LAYOUT) {
      store<u16>(block, <u16>toF16(d));
      store<u16>(block + 2, <u16>toF16(d * <f32>sum));
    }
    if (layout >= Q8_0_SUMS) store<f32>(tail + (<usize>b << 2), f16(toF16(d)));
    if (layout == Q8_0_SUMS) {
      const low = -8 * (i32x4.extract_lane(q32, 0) + i32x4.extract_lane(q32, 1)), high = -8 * (i32x4.extract_lane(q32, 2) + i32x4.extract_lane(q32, 3));
      store<i32>(tail + (<usize>nb << 2) + (<usize>b << 2), (low & 0xffff) | high << 16);
    }
    x += 128;
  }
}

/**
 * nearest-even(v) as i32 lanes, for |v| < 2^22: adding 1.5·2^23 rounds v to an integer (ties to even, the default
 * rounding) in the low mantissa bits. The same values as i32x4.trunc_sat_f32x4_s(f32x4.nearest(v)) in 3 instructions
 * where V8 emits about 8.
 */
@inline export function roundToInt(v: v128): v128 {
  return i32x4.sub(f32x4.add(v, f32x4.splat(12582912)), i32x4.splat(0x4b400000));
}

/**
 * Q8_K (292-byte super-blocks): iscale = −127/max (max = value of largest magnitude, the first one on ties),
 * q = min(127, nearest-even(iscale·x)); then d = 1/iscale and the sums of 16 q (bsums).
 */
function quantizeQ8K(x: usize, out: usize, n: i32): void {
  for (let b = 0; b < n / 256; b++) {
    // pmax skips NaN, as the scalar comparison abs(v) > amax does
    let top = f32x4.splat(0);
    for (let j = 0; j < 256; j += 4) top = f32x4.pmax(top, f32x4.abs(v128.load(x + (<usize>j << 2))));
    const amax = max(max(f32x4.extract_lane(top, 0), f32x4.extract_lane(top, 1)), max(f32x4.extract_lane(top, 2), f32x4.extract_lane(top, 3)));
    if (amax == 0) {
      memory.fill(out, 0, 292);
    } else {
      // the first value of that magnitude (its sign decides iscale's)
      let j = 0, lanes = 0;
      for (; (lanes = i32x4.bitmask(f32x4.eq(f32x4.abs(v128.load(x + (<usize>j << 2))), f32x4.splat(amax)))) == 0; j += 4) {}
      const iscale: f32 = <f32>-127 / load<f32>(x + (<usize>(j + ctz(lanes)) << 2));
      const scale = f32x4.splat(iscale), top127 = i32x4.splat(127);
      for (let g: usize = 0; g < 16; g++) {
        const at = x + (g << 6);
        const q0 = i32x4.min_s(roundToInt(f32x4.mul(v128.load(at), scale)), top127);
        const q1 = i32x4.min_s(roundToInt(f32x4.mul(v128.load(at, 16), scale)), top127);
        const q2 = i32x4.min_s(roundToInt(f32x4.mul(v128.load(at, 32), scale)), top127);
        const q3 = i32x4.min_s(roundToInt(f32x4.mul(v128.load(at, 48), scale)), top127);
        v128.store(out + 4 + (g << 4), i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
        const sum = i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3));
        store<i16>(out + 260 + (g << 1), <i16>(i32x4.extract_lane(sum, 0) + i32x4.extract_lane(sum, 1) + i32x4.extract_lane(sum, 2) + i32x4.extract_lane(sum, 3)));
      }
      store<f32>(out, <f32>1 / iscale);
    }
    x += 1024;
    out += 292;
  }
}

/** Copies f32 activations (rounded to bf16 if `bf16`), writing the 8-group even/odd order. */
function quantizeFloats(x: usize, out: usize, n: i32, bf16: bool): void {
  for (let i = 0; i < n; i++) {
    let v = load<f32>(x + (<usize>i << 2));
    if (bf16) v = reinterpret<f32>(toBf16(v) << 16);
    const within = i & 7;
    const slot = (i & ~7) + (within & 1 ? 4 + (within >> 1) : within >> 1);
    store<f32>(out + (<usize>slot << 2), v);
  }
}

/** Quantizes one activation row (n f32 values at x) into the layout the kernels for weight `type` read. */
export function quantize_row(type: i32, x: usize, out: usize, n: i32): void {
  switch (type) {
    case Q8_0: case IQ4_NL: quantizeQ8Blocks(x, out, n, Q8_0_SIGNS); break;
    case Q4_0: case Q5_0: quantizeQ8Blocks(x, out, n, Q8_0_SUMS); break;
    case Q4_1: case Q5_1: quantizeQ8Blocks(x, out, n, Q8_1_LAYOUT); break;
    case F32: case F16: quantizeFloats(x, out, n, false); break;
    case BF16: quantizeFloats(x, out, n, true); break;
    default: quantizeQ8K(x, out, n); // the K-quants' Q8_K
  }
}
