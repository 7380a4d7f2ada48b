// kiln's CPU kernels in AssemblyScript, compiled to WebAssembly SIMD128 (and a relaxed-SIMD variant) over a shared,
// imported memory. Every function takes byte addresses into that memory; the TypeScript side (src/kernels/wasm.ts)
// places weights, activations and outputs there and splits the work across threads.
//
// Matrix products follow ggml: activations are quantized once per matmul to the weight type's vec_dot_type
// (Q8_0, Q8_1, Q8_K, or rounded to f16/bf16), then every weight row is dotted with every activation row using
// integer block sums (exact), scaled and accumulated in f32.
//
// Activation layouts written by the quantize_* functions, one row per token:
//   Q8_0 (values split from scales; see quantizeQ8Blocks) / Q8_1 / Q8_K: the reference quantizer's values exactly;
//   F16 / F32: f32 values; BF16: f32 values rounded to bf16 first; each group of 8 stored as the even elements
//   then the odd ones, the order in which the 16-bit weight kernels widen them.

const RELAXED: bool = ASC_FEATURE_RELAXED_SIMD;

// ---- scalars ------------------------------------------------------------------------------------------------

/** 2^112: moves an f16 exponent (bias 15) shifted into f32 position up to f32's bias (127). */
const F16_EXP_ADJUST: f32 = reinterpret<f32>(0x77800000);

/** f32 of the f16 pattern h (zero, subnormal, normal; inf/NaN are not expected in weights). */
@inline function f16(h: u32): f32 {
  const magnitude = reinterpret<f32>((h & 0x7fff) << 13) * F16_EXP_ADJUST;
  return reinterpret<f32>(reinterpret<u32>(magnitude) | ((h & 0x8000) << 16));
}

/** The f16 pattern nearest to x (ties to even), as ggml's fp32 → fp16. */
function toF16(x: f32): u32 {
  const w = reinterpret<u32>(x);
  const sign = (w >> 16) & 0x8000;
  const magnitude = w & 0x7fffffff;
  if (magnitude > 0x7f800000) return sign | 0x7e00;
  if (magnitude >= 0x477ff000) return sign | 0x7c00;
  if (magnitude < 0x38800000) {
    // subnormal result: round(|x|·2^24) to nearest even
    return sign | (<u32>nearest<f64>(<f64>reinterpret<f32>(magnitude) * 16777216.0));
  }
  const rebiased = magnitude - 0x38000000;
  return sign | ((rebiased + 0xfff + ((rebiased >> 13) & 1)) >> 13);
}

/** The bf16 pattern of x, round to nearest even, NaN kept quiet (ggml_compute_fp32_to_bf16). */
@inline function toBf16(x: f32): u32 {
  const w = reinterpret<u32>(x);
  if ((w & 0x7fffffff) > 0x7f800000) return ((w >> 16) | 64) & 0xffff;
  return ((w + 0x7fff + ((w >> 16) & 1)) >> 16) & 0xffff;
}

/**
 * F16_TABLE: f32 of every f16 pattern (256 KiB at 64 KiB, filled once per memory by init_tables): one load per
 * block scale instead of a dozen integer ops in the hot loops.
 * GELU_TABLE: gelu of every f16 pattern as f32 (the next 256 KiB), the table llama.cpp evaluates gelu through; the
 * backend writes it (formulas.ts geluHalfTable) into the memory its element-wise kernels use, before their first gelu.
 */
const F16_TABLE: usize = 65536;
const GELU_TABLE: usize = F16_TABLE + (65536 << 2);
const TABLES_END: usize = GELU_TABLE + (65536 << 2);

export function gelu_table(): usize {
  return GELU_TABLE;
}

export function init_tables(): void {
  for (let h: u32 = 0; h < 65536; h++) store<f32>(F16_TABLE + (<usize>h << 2), f16(h));
}

/** f32 of the f16 stored at p, by table. */
@inline function loadF16(p: usize): f32 {
  return load<f32>(F16_TABLE + (<usize>load<u16>(p) << 2));
}

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

// ---- SIMD integer dot products --------------------------------------------------------------------------------

/** i32x4 partial sums of Σ x_i·q_i over two pairs of 16 lanes: x signed int8, q unsigned 0…31. */
@inline function dotUnsigned2(x0: v128, q0: v128, x1: v128, q1: v128): v128 {
  // relaxed: the int16 pair sums of both halves fit int16 together (|Σ| ≤ 4·127·31 < 2^15)
  if (RELAXED) return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, q0), i16x8.relaxed_dot_i8x16_i7x16_s(x1, q1)));
  return i32x4.add(dotUnsigned(x0, q0), dotUnsigned(x1, q1));
}

/** i32x4 partial sums of Σ x_i·q_i over 16 lanes: x signed int8, q unsigned 0…127. */
@inline function dotUnsigned(x: v128, q: v128): v128 {
  if (RELAXED) return i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(x, q));
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(x), i16x8.extend_low_i8x16_u(q)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(x), i16x8.extend_high_i8x16_u(q)),
  );
}

/** i32x4 partial sums of s·Σ x_i·q_i over 16 lanes (x int8, q 0…127; scale: s in every int16 lane, as i16x8.splat). */
@inline function dotUnsignedScaled(x: v128, q: v128, scale: v128): v128 {
  if (RELAXED) return i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(x, q), scale);
  return i32x4.mul(dotUnsigned(x, q), i32x4.shr_s(scale, 16));
}

const LOW_NIBBLES = i8x16.splat(0x0f);

@inline function nibbles(v: v128, high: bool): v128 {
  return high ? highNibbles(v) : lowNibbles(v);
}

@inline function lowNibbles(v: v128): v128 {
  return v128.and(v, LOW_NIBBLES);
}

@inline function highNibbles(v: v128): v128 {
  return v128.and(i16x8.shr_u(v, 4), LOW_NIBBLES);
}

/** The 16 levels the 4-bit indices of IQ4_NL and IQ4_XS select (ggml's kvalues_iq4nl). */
const IQ4_LEVELS = i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

/** The int8 levels of 16 bytes of IQ4 indices: their low nibbles (values 0–15 of a block of 32) or high (16–31). */
@inline function iq4Levels(qs: v128, high: bool): v128 {
  return i8x16.swizzle(IQ4_LEVELS, nibbles(qs, high));
}

/** |IQ4_LEVELS| (for the unsigned side of the int8 products; the signs go onto the activations). */
const IQ4_MAGNITUDES = i8x16(127, 104, 83, 65, 49, 35, 22, 10, 1, 13, 25, 38, 53, 69, 89, 113);

/** The magnitudes of the levels of 16 IQ4 indices (nibbles 0…15). */
@inline function iq4Magnitudes(indices: v128): v128 {
  return i8x16.swizzle(IQ4_MAGNITUDES, indices);
}

/** 0xff where the level of an IQ4 index is negative (indices 0…7). */
@inline function iq4Negative(indices: v128): v128 {
  return i8x16.lt_u(indices, i8x16.splat(8));
}

/** x with its signs flipped where `negative` is 0xff (x·sign lane by lane). */
@inline function flipSigns(x: v128, negative: v128): v128 {
  return i8x16.sub(v128.xor(x, negative), negative);
}

// ---- activation quantizers (one row of n values at x → out) -------------------------------------------------

// Q8_0 and Q8_1 share one quantizer (d = amax/127, q = nearest-even(x·127/amax)) and differ in how a row is stored:
//   Q8_1: ggml's 36-byte blocks [d f16, d·Σq f16, q[32]];
//   Q8_0_SUMS (for Q4_0 and Q5_0 weights): q [nb, 32] int8 | d [nb] f32 (the f16-rounded d) | Σq [nb] i32;
//   Q8_0_SIGNS (for Q8_0 and IQ4_NL weights): per block |q| [32] then sign masks [32] (0xff where q < 0) | d [nb] f32;
//   Q8_0_WIDE (for Q8_0 and IQ4_NL weights times several tokens): q [nb, 32] int16 | d [nb] f32.
// SUMS and SIGNS feed the 4-row kernels: scales as f32 vectors, and the activations' signs moved onto the weights
// (see signedBlockSum); WIDE feeds the int16 tile (wideTokens4).
const Q8_1_LAYOUT = 1, Q8_0_SUMS = 2, Q8_0_SIGNS = 3, Q8_0_WIDE = 4;

function quantizeQ8Blocks(x: usize, out: usize, n: i32, layout: i32): void {
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
    // q = nearest-even(x·id) for 32 values, narrowed to two vectors of 16 int8; Σq from the i32 lanes
    const scale = f32x4.splat(id);
    let q32 = i32x4.splat(0);
    for (let half = 0; half < 2; half++) {
      const at = x + (<usize>half << 6);
      const a0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(at), scale)));
      const a1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(at + 16), scale)));
      const a2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(at + 32), scale)));
      const a3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(at + 48), scale)));
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
    if (layout == Q8_0_SUMS) store<i32>(tail + (<usize>nb << 2) + (<usize>b << 2), sum);
    x += 128;
  }
}

