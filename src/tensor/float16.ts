// Half-precision conversions, bit-exact with ggml:
//   fp16 (IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits) and
//   bf16 (the top 16 bits of a float32: 1 sign, 8 exponent, 7 mantissa bits).
// Values travel as their 16-bit patterns (numbers 0…0xffff); arrays of them are Uint16Array.
// float32 → 16 bits rounds to nearest, ties to even; NaN stays NaN (ggml: fp16 0x7e00 with the sign,
// bf16 the top bits with the quiet bit 0x40 forced on).

// One float32 seen as its bits: the aliasing used to take float32 patterns apart and put them together.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** FP16_TO_FP32[h]: the float32 value of the fp16 pattern h (all 65536 of them, built bit by bit). */
export const FP16_TO_FP32: Float32Array = buildFp16Table();

/** BF16_TO_FP32[b]: the float32 value of the bf16 pattern b (its bits shifted up by 16). */
export const BF16_TO_FP32: Float32Array = buildBf16Table();

function buildBf16Table(): Float32Array {
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let b = 0; b < 65536; b++) bits[b] = b << 16;
  return table;
}

function buildFp16Table(): Float32Array {
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0x1f) bits[h] = sign | 0x7f800000 | (mantissa << 13); // inf / NaN (payload kept)
    else if (exponent !== 0) bits[h] = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    else table[h] = (sign ? -1 : 1) * mantissa * 2 ** -24; // zero and subnormals: mantissa · 2^-24 exactly
  }
  return table;
}

/** The fp16 pattern nearest to the float32 whose bits are `w` (ties to even). */
function fp16FromFloat32Bits(w: number): number {
  const sign = (w >>> 16) & 0x8000;
  const magnitude = w & 0x7fffffff;
  if (magnitude > 0x7f800000) return sign | 0x7e00; // NaN
  if (magnitude >= 0x477ff000) return sign | 0x7c00; // ≥ 65520 (halfway above 65504, ties to even 0x7c00): inf
  if (magnitude < 0x38800000) {
    // below 2^-14: an fp16 subnormal, round(|x|·2^24); adding 1.5·2^52 rounds a double to an integer, ties to even
    scratchU32[0] = magnitude;
    const scaled = scratchF32[0] * 2 ** 24;
    return sign | ((scaled + 6755399441055744) - 6755399441055744);
  }
  // normal: rebias the exponent (127 → 15), drop 13 mantissa bits rounding to nearest even; a carry moves into the exponent
  const rebiased = magnitude - 0x38000000;
  return sign | ((rebiased + 0xfff + ((rebiased >> 13) & 1)) >> 13);
}

/** The bf16 pattern of the float32 whose bits are `w`, as ggml_compute_fp32_to_bf16. */
function bf16FromFloat32Bits(w: number): number {
  if ((w & 0x7fffffff) > 0x7f800000) return ((w >>> 16) | 64) & 0xffff; // NaN: keep it NaN, force quiet
  return ((w + 0x7fff + ((w >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even (uint32 wrap-around as in C)
}

export function fp16ToFp32(h: number): number {
  return FP16_TO_FP32[h & 0xffff];
}

/** `x` (first rounded to float32) as the nearest fp16 pattern. */
export function fp32ToFp16(x: number): number {
  scratchF32[0] = x;
  return fp16FromFloat32Bits(scratchU32[0]);
}

export function bf16ToFp32(b: number): number {
  return BF16_TO_FP32[b & 0xffff];
}

/** `x` (first rounded to float32) as the nearest bf16 pattern. */
export function fp32ToBf16(x: number): number {
  scratchF32[0] = x;
  return bf16FromFloat32Bits(scratchU32[0]);
}

/** dst[i] = float32 of fp16 src[i] for i < src.length. */
export function fp16ToFp32Array(src: Uint16Array, dst: Float32Array): void {
  checkLengths(src.length, dst.length);
  for (let i = 0; i < src.length; i++) dst[i] = FP16_TO_FP32[src[i]];
}

/** dst[i] = fp16 of src[i] for i < src.length. */
export function fp32ToFp16Array(src: Float32Array, dst: Uint16Array): void {
  checkLengths(src.length, dst.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = fp16FromFloat32Bits(bits[i]);
}

/** dst[i] = float32 of bf16 src[i] for i < src.length. */
export function bf16ToFp32Array(src: Uint16Array, dst: Float32Array): void {
  checkLengths(src.length, dst.length);
  for (let i = 0; i < src.length; i++) dst[i] = BF16_TO_FP32[src[i]];
}

/** dst[i] = bf16 of src[i] for i < src.length. */
export function fp32ToBf16Array(src: Float32Array, dst: Uint16Array): void {
  checkLengths(src.length, dst.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = bf16FromFloat32Bits(bits[i]);
}

function checkLengths(srcLength: number, dstLength: number): void {
  if (dstLength < srcLength) throw new RangeError(`destination holds ${dstLength} values, source has ${srcLength}`);
}
