// Single-precision arithmetic as C evaluates `float` expressions, so that quantizers ported from ggml round
// exactly as it does. A sum, product, quotient or square root of two float32 values computed in float64 and
// rounded once with Math.fround is the correctly rounded float32 result (53 >= 2*24 + 2 bits).

export const f32 = Math.fround;

/** ggml's nearest_int (adding 1.5·2^23 in float32, valid for |x| < 2^22) is, for float32 x, rounding to the
 *  nearest integer with halves to even. */
export { roundHalfEven as nearestInt } from '../tensor/quants/block32.js';

/** C's roundf: halves away from zero. */
export function roundAwayFromZero(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** C's conversion of an int to int8_t / uint8_t (keeps the low 8 bits). */
export function toInt8(x: number): number {
  return (x << 24) >> 24;
}

export function toUint8(x: number): number {
  return x & 0xff;
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