/** Q8_K (292-byte super-blocks): iscale = −127/max (max = value of largest magnitude), q = min(127, nearest-even(iscale·x)). */
function quantizeQ8K(x: usize, out: usize, n: i32): void {
  for (let b = 0; b < n / 256; b++) {
    let amax: f32 = 0;
    let maxValue: f32 = 0;
    for (let j = 0; j < 256; j++) {
      const v = load<f32>(x + (<usize>j << 2));
      if (abs(v) > amax) { amax = abs(v); maxValue = v; }
    }
    if (amax == 0) {
      memory.fill(out, 0, 292);
    } else {
      const iscale: f32 = <f32>-127 / maxValue;
      for (let g = 0; g < 16; g++) {
        let bsum = 0;
        for (let i = 0; i < 16; i++) {
          const j = g * 16 + i;
          const q = min(127, <i32>nearest<f32>(iscale * load<f32>(x + (<usize>j << 2))));
          store<i8>(out + 4 + j, <i8>q);
          bsum += q;
        }
        store<i16>(out + 260 + (<usize>g << 1), <i16>bsum);
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

// ---- row dot products: one weight row (nb blocks at w) · one activation row (at x) ----------------------------

/** Q4_1 · Q8_1: d_w·d_x·Σ q·x + m_w·s_x (s_x = d_x·Σx). */
function dotQ4_1(w: usize, x: usize, nb: i32): f32 {
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
function dotQ5_1(w: usize, x: usize, nb: i32): f32 {
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

/**
 * The 8 6-bit scales and 8 6-bit mins of a Q4_K/Q5_K super-block (12 packed bytes at p, get_scale_min_k4's layout)
 * as the bytes of one vector: scales in bytes 0…7, mins in 8…15; four 32-bit steps, as ggml's utmp trick.
 */
@inline function scalesMinsK4(p: usize): v128 {
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
@inline function minsDotBsums(sm: v128, bsums: usize): v128 {
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
@inline function kPair(isum: v128, x: usize, lowA: v128, lowB: v128, highA: v128, highB: v128, scaleLow: v128, scaleHigh: v128): v128 {
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
    const lowBit = i8x16.splat(<i8>(<i32>1 << (2 * pair))), highBit = i8x16.splat(<i8>(<i32>2 << (2 * pair)));
    lowA = v128.or(lowA, q5_KFifth(qha, lowBit));
    lowB = v128.or(lowB, q5_KFifth(qhb, lowBit));
    highA = v128.or(highA, q5_KFifth(qha, highBit));
    highB = v128.or(highB, q5_KFifth(qhb, highBit));
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

/** 0x10 in the bytes of a Q5_K block's qh (16 bytes) that have `bit` set: the fifth bit of those values. */
@inline function q5_KFifth(qh: v128, bit: v128): v128 {
  return v128.and(i8x16.ne(v128.and(qh, bit), i8x16.splat(0)), i8x16.splat(0x10));
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

function dotQ4_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK45(Q4_K, w, x, nb, order); }
function dotQ5_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK45(Q5_K, w, x, nb, order); }

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
function rows4Q4_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q4_K, w, rb, x, nb, out, laneStride, order); }
function rows4Q5_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q5_K, w, rb, x, nb, out, laneStride, order); }
function rows4Q6_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q6_K, w, rb, x, nb, out, laneStride, order); }
function rows4Q2_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q2_K, w, rb, x, nb, out, laneStride, order); }
function rows4Q3_K(w: usize, rb: usize, x: usize, nb: i32, out: usize, laneStride: usize, order: usize): void { rows4K(Q3_K, w, rb, x, nb, out, laneStride, order); }

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
  let a = v128.and(i16x8.shr_u(v128.load(q), 2 * g), three), b = v128.and(i16x8.shr_u(v128.load(q + 16), 2 * g), three);
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
  return v128.and(k >= 2 ? i16x8.shr_u(m, k - 2) : i16x8.shl(m, 2 - k), i8x16.splat(4));
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
function dotQ2_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK(Q2_K, w, x, nb, order); }
function dotQ3_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK(Q3_K, w, x, nb, order); }
function dotQ6_K(w: usize, x: usize, nb: i32, order: usize): f32 { return dotK(Q6_K, w, x, nb, order); }

/** Sub-block j's scale s_j − 32 of an IQ4_XS super-block: low nibble j of scalesL (its 4 bytes), high 2 bits from scalesH. */
@inline function iq4_XSScale(scalesL: u32, scalesH: u32, j: i32): i32 {
  return <i32>(((scalesL >> (4 * j)) & 15) | (((scalesH >> (2 * j)) & 3) << 4)) - 32;
}

/**
 * isum + scale·Σ level·x over one IQ4_XS sub-block of 32 (x: its 32 Q8_K values): the levels' signs (masks for values
 * 0–15 and 16–31) move onto x, their magnitudes are the unsigned operand.
 */
@inline function iq4_XSSubBlock(isum: v128, x: usize, lowMagnitudes: v128, lowNegative: v128, highMagnitudes: v128, highNegative: v128, scale: i32): v128 {
  const s0 = dotUnsignedScaled(flipSigns(v128.load(x), lowNegative), lowMagnitudes, i16x8.splat(<i16>scale));
  const s1 = dotUnsignedScaled(flipSigns(v128.load(x + 16), highNegative), highMagnitudes, i16x8.splat(<i16>scale));
  return i32x4.add(isum, i32x4.add(s0, s1));
}

/** IQ4_XS · Q8_K: value = d·(s_j − 32)·level per sub-block j of 32; the super-block's sum in integers, then · d·d_x. */
function dotIQ4_XS(w: usize, x: usize, nb: i32): f32 {
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

/**
 * Four f32 lanes of 16-bit floats: `bits` holds the pattern in the top half of each i32 lane (sign at bit 31).
 * f16: shift exponent and mantissa down by 3 (sign copies fill bits 28–30, masked off), then rescale by 2^112.
 */
@inline function widenF16(bits: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shr_s(bits, 3), i32x4.splat(0x8fffe000)), f32x4.splat(F16_EXP_ADJUST));
}

/** acc + a·b (fused where the relaxed build allows). */
@inline function madd(a: v128, b: v128, acc: v128): v128 {
  if (RELAXED) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

/**
 * Four f32 lanes of f16 patterns (as for widenF16) without the multiply: the exponent is rebased by an integer add.
 * Exact for normal values (and as widenF16 for inf/NaN, which weights do not hold). A zero or subnormal
 * (exponent field 0, value ±m·2^−24) comes out as ±2^−15·(1 + m/1024), which is ±2^−25·(1024 − m) too much; the
 * row's correction list takes that back off (f16_corrections). Subnormal operands would send widenF16's multiply down
 * the CPU's slow denormal path (random-like weights hold ~0.2% of them), so decode uses this one.
 */
@inline function widenF16Rebased(bits: v128): v128 {
  return i32x4.add(v128.and(i32x4.shr_s(bits, 3), i32x4.splat(0x8fffe000)), i32x4.splat(0x38000000));
}

// how dotHalf turns 16-bit weights into f32
const HALF_BF16 = 0, HALF_F16 = 1, HALF_F16_REBASED = 2;

@inline function widenHalf(bits: v128, widening: i32): v128 {
  if (widening == HALF_F16) return widenF16(bits);
  if (widening == HALF_F16_REBASED) return widenF16Rebased(bits);
  return bits;
}

/**
 * Bytes ahead of the row being read that the 16-bit decode kernel touches: a load whose value is not waited for starts
 * the next lines' transfer early (WebAssembly has no prefetch instruction), so memory reads overlap the widening work.
 * (The 4-row integer kernels did not gain from it.)
 */
const READ_AHEAD: usize = 384;

/** The odd values of 8 halves in the top of each i32 lane (f16 widening masks the even ones off by itself). */
@inline function oddHalves(v: v128, widening: i32): v128 {
  return widening == HALF_BF16 ? v128.and(v, i32x4.splat(0xffff0000)) : v;
}

/** F16 or BF16 · f32 activations in the 8-group even/odd order: each i32 of weights holds an even and an odd value. */
@inline function dotHalf(w: usize, x: usize, n: i32, widening: i32): f32 {
  // four independent accumulators: 16 values per step keep the adds' latency hidden
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0), acc2 = f32x4.splat(0), acc3 = f32x4.splat(0);
  let touched: u32 = 0;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const v = v128.load(w), u = v128.load(w + 16);
    touched += load<u8>(w + READ_AHEAD);
    acc0 = madd(widenHalf(i32x4.shl(v, 16), widening), v128.load(x), acc0);
    acc1 = madd(widenHalf(oddHalves(v, widening), widening), v128.load(x + 16), acc1);
    acc2 = madd(widenHalf(i32x4.shl(u, 16), widening), v128.load(x + 32), acc2);
    acc3 = madd(widenHalf(oddHalves(u, widening), widening), v128.load(x + 48), acc3);
    w += 32;
    x += 64;
  }
  if (i < n) {
    const v = v128.load(w);
    acc0 = madd(widenHalf(i32x4.shl(v, 16), widening), v128.load(x), acc0);
    acc1 = madd(widenHalf(oddHalves(v, widening), widening), v128.load(x + 16), acc1);
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
  for (let i = 0; i < n; i += 8) {
    const x0 = v128.load(x), x1 = v128.load(x + 16);
    const v0 = v128.load(w), v1 = v128.load(w + rb), v2 = v128.load(w + 2 * rb), v3 = v128.load(w + 3 * rb);
    touched += load<u8>(w + READ_AHEAD) + load<u8>(w + rb + READ_AHEAD) + load<u8>(w + 2 * rb + READ_AHEAD) + load<u8>(w + 3 * rb + READ_AHEAD);
    a0 = madd(widenHalf(oddHalves(v0, widening), widening), x1, madd(widenHalf(i32x4.shl(v0, 16), widening), x0, a0));
    a1 = madd(widenHalf(oddHalves(v1, widening), widening), x1, madd(widenHalf(i32x4.shl(v1, 16), widening), x0, a1));
    a2 = madd(widenHalf(oddHalves(v2, widening), widening), x1, madd(widenHalf(i32x4.shl(v2, 16), widening), x0, a2));
    a3 = madd(widenHalf(oddHalves(v3, widening), widening), x1, madd(widenHalf(i32x4.shl(v3, 16), widening), x0, a3));
    w += 16;
    x += 32;
  }
  readAheadSink += touched;
  storeRows(out, laneSums4(a0, a1, a2, a3, true), laneStride);
}

// rows4Half made once per widening
function rows4F16(w: usize, rb: usize, x: usize, n: i32, out: usize, laneStride: usize): void { rows4Half(w, rb, x, n, out, laneStride, HALF_F16); }
function rows4F16Rebased(w: usize, rb: usize, x: usize, n: i32, out: usize, laneStride: usize): void { rows4Half(w, rb, x, n, out, laneStride, HALF_F16_REBASED); }
function rows4BF16(w: usize, rb: usize, x: usize, n: i32, out: usize, laneStride: usize): void { rows4Half(w, rb, x, n, out, laneStride, HALF_BF16); }

// dotHalf made once per widening
function dotF16(w: usize, x: usize, n: i32): f32 { return dotHalf(w, x, n, HALF_F16); }
function dotF16Rebased(w: usize, x: usize, n: i32): f32 { return dotHalf(w, x, n, HALF_F16_REBASED); }
function dotBF16(w: usize, x: usize, n: i32): f32 { return dotHalf(w, x, n, HALF_BF16); }

/** Keeps the read-ahead loads alive (their values are otherwise unused). */
let readAheadSink: u32 = 0;

