// Shared by every family: the build's RELAXED flag, ggml type numbers, f16/bf16 scalar conversions, the F16 and
// GELU tables and where the reserved area ends, hsum.

export const RELAXED: bool = ASC_FEATURE_RELAXED_SIMD;

// ggml type numbers
export const F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, IQ4_XS = 23, BF16 = 30;
/** kiln's own: F16 weights read with widenF16Rebased, for rows that have a correction list */
export const F16_REBASED = -1;

// ---- scalars ------------------------------------------------------------------------------------------------

/** 2^112: moves an f16 exponent (bias 15) shifted into f32 position up to f32's bias (127). */
export const F16_EXP_ADJUST: f32 = reinterpret<f32>(0x77800000);

/** f32 of the f16 pattern h (zero, subnormal, normal; inf/NaN are not expected in weights). */
@inline export function f16(h: u32): f32 {
  const magnitude = reinterpret<f32>((h & 0x7fff) << 13) * F16_EXP_ADJUST;
  return reinterpret<f32>(reinterpret<u32>(magnitude) | ((h & 0x8000) << 16));
}

/** The f16 pattern nearest to x (ties to even), as ggml's fp32 → fp16. */
export function toF16(x: f32): u32 {
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
@inline export function toBf16(x: f32): u32 {
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
export const GELU_TABLE: usize = F16_TABLE + (65536 << 2);
const TABLES_END: usize = GELU_TABLE + (65536 << 2);

export function gelu_table(): usize {
  return GELU_TABLE;
}

export function init_tables(): void {
  for (let h: u32 = 0; h < 65536; h++) store<f32>(F16_TABLE + (<usize>h << 2), f16(h));
}

/** f32 of the f16 stored at p, by table. */
@inline export function loadF16(p: usize): f32 {
  return load<f32>(F16_TABLE + (<usize>load<u16>(p) << 2));
}

@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Where the area this module reserves ends (static data, then F16_TABLE and GELU_TABLE); 0 if its static data overflows. */
export function reserved_end(): usize {
  return __heap_base <= F16_TABLE ? TABLES_END : 0;
}