/** F32 · f32 activations in the 8-group even/odd order. */
function dotF32(w: usize, x: usize, n: i32): f32 {
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

// ggml type numbers
const F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, IQ4_XS = 23, BF16 = 30;
/** kiln's own: F16 weights read with widenF16Rebased, for rows that have a correction list */
const F16_REBASED = -1;

/** One weight row · one activation row of n values. */
@inline function dotRow(type: i32, w: usize, x: usize, n: i32, scratch: usize): f32 {
  switch (type) {
    case Q4_1: return dotQ4_1(w, x, n >> 5);
    case Q5_1: return dotQ5_1(w, x, n >> 5);
    case Q2_K: return dotQ2_K(w, x, n >> 8, scratch);
    case Q3_K: return dotQ3_K(w, x, n >> 8, scratch);
    case Q4_K: return dotQ4_K(w, x, n >> 8, scratch);
    case Q5_K: return dotQ5_K(w, x, n >> 8, scratch);
    case Q6_K: return dotQ6_K(w, x, n >> 8, scratch);
    case IQ4_XS: return dotIQ4_XS(w, x, n >> 8);
    case F16: return dotF16(w, x, n);
    case F16_REBASED: return dotF16Rebased(w, x, n);
    case BF16: return dotBF16(w, x, n);
    case F32: return dotF32(w, x, n);
    default: return NaN;
  }
}

// ---- 4-row kernels (Q8_0, Q4_0, Q5_0, IQ4_NL): four weight rows at once, against 1 token (decode) or 4 (prefill) ----
// Every (row, token) block product is an exact integer, as in ggml. rowSums4 gathers the four rows' partial sums into
// one vector, so converting, scaling by d_w·d_x and accumulating happen once per four rows. A last group of fewer than
// four rows is done one row at a time with a row stride of 0 (the row repeated, lane 0 stored).

/** [Σ s0, Σ s1, Σ s2, Σ s3]: the lane sums of four vectors, of i32 lanes or (`floats`) of f32 lanes. */
@inline function laneSums4(s0: v128, s1: v128, s2: v128, s3: v128, floats: bool): v128 {
  // [s0₀+s0₂, s1₀+s1₂, s0₁+s0₃, s1₁+s1₃], likewise for s2, s3; then add the halves
  const a0 = i8x16.shuffle(s0, s1, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), b0 = i8x16.shuffle(s0, s1, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const a1 = i8x16.shuffle(s2, s3, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), b1 = i8x16.shuffle(s2, s3, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const t0 = floats ? f32x4.add(a0, b0) : i32x4.add(a0, b0), t1 = floats ? f32x4.add(a1, b1) : i32x4.add(a1, b1);
  const a = i8x16.shuffle(t0, t1, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), b = i8x16.shuffle(t0, t1, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  return floats ? f32x4.add(a, b) : i32x4.add(a, b);
}

/** [Σ s0, Σ s1, Σ s2, Σ s3] of four i32x4 vectors. */
@inline function rowSums4(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  return laneSums4(s0, s1, s2, s3, false);
}

/** f32 of the four f16 values at p, p + stride, p + 2·stride, p + 3·stride. */
@inline function scales4(p: usize, stride: usize): v128 {
  let v = i16x8.splat(<i16>load<u16>(p));
  v = v128.load16_lane(p + stride, v, 1);
  v = v128.load16_lane(p + 2 * stride, v, 2);
  v = v128.load16_lane(p + 3 * stride, v, 3);
  return widenF16(i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
}

/** The four rows' values of one token, row k's at out + k·laneStride (laneStride 0: a single row, lane 0). */
@inline function storeRows(out: usize, acc: v128, laneStride: usize): void {
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

/** The 32 unsigned values of a Q4_0 (nibbles) or Q5_0 (nibble | fifth bit << 4) weight block at w: values 0–15, 16–31. */
@inline function nibbleValuesLow(type: i32, w: usize): v128 {
  if (type == Q4_0) return lowNibbles(v128.load(w + 2));
  return v128.or(lowNibbles(v128.load(w + 6)), fifthBits(load<u32>(w + 2), false));
}

@inline function nibbleValuesHigh(type: i32, w: usize): v128 {
  if (type == Q4_0) return highNibbles(v128.load(w + 2));
  return v128.or(highNibbles(v128.load(w + 6)), fifthBits(load<u32>(w + 2), true));
}

/**
 * acc + (d_w · d_x)·Σ (q − offset)·x for one token (its block at x) and a Q4_0 (offset 8) or Q5_0 (offset 16) block
 * of four rows whose values (q, 0…31) were extracted once for all tokens (lowK, highK for row k):
 * Σ q·x − offset·Σx, in integers (activations in the Q8_0_SUMS layout).
 */
@inline function nibbleToken(type: i32, acc: v128, x: usize, xSum: i32, dw: v128, dx: f32,
  low0: v128, high0: v128, low1: v128, high1: v128, low2: v128, high2: v128, low3: v128, high3: v128): v128 {
  const x0 = v128.load(x), x1 = v128.load(x + 16);
  const sums = rowSums4(dotUnsigned2(x0, low0, x1, high0), dotUnsigned2(x0, low1, x1, high1), dotUnsigned2(x0, low2, x1, high2), dotUnsigned2(x0, low3, x1, high3));
  const s = i32x4.sub(sums, i32x4.splat(xSum << (type == Q4_0 ? 3 : 4)));
  return madd(f32x4.convert_i32x4_s(s), f32x4.mul(dw, f32x4.splat(dx)), acc);
}

/**
 * Rows at w, w + rb, w + 2·rb, w + 3·rb (nb blocks each) · nt (1 or 4, a constant where inlined) activation rows at
 * x + t·xStride → out + t·outStride + k·laneStride for row k (laneStride 0: one row, rb 0).
 */
@inline function rows4(type: i32, w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, nt: i32, laneStride: usize): void {
  const blockBytes: usize = type == Q8_0 ? 34 : type == Q5_0 ? 22 : 18;
  const qBytes: usize = type == Q8_0 || type == IQ4_NL ? 64 : 32; // activation bytes per block
  const dAt = x + <usize>nb * qBytes, sumAt = dAt + (<usize>nb << 2); // the activation's d [nb] f32 (and Σq [nb] i32)
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
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
      const l0 = nibbleValuesLow(type, w), h0 = nibbleValuesHigh(type, w);
      const l1 = nibbleValuesLow(type, w + rb), h1 = nibbleValuesHigh(type, w + rb);
      const l2 = nibbleValuesLow(type, w + 2 * rb), h2 = nibbleValuesHigh(type, w + 2 * rb);
      const l3 = nibbleValuesLow(type, w + 3 * rb), h3 = nibbleValuesHigh(type, w + 3 * rb);
      a0 = nibbleToken(type, a0, xb, load<i32>(sb), dw, load<f32>(db), l0, h0, l1, h1, l2, h2, l3, h3);
      if (nt == 4) {
        a1 = nibbleToken(type, a1, xb + xStride, load<i32>(sb + xStride), dw, load<f32>(db + xStride), l0, h0, l1, h1, l2, h2, l3, h3);
        a2 = nibbleToken(type, a2, xb + 2 * xStride, load<i32>(sb + 2 * xStride), dw, load<f32>(db + 2 * xStride), l0, h0, l1, h1, l2, h2, l3, h3);
        a3 = nibbleToken(type, a3, xb + 3 * xStride, load<i32>(sb + 3 * xStride), dw, load<f32>(db + 3 * xStride), l0, h0, l1, h1, l2, h2, l3, h3);
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
@inline function rows4Of(type: i32, nt: i32, w: usize, rb: usize, x: usize, xStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize): void {
  switch (type) {
    case Q8_0: if (nt == 4) rows4Q8_0x4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4Q8_0(w, rb, x, xStride, nb, out, outStride, laneStride); break;
    case Q4_0: if (nt == 4) rows4Q4_0x4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4Q4_0(w, rb, x, xStride, nb, out, outStride, laneStride); break;
    case Q5_0: if (nt == 4) rows4Q5_0x4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4Q5_0(w, rb, x, xStride, nb, out, outStride, laneStride); break;
    default: if (nt == 4) rows4IQ4_NLx4(w, rb, x, xStride, nb, out, outStride, laneStride); else rows4IQ4_NL(w, rb, x, xStride, nb, out, outStride, laneStride);
  }
}

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
const WIDE_TOKENS: i32 = 8;

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
@inline function wideRowsTokens(type: i32, row: usize, rb: usize, act: usize, actStride: usize, nb: i32, out: usize, outStride: usize, laneStride: usize, t0: i32, t1: i32, scratch: usize): void {
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
// row k's Σ q·x. Then, as in nibbleToken, Σ (q − offset)·x = Σ q·x − offset·Σx, exactly.

const PACKED_BLOCK: usize = 144;
/** The fewest tokens for which matmul packs Q4_0/Q5_0 rows (fewer go through the 4-row kernels; relaxed build only). */
const PACKED_TOKENS: i32 = 4;

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
  let d = x + (<usize>nb << 5); // the token's d [nb] f32, then Σq [nb] i32
  const end = d;
  let acc = f32x4.splat(0);
  for (; x < end; x += 32) {
    const low = quads4(packed, x); // values 0–15
    v128.store(order, low);
    const high = quads4(packed + 64, x + 16); // values 16–31
    const qx = type == Q4_0 ? i32x4.extadd_pairwise_i16x8_s(i16x8.add(low, high)) : i32x4.add(i32x4.extadd_pairwise_i16x8_s(low), i32x4.extadd_pairwise_i16x8_s(high));
    const s = i32x4.sub(qx, i32x4.splat(load<i32>(d + (<usize>nb << 2)) << (type == Q4_0 ? 3 : 4)));
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
const PACKED_K_TOKENS: i32 = 8;

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

/**
 * Four Q4_0/Q5_0/Q4_K rows (rb apart; rb 0: one row) · tokens t0…t1−1 of act (Q8_0_SUMS; Q4_K: Q8_K), the rows packed
 * into scratch first.
 */
@inline function packedRowsTokens(type: i32, row: usize, rb: usize, act: usize, actStride: usize, nIn: i32, out: usize, outStride: usize, laneStride: usize, t0: i32, t1: i32, scratch: usize): void {
  const nb = type == Q4_K ? nIn >> 8 : nIn >> 5;
  const order = scratch + <usize>nb * (type == Q4_K ? PACKED_K_BLOCK : PACKED_BLOCK);
  if (type == Q4_K) packRows4Q4_K(row, rb, nb, scratch, order);
  else packRows4(type, row, rb, nb, scratch);
  for (let t = t0; t < t1; t++) {
    const x = act + <usize>t * actStride, o = out + <usize>t * outStride;
    if (type == Q4_0) packedTokenQ4_0(scratch, nb, x, o, laneStride, order);
    else if (type == Q5_0) packedTokenQ5_0(scratch, nb, x, o, laneStride, order);
    else packedTokenQ4_K(scratch, nb, x, o, laneStride, order);
  }
}

// ---- 4-token tiles: each weight block is decoded once and multiplied with four activation rows ----------------

/**
 * Token k's activation row in a tile of nt tokens at x, xStride apart; past nt, the first row again. Kernels take the
 * four rows as arguments: computed inside, V8 evaluates these selects again on every loop iteration.
 */
@inline function tileRow(x: usize, xStride: usize, k: i32, nt: i32): usize {
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
@inline function widenRow(type: i32, w: usize, dst: usize, n: i32): void {
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
function gemmF32(w0: usize, w1: usize, x: usize, x1: usize, x2: usize, x3: usize, n: i32, out: usize, outStride: usize, nt: i32, nRows: i32): void {
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
        const lowBit = i8x16.splat(<i8>(<i32>1 << (2 * pair))), highBit = i8x16.splat(<i8>(<i32>2 << (2 * pair)));
        lowA = v128.or(lowA, q5_KFifth(qha, lowBit));
        lowB = v128.or(lowB, q5_KFifth(qhb, lowBit));
        highA = v128.or(highA, q5_KFifth(qha, highBit));
        highB = v128.or(highB, q5_KFifth(qhb, highBit));
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

function tileQ4_K(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, scratch: usize, out: usize, outStride: usize, nt: i32): void {
  tileK45(Q4_K, w, x, x1, x2, x3, nb, scratch, out, outStride, nt);
}

function tileQ5_K(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, scratch: usize, out: usize, outStride: usize, nt: i32): void {
  tileK45(Q5_K, w, x, x1, x2, x3, nb, scratch, out, outStride, nt);
}

function tileIQ4_XS(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, out: usize, outStride: usize, nt: i32): void {
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

function tileQ6_K(w: usize, x: usize, x1: usize, x2: usize, x3: usize, nb: i32, u: usize, out: usize, outStride: usize, nt: i32): void {
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

/** Bytes that the first `values` values of a row take: in the weight's own format, and in its activation layout. */
@inline function weightBytes(type: i32, values: i32): usize {
  switch (type) {
    case F32: return <usize>values << 2;
    case F16: case F16_REBASED: case BF16: return <usize>values << 1;
    case Q4_1: return <usize>(values >> 5) * 20;
    case Q5_1: return <usize>(values >> 5) * 24;
    case Q2_K: return <usize>(values >> 8) * 84;
    case Q3_K: return <usize>(values >> 8) * 110;
    case Q4_K: return <usize>(values >> 8) * 144;
    case Q5_K: return <usize>(values >> 8) * 176;
    case IQ4_XS: return <usize>(values >> 8) * 136;
    default: return <usize>(values >> 8) * 210; // Q6_K
  }
}

@inline function activationBytes(type: i32, values: i32): usize {
  switch (type) {
    case F32: case F16: case F16_REBASED: case BF16: return <usize>values << 2;
    case Q4_1: case Q5_1: return <usize>(values >> 5) * 36;
    default: return <usize>(values >> 8) * 292; // the K-quants' Q8_K
  }
}

/**
 * Correction lists for F16 weights read by widenF16Rebased: for every row, one entry per value whose exponent field is
 * 0 (zeros and subnormals): bit 31 its sign, bits 30…21 its mantissa m, bits 20…0 its activation slot (8-group
 * even/odd order). Layout at `table`: starts [nRows + 1] u32 (each row's first entry), then the entries u32. With
 * `fill` false nothing is written (table unused). Returns the number of entries. nIn is a multiple of 8, below 2^21.
 */
export function f16_corrections(w: usize, nRows: i32, nIn: i32, table: usize, fill: bool): u32 {
  const entries = table + ((<usize>nRows + 1) << 2);
  let count: u32 = 0;
  for (let r = 0; r < nRows; r++) {
    if (fill) store<u32>(table + (<usize>r << 2), count);
    const row = w + <usize>r * (<usize>nIn << 1);
    for (let i = 0; i < nIn; i += 8) {
      const exponents = v128.and(v128.load(row + (<usize>i << 1)), i16x8.splat(0x7c00));
      let zero = i16x8.bitmask(i16x8.eq(exponents, i16x8.splat(0)));
      for (; zero != 0; zero &= zero - 1) {
        if (fill) {
          const k = ctz(zero);
          const slot = <u32>(i + (k & 1 ? 4 + (k >> 1) : k >> 1));
          const h = <u32>load<u16>(row + (<usize>(i + k) << 1));
          store<u32>(entries + (<usize>count << 2), (h >> 15) << 31 | (h & 0x3ff) << 21 | slot);
        }
        count++;
      }
    }
  }
  if (fill) store<u32>(table + (<usize>nRows << 2), count);
  return count;
}

/** 2^−25: the unit of widenF16Rebased's excess on exponent-0 values. */
const F16_REBASE_UNIT: f32 = reinterpret<f32>(0x33000000);

/** Takes back widenF16Rebased's excess in rows r0…r1−1 (table: f16_corrections of all nRows rows): out[r] −= Σ ±2^−25·(1024 − m)·x. */
function correctRebasedRows(table: usize, nRows: i32, r0: i32, r1: i32, x: usize, out: usize): void {
  const entries = table + ((<usize>nRows + 1) << 2);
  for (let r = r0; r < r1; r++) {
    let sum: f32 = 0;
    const end = load<u32>(table + (<usize>(r + 1) << 2));
    for (let e = load<u32>(table + (<usize>r << 2)); e < end; e++) {
      const entry = load<u32>(entries + (<usize>e << 2));
      const excess = <f32>(<u32>1024 - ((entry >> 21) & 0x3ff)) * load<f32>(x + (<usize>(entry & 0x1fffff) << 2));
      sum += entry >> 31 ? -excess : excess;
    }
    const at = out + (<usize>r << 2);
    store<f32>(at, load<f32>(at) - F16_REBASE_UNIT * sum);
  }
}

/** Values per step of dotRowsInStreams: each stream reads a run of this many values' bytes before the next takes its turn. */
const STREAM_RUN: i32 = 512;

/**
 * Rows at w, w + rb, w + 2·rb, w + 3·rb · one activation row x → out + k·laneStride for row k: the rows are read
 * in turns of STREAM_RUN values, so that four streams advance together (more reads in flight than one row at a time).
 */
function dotRowsInStreams(type: i32, w: usize, rb: usize, x: usize, n: i32, scratch: usize, out: usize, laneStride: usize): void {
  switch (type) {
    case F16: rows4F16(w, rb, x, n, out, laneStride); return;
    case F16_REBASED: rows4F16Rebased(w, rb, x, n, out, laneStride); return;
    case BF16: rows4BF16(w, rb, x, n, out, laneStride); return;
  }
  let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
  for (let v = 0; v < n; v += STREAM_RUN) {
    const len = min(STREAM_RUN, n - v);
    const row = w + weightBytes(type, v), xv = x + activationBytes(type, v);
    a0 += dotRow(type, row, xv, len, scratch);
    a1 += dotRow(type, row + rb, xv, len, scratch);
    a2 += dotRow(type, row + 2 * rb, xv, len, scratch);
    a3 += dotRow(type, row + 3 * rb, xv, len, scratch);
  }
  store<f32>(out, a0);
  store<f32>(out + laneStride, a1);
  store<f32>(out + 2 * laneStride, a2);
  store<f32>(out + 3 * laneStride, a3);
}

/** Four rows (rb apart; rb 0: one row) · tokens t0…t1−1 of act, in tiles of 4 tokens and then one by one. */
@inline function rows4Tokens(type: i32, row: usize, rb: usize, act: usize, actStride: usize, nIn: i32, out: usize, outStride: usize, laneStride: usize, t0: i32, t1: i32, scratch: usize): void {
  if (hasRows4K(type)) {
    for (let t = t0; t < t1; t++) {
      const x = act + <usize>t * actStride, o = out + <usize>t * outStride;
      if (type == Q4_K) rows4Q4_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else if (type == Q5_K) rows4Q5_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else if (type == Q6_K) rows4Q6_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else if (type == Q3_K) rows4Q3_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
      else rows4Q2_K(row, rb, x, nIn >> 8, o, laneStride, scratch);
    }
    return;
  }
  let t = t0;
  for (; t + 4 <= t1; t += 4) rows4Of(type, 4, row, rb, act + <usize>t * actStride, actStride, nIn >> 5, out + <usize>t * outStride, outStride, laneStride);
  for (; t < t1; t++) rows4Of(type, 1, row, rb, act + <usize>t * actStride, 0, nIn >> 5, out + <usize>t * outStride, 0, laneStride);
}

/** Whether one token (decode) goes four rows at a time through rows4K. */
@inline function hasRows4K(type: i32): bool {
  return type == Q2_K || type == Q3_K || type == Q4_K || type == Q5_K || type == Q6_K;
}

/** Whether a 4-token tile kernel exists for this type (others multiply token by token). */
@inline function hasTile(type: i32): bool {
  return type == Q4_K || type == Q5_K || type == Q6_K || type == IQ4_XS;
}

/** W[row] · the nt (≤ 4) activation rows at x, x + xStride, …, written to out + t·outStride (Q4_K, Q5_K, Q6_K or IQ4_XS). */
@inline function dotTile(type: i32, row: usize, x: usize, xStride: usize, n: i32, scratch: usize, out: usize, outStride: usize, nt: i32): void {
  const x1 = tileRow(x, xStride, 1, nt), x2 = tileRow(x, xStride, 2, nt), x3 = tileRow(x, xStride, 3, nt);
  switch (type) {
    case Q4_K: tileQ4_K(row, x, x1, x2, x3, n >> 8, scratch, out, outStride, nt); break;
    case Q5_K: tileQ5_K(row, x, x1, x2, x3, n >> 8, scratch, out, outStride, nt); break;
    case IQ4_XS: tileIQ4_XS(row, x, x1, x2, x3, n >> 8, out, outStride, nt); break;
    default: tileQ6_K(row, x, x1, x2, x3, n >> 8, scratch, out, outStride, nt); break;
  }
}

/** Whether Q8_0 or IQ4_NL rows times `nTokens` tokens are widened to int16 (activations in the Q8_0_WIDE layout). */
@inline function widens(type: i32, nTokens: i32): bool {
  return (type == Q8_0 || type == IQ4_NL) && nTokens >= WIDE_TOKENS;
}

/**
 * Rows r0 … r1 − 1 of one weight (nOut rows of wRowBytes at w) · nTokens quantized activation rows at act →
 * out [nTokens, nOut] f32. Tokens are visited in tiles of 32 so a tile's activations stay in cache while a chunk of
 * rows is streamed past them. Within a tile, Q8_0 and IQ4_NL widen four rows at a time to int16 (wideTokens4) from
 * WIDE_TOKENS tokens on; in the relaxed build Q4_0 and Q5_0 pack four rows (packedToken) from PACKED_TOKENS on, Q4_K
 * from PACKED_K_TOKENS. Fewer tokens of Q8_0, Q4_0, Q5_0, IQ4_NL go four rows at a time (rows4), and so does one token
 * of Q2_K…Q6_K (rows4K) and of F16/BF16 (rows4Half, via dotRowsInStreams); otherwise types with a tile kernel (Q4_K,
 * Q5_K, Q6_K, IQ4_XS) decode each weight block once for 4 tokens, and the rest multiply row by token. Float weights for
 * many tokens take tiles of 64 tokens and widened row pairs (gemmF32).
 */
function multiplyRows(
  type: i32, w: usize, wRowBytes: i32, act: usize, actStride: usize, out: usize, nIn: i32, nOut: i32, nTokens: i32,
  corrections: usize, r0: i32, r1: i32, scratch: usize,
): void {
  const outStride = <usize>nOut << 2;
  const wide = widens(type, nTokens);
  // (the SIMD128 build's int8 products through int16 make packing slower than the 4-row kernels)
  const packed = RELAXED && ((type == Q4_0 || type == Q5_0) && nTokens >= PACKED_TOKENS || type == Q4_K && nTokens >= PACKED_K_TOKENS);
  if (nTokens > 1 && (type == F32 || type == F16 || type == BF16)) {
    // per tile of 64 tokens (their activations stay in L2), each pair of rows is widened into scratch once
    const w1At = scratch + (<usize>nIn << 2);
    for (let t0 = 0; t0 < nTokens; t0 += 64) {
      const t1 = min(nTokens, t0 + 64);
      for (let r = r0; r < r1; r += 2) {
        const nRows = r + 1 < r1 ? 2 : 1;
        widenRow(type, w + <usize>r * wRowBytes, scratch, nIn);
        if (nRows == 2) widenRow(type, w + <usize>(r + 1) * wRowBytes, w1At, nIn);
        for (let t = t0; t < t1; t += 4) {
          const nt = min(4, t1 - t), x = act + <usize>t * actStride;
          gemmF32(scratch, nRows == 2 ? w1At : scratch, x, tileRow(x, actStride, 1, nt), tileRow(x, actStride, 2, nt), tileRow(x, actStride, 3, nt), nIn, out + <usize>t * outStride + (<usize>r << 2), outStride, nt, nRows);
        }
      }
    }
    return;
  }
  for (let t0 = 0; t0 < nTokens; t0 += 32) {
    const t1 = min(nTokens, t0 + 32);
    if (wide || packed) {
      // four adjacent rows at a time, whose outputs are adjacent too; the last (length mod 4) rows one at a time
      const groups = (r1 - r0) >> 2;
      for (let r = r0; r < r1;) {
        const four = r < r0 + 4 * groups, row = w + <usize>r * wRowBytes, rb: usize = four ? <usize>wRowBytes : 0, o = out + (<usize>r << 2);
        if (wide) wideRowsTokens(type, row, rb, act, actStride, nIn >> 5, o, outStride, four ? 4 : 0, t0, t1, scratch);
        else packedRowsTokens(type, row, rb, act, actStride, nIn, o, outStride, four ? 4 : 0, t0, t1, scratch);
        r += four ? 4 : 1;
      }
      continue;
    }
    if (type == Q8_0 || type == Q4_0 || type == Q5_0 || type == IQ4_NL || nTokens == 1 && hasRows4K(type)) {
      // decode: four long streams, rows r0 + g + k·q (q = a quarter of the chunk, k = 0…3) go together, so that each
      // stream reads consecutive rows (four streams keep more reads in flight than one); many tokens: four adjacent
      // rows, whose outputs are adjacent too. The last (length mod 4) rows one at a time.
      const groups = (r1 - r0) >> 2;
      const span = nTokens == 1 ? groups : 1;
      for (let g = 0; g < groups; g++) {
        const r = r0 + (span == 1 ? 4 * g : g);
        rows4Tokens(type, w + <usize>r * wRowBytes, <usize>span * wRowBytes, act, actStride, nIn, out + (<usize>r << 2), outStride, <usize>span << 2, t0, t1, scratch);
      }
      for (let r = r0 + 4 * groups; r < r1; r++) rows4Tokens(type, w + <usize>r * wRowBytes, 0, act, actStride, nIn, out + (<usize>r << 2), outStride, 0, t0, t1, scratch);
      continue;
    }
    if (nTokens == 1) {
      // one token (decode): four rows at a time from four long streams, as for the 4-row kernels above
      const rowType = type == F16 && corrections != 0 ? F16_REBASED : type;
      const q = (r1 - r0) >> 2;
      for (let i = 0; i < q; i++) {
        const r = r0 + i;
        dotRowsInStreams(rowType, w + <usize>r * wRowBytes, <usize>q * wRowBytes, act, nIn, scratch, out + (<usize>r << 2), <usize>q << 2);
      }
      for (let r = r0 + 4 * q; r < r1; r++) store<f32>(out + (<usize>r << 2), dotRow(rowType, w + <usize>r * wRowBytes, act, nIn, scratch));
      if (rowType == F16_REBASED) correctRebasedRows(corrections, nOut, r0, r1, act, out);
      continue;
    }
    for (let r = r0; r < r1; r++) {
      const row = w + <usize>r * wRowBytes;
      if (hasTile(type)) {
        for (let t = t0; t < t1; t += 4) {
          dotTile(type, row, act + <usize>t * actStride, actStride, nIn, scratch, out + <usize>t * outStride + (<usize>r << 2), outStride, min(4, t1 - t));
        }
        continue;
      }
      for (let t = t0; t < t1; t++) store<f32>(out + <usize>t * outStride + (<usize>r << 2), dotRow(type, row, act + <usize>t * actStride, nIn, scratch));
    }
  }
}

/** i32 fields of a product (see matmul): its activation rows, then per weight its address, lists, output and bias. */
const PRODUCT_FIRST = 0, PRODUCT_TOKENS = 1, PRODUCT_WEIGHTS = 2, WEIGHT_FIELDS = 4;

/** out [nTokens, nOut] f32, columns r0 … r1 − 1 += bias[r] (f32 at bias) */
function addBiasColumns(out: usize, nOut: i32, nTokens: i32, bias: usize, r0: i32, r1: i32): void {
  for (let t = 0; t < nTokens; t++) {
    const o = out + (<usize>(t * nOut) << 2);
    let r = r0;
    for (; r + 4 <= r1; r += 4) v128.store(o + (<usize>r << 2), f32x4.add(v128.load(o + (<usize>r << 2)), v128.load(bias + (<usize>r << 2))));
    for (; r < r1; r++) store<f32>(o + (<usize>r << 2), load<f32>(o + (<usize>r << 2)) + load<f32>(bias + (<usize>r << 2)));
  }
}

/**
 * A list of products sharing one weight type and shape (every thread calls this with the same arguments): a plain
 * matrix product, the experts a batch's tokens chose (ggml's mul_mat_id), the heads of MLA. Product p (i32 fields at
 * products + p·(2 + 4·nWeights)·4) multiplies act rows first … first + tokens − 1 with each of nWeights weights, given
 * as [address, F16 decode correction lists (0: none), output address, bias address (0: none)]:
 * out_k [tokens, nOut] f32 = W_k · x rows (+ bias_k [nOut] f32).
 * Products take consecutive, disjoint runs of rows in order (a row's layout depends on its product's token count).
 * First the threads quantize the rows of x [nTokens, nIn] f32 into act [nTokens rows of actRowBytes], claiming rows
 * from the counter at counter + 4 and counting finished ones at counter + 8; once all are done they claim chunks of
 * `chunk` rows (a multiple of 4) of one weight of one product from the counter at `counter`.
 * scratch: the thread's own, 512 bytes (float weights: 8·nIn; Q8_0, IQ4_NL: 8.5·nIn + 128; Q4_0, Q5_0: 4.5·nIn + 16;
 * Q4_K: 5.125·nIn + 32).
 */
export function matmul(
  type: i32, wRowBytes: i32, x: usize, act: usize, actRowBytes: i32, nIn: i32, nOut: i32, nTokens: i32,
  products: usize, nProducts: i32, nWeights: i32, counter: usize, chunk: i32, scratch: usize,
): void {
  const actStride = <usize>actRowBytes;
  const productBytes = <usize>(PRODUCT_WEIGHTS + WEIGHT_FIELDS * nWeights) << 2;
  let p: usize = 0; // the product of the row being quantized (rows are claimed in increasing order)
  for (let t = atomic.add<i32>(counter + 4, 1); t < nTokens; t = atomic.add<i32>(counter + 4, 1)) {
    while (t >= load<i32>(products + p * productBytes) + load<i32>(products + p * productBytes, PRODUCT_TOKENS << 2)) p++;
    const xt = x + <usize>t * (<usize>nIn << 2), at = act + <usize>t * actStride;
    if (widens(type, load<i32>(products + p * productBytes, PRODUCT_TOKENS << 2))) quantizeQ8Blocks(xt, at, nIn, Q8_0_WIDE);
    else quantize_row(type, xt, at, nIn);
    atomic.add<i32>(counter + 8, 1);
  }
  // rows claimed by other threads are being quantized now: wait for them
  while (atomic.load<i32>(counter + 8) < nTokens) {}
  const chunksPerWeight = (nOut + chunk - 1) / chunk;
  const units = nProducts * nWeights * chunksPerWeight;
  for (let u = atomic.add<i32>(counter, 1); u < units; u = atomic.add<i32>(counter, 1)) {
    const product = products + <usize>(u / (nWeights * chunksPerWeight)) * productBytes;
    const weight = product + (<usize>(PRODUCT_WEIGHTS + WEIGHT_FIELDS * (u / chunksPerWeight % nWeights)) << 2);
    const r0 = u % chunksPerWeight * chunk, r1 = min(nOut, r0 + chunk);
    const first = load<i32>(product, PRODUCT_FIRST << 2), tokens = load<i32>(product, PRODUCT_TOKENS << 2);
    const out = <usize>load<i32>(weight, 8), bias = <usize>load<i32>(weight, 12);
    multiplyRows(type, <usize>load<i32>(weight), wRowBytes, act + <usize>first * actStride, actStride, out, nIn, nOut, tokens,
      <usize>load<i32>(weight, 4), r0, r1, scratch);
    if (bias) addBiasColumns(out, nOut, tokens, bias, r0, r1);
  }
}

// ---- attention over the f16 KV cache ---------------------------------------------------------------------------

/** dst[i] = f32 of the f16 src[i] for i < n (n a multiple of 4). */
@inline function widenHalfs(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), widenF16(i32x4.shl(i32x4.extend_low_i16x8_u(v), 16)));
    v128.store(dst + (<usize>i << 2) + 16, widenF16(i32x4.shl(i32x4.extend_high_i16x8_u(v), 16)));
  }
  if (i < n) v128.store(dst + (<usize>i << 2), widenF16(i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(src + (<usize>i << 1))), 16)));
}

/** Σ a_d·b_d over n f32 values (n a multiple of 4). */
@inline function dotF32Plain(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  for (let d = 0; d < n; d += 4) acc = madd(v128.load(a + (<usize>d << 2)), v128.load(b + (<usize>d << 2)), acc);
  return hsum(acc);
}

/**
 * e^x for x ≤ 0 in four lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor polynomial to r⁶ (relative error
 * about 1e-7, within an ulp or two of expf), times 2^n through the exponent bits; below −87 the result would be
 * subnormal and is taken at −87 (≈ 1.6e-38; softmax weights that small round to 0 in f16 anyway).
 */
@inline function expNonPositive(x: v128): v128 {
  const clamped = f32x4.max(x, f32x4.splat(-87));
  const n = f32x4.nearest(f32x4.mul(clamped, f32x4.splat(1.4426950408889634)));
  // ln 2 in two parts, so that n·ln2 is subtracted without rounding error
  const r = f32x4.sub(f32x4.sub(clamped, f32x4.mul(n, f32x4.splat(0.693145751953125))), f32x4.mul(n, f32x4.splat(1.428606765330187e-6)));
  let p = f32x4.splat(<f32>1 / 720);
  p = madd(p, r, f32x4.splat(<f32>1 / 120));
  p = madd(p, r, f32x4.splat(<f32>1 / 24));
  p = madd(p, r, f32x4.splat(<f32>1 / 6));
  p = madd(p, r, f32x4.splat(0.5));
  p = madd(p, r, f32x4.splat(1));
  p = madd(p, r, f32x4.splat(1));
  return i32x4.add(p, i32x4.shl(i32x4.trunc_sat_f32x4_s(n), 23));
}

/** Four non-negative f32 values rounded to the nearest f16 value (ties to even), as f32; f16 subnormals below 2^−14. */
@inline function roundToF16(x: v128): v128 {
  // normal range: keep 10 mantissa bits; subnormal range: multiples of 2^−24
  const normal = v128.and(i32x4.add(x, i32x4.add(i32x4.splat(0xfff), v128.and(i32x4.shr_u(x, 13), i32x4.splat(1)))), i32x4.splat(0xffffe000));
  const subnormal = f32x4.mul(f32x4.nearest(f32x4.mul(x, f32x4.splat(16777216))), f32x4.splat(5.960464477539063e-8));
  return v128.bitselect(subnormal, normal, f32x4.lt(x, f32x4.splat(6.103515625e-5)));
}

/**
 * Four f32 lanes rounded to the nearest f16 value (ties to even), as f32 with their signs: ggml's f32 → f16 → f32
 * (from 65520 on ±∞, NaN stays NaN), as toF16 then f16 do one value at a time.
 */
@inline function roundToF16Signed(x: v128): v128 {
  const signBit = i32x4.splat(0x80000000);
  const magnitude = v128.andnot(x, signBit);
  const rounded = v128.bitselect(f32x4.splat(Infinity), roundToF16(magnitude), f32x4.ge(magnitude, f32x4.splat(65520)));
  return v128.bitselect(x, v128.or(rounded, v128.and(x, signBit)), f32x4.ne(x, x));
}

/**
 * Four dot products at once: [q·k0, q·k1, q·k2, q·k3] for k_i at k + i·kStride (n f32 values, n a multiple of 4):
 * each load of q serves four keys, and the four sums are reduced together.
 */
@inline function dot4Keys(q: usize, k: usize, kStride: usize, n: i32): v128 {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let d: usize = 0; d < <usize>n << 2; d += 16) {
    const qv = v128.load(q + d);
    a0 = madd(qv, v128.load(k + d), a0);
    a1 = madd(qv, v128.load(k + kStride + d), a1);
    a2 = madd(qv, v128.load(k + 2 * kStride + d), a2);
    a3 = madd(qv, v128.load(k + 3 * kStride + d), a3);
  }
  return laneSums4(a0, a1, a2, a3, true);
}

/**
 * tanh(y) in f32 lanes as (1 − e^−2|y|) / (1 + e^−2|y|) with y's sign, e^−2|y| by expNonPositive: absolute error
 * below 1.3e-7 (measured; relative below 7e-7 from |y| = 0.1 on, growing as |y| → 0 where 1 − e cancels), far below
 * the f16 rounding of the softmax weights that the capped scores become. (The soft-cap op uses tanhF64x2: exact bits.)
 */
@inline function tanhF32x4(y: v128): v128 {
  const e = expNonPositive(f32x4.mul(f32x4.abs(y), f32x4.splat(-2)));
  const t = f32x4.div(f32x4.sub(f32x4.splat(1), e), f32x4.add(f32x4.splat(1), e));
  return v128.or(t, v128.and(y, i32x4.splat(0x80000000)));
}

/** Scores from four kq values: soft-capped when cap is not 0 (c·tanh(kq/c), capInverse = 1/c), then times scale (ggml's order). */
@inline function scoresOf(kq: v128, scale: f32, capInverse: f32, cap: f32): v128 {
  const capped = cap != 0 ? f32x4.mul(tanhF32x4(f32x4.mul(kq, f32x4.splat(capInverse))), f32x4.splat(cap)) : kq;
  return f32x4.mul(capped, f32x4.splat(scale));
}

/**
 * scores[i, j] (rows of rowBytes) = the scores of queries i < nq (rows of headDim f32 at q) against keys j < n (at k,
 * kStride apart): four keys at a time against two queries (each key vector loaded once for both, each query vector
 * for four keys: eight sums in flight), the last odd query against four keys, the last n mod 4 keys one by one.
 */
function attentionScores(q: usize, nq: i32, headDim: i32, k: usize, kStride: usize, n: i32, scores: usize, rowBytes: usize,
  scale: f32, capInverse: f32, cap: f32): void {
  const headBytes = <usize>headDim << 2;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const k0 = k + <usize>j * kStride, k1 = k0 + kStride, k2 = k1 + kStride, k3 = k2 + kStride;
    const s = scores + (<usize>j << 2);
    let i = 0;
    for (; i + 2 <= nq; i += 2) {
      const q0 = q + <usize>i * headBytes, q1 = q0 + headBytes;
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (let d: usize = 0; d < headBytes; d += 16) {
        const x0 = v128.load(q0 + d), x1 = v128.load(q1 + d);
        let kv = v128.load(k0 + d);
        a0 = madd(x0, kv, a0); b0 = madd(x1, kv, b0);
        kv = v128.load(k1 + d);
        a1 = madd(x0, kv, a1); b1 = madd(x1, kv, b1);
        kv = v128.load(k2 + d);
        a2 = madd(x0, kv, a2); b2 = madd(x1, kv, b2);
        kv = v128.load(k3 + d);
        a3 = madd(x0, kv, a3); b3 = madd(x1, kv, b3);
      }
      v128.store(s + <usize>i * rowBytes, scoresOf(laneSums4(a0, a1, a2, a3, true), scale, capInverse, cap));
      v128.store(s + <usize>(i + 1) * rowBytes, scoresOf(laneSums4(b0, b1, b2, b3, true), scale, capInverse, cap));
    }
    if (i < nq) v128.store(s + <usize>i * rowBytes, scoresOf(dot4Keys(q + <usize>i * headBytes, k0, kStride, headDim), scale, capInverse, cap));
  }
  for (; j < n; j++) {
    for (let i = 0; i < nq; i++) {
      const kq = dotF32Plain(q + <usize>i * headBytes, k + <usize>j * kStride, headDim);
      store<f32>(scores + <usize>i * rowBytes + (<usize>j << 2), f32x4.extract_lane(scoresOf(f32x4.splat(kq), scale, capInverse, cap), 0));
    }
  }
}

/**
 * Scores row s [n4] (n4 a multiple of 4) → softmax weights over its entries [a, b), rounded to f16 (ggml multiplies
 * them with f16 values); the others (another row's keys, padding) 0. e_j = exp(s_j − max), then e_j / Σe.
 */
function softmaxRow(s: usize, n4: i32, a: i32, b: i32): void {
  for (let j = 0; j < a; j++) store<f32>(s + (<usize>j << 2), -Infinity);
  for (let j = b; j < n4; j++) store<f32>(s + (<usize>j << 2), -Infinity);
  let top = f32x4.splat(-Infinity);
  for (let j = 0; j < n4; j += 4) top = f32x4.max(top, v128.load(s + (<usize>j << 2)));
  const maxScore = f32x4.splat(max(max(f32x4.extract_lane(top, 0), f32x4.extract_lane(top, 1)), max(f32x4.extract_lane(top, 2), f32x4.extract_lane(top, 3))));
  let sum = f32x4.splat(0);
  for (let j = 0; j < n4; j += 4) {
    const at = s + (<usize>j << 2);
    // masked lanes (−∞) come out as 0
    const e = v128.and(expNonPositive(f32x4.sub(v128.load(at), maxScore)), f32x4.ne(v128.load(at), f32x4.splat(-Infinity)));
    v128.store(at, e);
    sum = f32x4.add(sum, e);
  }
  const total = f32x4.splat(hsum(sum));
  for (let j = 0; j < n4; j += 4) {
    const at = s + (<usize>j << 2);
    v128.store(at, roundToF16(f32x4.div(v128.load(at), total)));
  }
}

/** o[d] = Σ_j p_j · v_j[d] for d < valueDim over j < n (weights at p, values at v, vStride apart), 16 dims at a time in registers. */
function weightedValues(p: usize, v: usize, vStride: usize, n: i32, valueDim: i32, o: usize): void {
  let d: usize = 0;
  for (; d + 16 <= <usize>valueDim; d += 16) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      const w = v128.load32_splat(p + (<usize>j << 2));
      a0 = madd(v128.load(vj), w, a0);
      a1 = madd(v128.load(vj + 16), w, a1);
      a2 = madd(v128.load(vj + 32), w, a2);
      a3 = madd(v128.load(vj + 48), w, a3);
      vj += vStride;
    }
    v128.store(o + (d << 2), a0);
    v128.store(o + (d << 2) + 16, a1);
    v128.store(o + (d << 2) + 32, a2);
    v128.store(o + (d << 2) + 48, a3);
  }
  for (; d < <usize>valueDim; d += 4) {
    let a = f32x4.splat(0);
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      a = madd(v128.load(vj), v128.load32_splat(p + (<usize>j << 2)), a);
      vj += vStride;
    }
    v128.store(o + (d << 2), a);
  }
}

/** weightedValues of two weight rows (p0, p1) at once into o0, o1: each value vector loaded once for both. */
function weightedValues2(p0: usize, p1: usize, v: usize, vStride: usize, n: i32, valueDim: i32, o0: usize, o1: usize): void {
  let d: usize = 0;
  for (; d + 16 <= <usize>valueDim; d += 16) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      const w0 = v128.load32_splat(p0 + (<usize>j << 2)), w1 = v128.load32_splat(p1 + (<usize>j << 2));
      let x = v128.load(vj);
      a0 = madd(x, w0, a0); b0 = madd(x, w1, b0);
      x = v128.load(vj + 16);
      a1 = madd(x, w0, a1); b1 = madd(x, w1, b1);
      x = v128.load(vj + 32);
      a2 = madd(x, w0, a2); b2 = madd(x, w1, b2);
      x = v128.load(vj + 48);
      a3 = madd(x, w0, a3); b3 = madd(x, w1, b3);
      vj += vStride;
    }
    v128.store(o0 + (d << 2), a0); v128.store(o0 + (d << 2) + 16, a1); v128.store(o0 + (d << 2) + 32, a2); v128.store(o0 + (d << 2) + 48, a3);
    v128.store(o1 + (d << 2), b0); v128.store(o1 + (d << 2) + 16, b1); v128.store(o1 + (d << 2) + 32, b2); v128.store(o1 + (d << 2) + 48, b3);
  }
  for (; d < <usize>valueDim; d += 4) {
    let a = f32x4.splat(0), b = a;
    let vj = v + (d << 2);
    for (let j = 0; j < n; j++) {
      const x = v128.load(vj);
      a = madd(x, v128.load32_splat(p0 + (<usize>j << 2)), a);
      b = madd(x, v128.load32_splat(p1 + (<usize>j << 2)), b);
      vj += vStride;
    }
    v128.store(o0 + (d << 2), a);
    v128.store(o1 + (d << 2), b);
  }
}

/**
 * Attention over the paged f16 cache. Every thread calls this with the same arguments.
 * The cache: keys [slot, keyStride] f16 with kv head g's key at g·headDim, values [slot, valueStride] f16 with its
 * value at g·valueDim (values may be the key rows themselves: MLA reads the latent at the start of each row).
 * Rows see entries of `list` (i32 cache slots): row t sees the spans[2t + 1] entries from spans[2t] on (rows of one
 * sequence share its entries; a causal, windowed or bidirectional mask is just where a row's span lies).
 * When wideKeys is not 0 (rows or jobs share entries), phase 1 widens the listed cache rows to f32 once, in chunks
 * of 16 entries claimed from counter + 4 (finished ones counted at counter + 8): → wideKeys [nList, nKvHeads·headDim],
 * wideValues [nList, nKvHeads·valueDim]. Otherwise each job widens its own entries' head into its scratch.
 * Phase 2: jobs (kv head, part, block) claimed from the counter, kv head by kv head (its widened keys and values stay
 * in cache). A block (blocks: i32 pairs [first row, rows]) is a run of rows of one sequence, and a part up to
 * headsPerJob of the query heads that share the kv head: the job's queries (row-major over its rows and heads) meet
 * the union of its rows' entries together (each key and value read once for all of them), each row's weights on
 * the entries outside its own span 0. Scores: q·k, soft-capped when cap is not 0 (c·tanh(q·k/c), capInverse =
 * 1/c), times scale. q: [nTokens, nHeads·headDim] f32, out [nTokens, nHeads·valueDim]; headDim and valueDim
 * multiples of 4. maxQueries: a job's rows × heads at most; maxLength: the longest union of a block's spans.
 * scratch (per thread, floats): q of the job's queries [maxQueries, headDim] | scores [maxQueries, maxLength + 3] |
 * without wideKeys: the job's keys [maxLength + 3, headDim] and values [maxLength + 3, valueDim].
 */
export function attention(
  q: usize, out: usize, keys: usize, values: usize, keyStride: i32, valueStride: i32, list: usize, nList: i32,
  wideKeys: usize, wideValues: usize, spans: usize, blocks: usize, nBlocks: i32, nHeads: i32, nKvHeads: i32, headDim: i32,
  valueDim: i32, headsPerJob: i32, maxQueries: i32, maxLength: i32, scale: f32, capInverse: f32, cap: f32, counter: usize, scratch: usize,
): void {
  const keyRowBytes = <usize>keyStride << 1, valueRowBytes = <usize>valueStride << 1;
  const wideKeyBytes = <usize>(nKvHeads * headDim) << 2, wideValueBytes = <usize>(nKvHeads * valueDim) << 2;
  if (wideKeys) {
    for (let i0 = atomic.add<i32>(counter + 4, 16); i0 < nList; i0 = atomic.add<i32>(counter + 4, 16)) {
      const i1 = min(nList, i0 + 16);
      for (let i = i0; i < i1; i++) {
        const slot = <usize>load<i32>(list + (<usize>i << 2));
        widenHalfs(keys + slot * keyRowBytes, wideKeys + <usize>i * wideKeyBytes, nKvHeads * headDim);
        widenHalfs(values + slot * valueRowBytes, wideValues + <usize>i * wideValueBytes, nKvHeads * valueDim);
      }
      atomic.add<i32>(counter + 8, i1 - i0);
    }
    // entries claimed by other threads are being widened now: wait for them
    while (atomic.load<i32>(counter + 8) < nList) {}
  }

  const group = nHeads / nKvHeads;
  const parts = (group + headsPerJob - 1) / headsPerJob;
  const headBytes = <usize>headDim << 2, valueBytes = <usize>valueDim << 2;
  const padded = <usize>(maxLength + 3) & ~3;
  const qg = scratch;
  const scores = qg + <usize>maxQueries * headBytes;
  const ownKeys = scores + <usize>maxQueries * (padded << 2), ownValues = ownKeys + padded * headBytes;
  while (true) {
    const job = atomic.add<i32>(counter, 1);
    if (job >= nKvHeads * parts * nBlocks) break;
    const g = job / (parts * nBlocks), part = job / nBlocks % parts, block = job % nBlocks;
    // query heads h0 … h0 + nh − 1 of rows t0 … t0 + nRows − 1
    const h0 = g * group + part * headsPerJob, nh = min(headsPerJob, group - part * headsPerJob);
    const t0 = load<i32>(blocks + (<usize>block << 3)), nRows = load<i32>(blocks + (<usize>block << 3) + 4);
    const nq = nRows * nh;
    // the union [first, first + n) of the rows' entries
    let first = i32.MAX_VALUE, end = 0;
    for (let t = t0; t < t0 + nRows; t++) {
      const from = load<i32>(spans + (<usize>t << 3));
      first = min(first, from);
      end = max(end, from + load<i32>(spans + (<usize>t << 3) + 4));
    }
    const n = end - first, n4 = (n + 3) & ~3;
    // this job's keys and values: rows of kStride / vStride bytes, widened by phase 1 or here (this kv head's part only)
    if (!wideKeys) {
      for (let j = 0; j < n; j++) {
        const slot = <usize>load<i32>(list + ((<usize>first + <usize>j) << 2));
        widenHalfs(keys + slot * keyRowBytes + (<usize>g * headBytes >> 1), ownKeys + <usize>j * headBytes, headDim);
        widenHalfs(values + slot * valueRowBytes + (<usize>g * valueBytes >> 1), ownValues + <usize>j * valueBytes, valueDim);
      }
    }
    const k = wideKeys ? wideKeys + <usize>first * wideKeyBytes + <usize>g * headBytes : ownKeys;
    const v = wideKeys ? wideValues + <usize>first * wideValueBytes + <usize>g * valueBytes : ownValues;
    const kStride = wideKeys ? wideKeyBytes : headBytes, vStride = wideKeys ? wideValueBytes : valueBytes;
    // the queries, rounded to f16 as ggml converts q to the cache's type: query i = (row t0 + i / nh, head h0 + i % nh)
    for (let r = 0; r < nRows; r++) {
      const qAt = q + <usize>((t0 + r) * nHeads + h0) * headBytes, at = qg + <usize>(r * nh) * headBytes;
      for (let i: usize = 0; i < <usize>(nh * headDim) << 2; i += 16) v128.store(at + i, roundToF16Signed(v128.load(qAt + i)));
    }
    const rowBytes = <usize>n4 << 2;
    attentionScores(qg, nq, headDim, k, kStride, n, scores, rowBytes, scale, capInverse, cap);
    for (let i = 0; i < nq; i++) {
      const t = t0 + i / nh, from = load<i32>(spans + (<usize>t << 3)) - first;
      softmaxRow(scores + <usize>i * rowBytes, n4, from, from + load<i32>(spans + (<usize>t << 3) + 4));
    }
    // out = Σ_j p_j · v_j, two queries at a time
    let i = 0;
    for (; i + 2 <= nq; i += 2) {
      const o0 = out + <usize>((t0 + i / nh) * nHeads + h0 + i % nh) * valueBytes;
      const o1 = out + <usize>((t0 + (i + 1) / nh) * nHeads + h0 + (i + 1) % nh) * valueBytes;
      weightedValues2(scores + <usize>i * rowBytes, scores + <usize>(i + 1) * rowBytes, v, vStride, n, valueDim, o0, o1);
    }
    if (i < nq) weightedValues(scores + <usize>i * rowBytes, v, vStride, n, valueDim, out + <usize>((t0 + i / nh) * nHeads + h0 + i % nh) * valueBytes);
  }
}

// ---- element-wise ---------------------------------------------------------------------------------------------

// e^t in f64 lanes, step for step as the reference backend's expF64 (src/kernels/reference.ts), so both give the same
// bits: t clamped to [−708, 709]; n = round(t·log2 e) by the 1.5·2^52 trick; r = t − n·ln2 in two parts (n·LN2_HI is
// exact); e^r by its degree-12 Taylor polynomial (|r| ≤ 0.35: truncation below 2e−16 relative), evaluated by
// Estrin's scheme; times 2^n built in the exponent bits.
const EXP_ROUND: f64 = 6755399441055744; // 1.5·2^52
const LOG2E: f64 = 1.4426950408889634;
const LN2_HI: f64 = 0.6931471803691238; // ln 2 to 32 bits
const LN2_LO: f64 = 1.9082149292705877e-10; // ln 2 − LN2_HI

@inline function expF64x2(t: v128): v128 {
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
@inline function promoteHigh(v: v128): v128 {
  return f64x2.promote_low_f32x4(i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
}

/** Four f32 lanes from two f64x2 (low: lanes 0, 1; high: lanes 2, 3), each rounded once. */
@inline function demotePairs(low: v128, high: v128): v128 {
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

// the element-wise ops of `elementwise`: out = swiglu(x, y), gelu(x), gelu(x)·y, c·tanh(x/c) (a = 1/c, b = c), a·x
const SWIGLU = 0, GELU = 1, GEGLU = 2, SOFTCAP = 3, SCALE = 4;

@inline function opF32x4(op: i32, x: v128, y: v128, a: f32, b: f32): v128 {
  switch (op) {
    case SWIGLU: return swigluF32x4(x, y);
    case GELU: return geluF32x4(x);
    case GEGLU: return f32x4.mul(geluF32x4(x), y);
    case SOFTCAP: return softcapF32x4(x, a, b);
    default: return f32x4.mul(x, f32x4.splat(a));
  }
}

/** out[i] = op(x[i], y[i]) for i0 ≤ i < i1: four values at a time, the last ones one by one. */
@inline function opValues(op: i32, x: usize, y: usize, out: usize, i0: i32, i1: i32, a: f32, b: f32): void {
  const binary = op == SWIGLU || op == GEGLU;
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
 * out[i] = op(x[i], y[i]) (the ops above; y only for SWIGLU and GEGLU) for chunks of `chunk` values claimed from the
 * counter. (`scratch`: the pooled kernels' per-thread area, unused.)
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
      default: opValues(SCALE, x, y, out, i0, i1, a, b); break;
    }
  }
}

// what rowSumsPair adds up: x² in f64 (rmsnorm), x, or (x − mean)² with the difference and its square rounded to f32 (layernorm)
const SQUARES = 0, VALUES = 1, CENTRED_SQUARES = 2;

/** The terms of rowSumsPair for four values of row a and four of row b: [a_k, b_k] in f64, k = 0…3, in t0…t3. */
@inline function pairTerms(va: v128, vb: v128, kind: i32, meanA: f32, meanB: f32, k: i32): v128 {
  if (kind == CENTRED_SQUARES) {
    va = f32x4.sub(va, f32x4.splat(meanA));
    vb = f32x4.sub(vb, f32x4.splat(meanB));
    va = f32x4.mul(va, va);
    vb = f32x4.mul(vb, vb);
  }
  let pair: v128;
  switch (k) {
    case 0: pair = i8x16.shuffle(va, vb, 0, 1, 2, 3, 16, 17, 18, 19, 0, 0, 0, 0, 0, 0, 0, 0); break;
    case 1: pair = i8x16.shuffle(va, vb, 4, 5, 6, 7, 20, 21, 22, 23, 0, 0, 0, 0, 0, 0, 0, 0); break;
    case 2: pair = i8x16.shuffle(va, vb, 8, 9, 10, 11, 24, 25, 26, 27, 0, 0, 0, 0, 0, 0, 0, 0); break;
    default: pair = i8x16.shuffle(va, vb, 12, 13, 14, 15, 28, 29, 30, 31, 0, 0, 0, 0, 0, 0, 0, 0); break;
  }
  const wide = f64x2.promote_low_f32x4(pair);
  return kind == SQUARES ? f64x2.mul(wide, wide) : wide;
}

/** Σ over two rows a and b of n values of the terms `kind`, each row summed in f64 in order (lane 0: a, lane 1: b). */
@inline function rowSumsPair(a: usize, b: usize, n: i32, kind: i32, meanA: f32, meanB: f32): v128 {
  let acc = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const va = v128.load(a + (<usize>i << 2)), vb = v128.load(b + (<usize>i << 2));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 0));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 1));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 2));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 3));
  }
  for (; i < n; i++) acc = f64x2.add(acc, pairTerms(v128.load32_zero(a + (<usize>i << 2)), v128.load32_zero(b + (<usize>i << 2)), kind, meanA, meanB, 0));
  return acc;
}

/** out = x · s · weight over a row of n values (s: the row's f32 scale; x·s rounded to f32 first). */
@inline function scaleRow(x: usize, weight: usize, out: usize, n: i32, s: f32): void {
  const vs = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    v128.store(out + at, f32x4.mul(f32x4.mul(v128.load(x + at), vs), v128.load(weight + at)));
  }
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), (load<f32>(x + (<usize>i << 2)) * s) * load<f32>(weight + (<usize>i << 2)));
}

/** 1 / sqrt(mean + eps) rounded to f32, the mean of squares rounded to f32 first (as the reference backend). */
@inline function rmsScale(sumSquares: f64, n: i32, eps: f64): f32 {
  return <f32>(1 / Math.sqrt(<f64><f32>(sumSquares / n) + eps));
}

/**
 * RMS norm of rows [nTokens, dim]: out = x / sqrt(mean(x²) + eps) · weight. Two rows at a time share the f64 lanes;
 * each row's squares are summed in order, as the reference backend does.
 */
export function rmsnorm(x: usize, weight: usize, out: usize, nTokens: i32, dim: i32, eps: f64): void {
  const rowBytes = <usize>dim << 2;
  for (let t = 0; t < nTokens; t += 2) {
    const a = x + <usize>t * rowBytes;
    const b = t + 1 < nTokens ? a + rowBytes : a;
    const sums = rowSumsPair(a, b, dim, SQUARES, 0, 0);
    scaleRow(a, weight, out + <usize>t * rowBytes, dim, rmsScale(f64x2.extract_lane(sums, 0), dim, eps));
    if (t + 1 < nTokens) scaleRow(b, weight, out + <usize>(t + 1) * rowBytes, dim, rmsScale(f64x2.extract_lane(sums, 1), dim, eps));
  }
}

/** out = ((x − mean)·scale)·weight + bias over a row of n values, each step rounded to f32 (as formulas.ts layerNormStats' callers). */
@inline function normalizeRow(x: usize, weight: usize, bias: usize, out: usize, n: i32, mean: f32, scale: f32): void {
  const vm = f32x4.splat(mean), vs = f32x4.splat(scale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    v128.store(out + at, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(v128.load(x + at), vm), vs), v128.load(weight + at)), v128.load(bias + at)));
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    store<f32>(out + at, ((load<f32>(x + at) - mean) * scale) * load<f32>(weight + at) + load<f32>(bias + at));
  }
}

/**
 * LayerNorm of rows [nTokens, dim] as ggml_norm (formulas.ts layerNormStats): mean = Σx / dim and var = Σ(x − mean)² / dim,
 * both sums in f64 in order, scale = 1 / sqrt(var + eps) in f32; then out = (x − mean)·scale·weight + bias. Rows in
 * chunks of `chunk` claimed from the counter, two at a time sharing the f64 lanes. (`scratch`: unused.)
 */
export function layernorm(x: usize, weight: usize, bias: usize, out: usize, nTokens: i32, dim: i32, eps: f32, counter: usize, chunk: i32, scratch: usize): void {
  const rowBytes = <usize>dim << 2;
  while (true) {
    const t0 = atomic.add<i32>(counter, chunk);
    if (t0 >= nTokens) break;
    const t1 = min(nTokens, t0 + chunk);
    for (let t = t0; t < t1; t += 2) {
      const a = x + <usize>t * rowBytes;
      const b = t + 1 < t1 ? a + rowBytes : a;
      const sums = rowSumsPair(a, b, dim, VALUES, 0, 0);
      const meanA = <f32>(f64x2.extract_lane(sums, 0) / <f64>dim), meanB = <f32>(f64x2.extract_lane(sums, 1) / <f64>dim);
      const squares = rowSumsPair(a, b, dim, CENTRED_SQUARES, meanA, meanB);
      const scaleA = <f32>1 / Mathf.sqrt(<f32>(f64x2.extract_lane(squares, 0) / <f64>dim) + eps);
      normalizeRow(a, weight, bias, out + <usize>t * rowBytes, dim, meanA, scaleA);
      if (t + 1 < t1) {
        const scaleB = <f32>1 / Mathf.sqrt(<f32>(f64x2.extract_lane(squares, 1) / <f64>dim) + eps);
        normalizeRow(b, weight, bias, out + <usize>(t + 1) * rowBytes, dim, meanB, scaleB);
      }
    }
  }
}

/** Where the area this module reserves ends (static data, then F16_TABLE and GELU_TABLE); 0 if its static data overflows. */
export function reserved_end(): usize {
  return __heap_base <= F16_TABLE ? TABLES_END : 0;
}
