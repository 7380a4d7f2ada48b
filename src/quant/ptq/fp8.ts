// 8-bit floating point as in the OCP FP8 specification: E4M3 (bias 7, no infinities, S.1111.111 is NaN,
// largest normal 1.75·2⁸ = 448) and E5M2 (bias 15, IEEE-like with ±inf and NaNs, largest normal 1.75·2¹⁵ = 57344).
// Encoding rounds to nearest, ties to even, and saturates: magnitudes beyond the largest normal become it.

import { roundHalfEven } from '../../tensor/index.js';

export interface Fp8Format {
  name: 'e4m3' | 'e5m2';
  exponentBits: number;
  mantissaBits: number;
  bias: number;
  /** largest finite magnitude */
  max: number;
  /** the code (without sign) of the largest finite magnitude */
  maxCode: number;
  /** the code (without sign) written for NaN */
  nanCode: number;
}

export const E4M3: Fp8Format = { name: 'e4m3', exponentBits: 4, mantissaBits: 3, bias: 7, max: 448, maxCode: 0x7e, nanCode: 0x7f };
export const E5M2: Fp8Format = { name: 'e5m2', exponentBits: 5, mantissaBits: 2, bias: 15, max: 57344, maxCode: 0x7b, nanCode: 0x7f };

/** The byte encoding x (round to nearest even, saturating). */
export function encodeFp8(x: number, f: Fp8Format): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  if (Number.isNaN(x)) return f.nanCode;
  const a = Math.abs(x);
  if (a >= f.max) return sign | f.maxCode;
  const minExponent = 1 - f.bias; // of the smallest normal; subnormals share its quantum
  let e = Math.max(Math.floor(Math.log2(a)), minExponent);
  if (a > 0 && e > minExponent && 2 ** e > a) e--; // log2 rounding near powers of two
  const implicit = 1 << f.mantissaBits;
  // a = q · 2^(e − mantissaBits), q the significand with its implicit bit
  let q = roundHalfEven(a * 2 ** (f.mantissaBits - e));
  if (q === 2 * implicit) { e++; q = implicit; }
  if (q < implicit) return sign | q; // subnormal (or zero): exponent field 0
  const code = ((e + f.bias) << f.mantissaBits) | (q - implicit);
  return sign | Math.min(code, f.maxCode);
}

/** The value of an FP8 byte. */
export function decodeFp8(byte: number, f: Fp8Format): number {
  const sign = byte & 0x80 ? -1 : 1;
  const exponent = (byte >> f.mantissaBits) & ((1 << f.exponentBits) - 1);
  const mantissa = byte & ((1 << f.mantissaBits) - 1);
  const implicit = 1 << f.mantissaBits;
  const allOnes = (1 << f.exponentBits) - 1;
  if (f.name === 'e4m3' && exponent === allOnes && mantissa === implicit - 1) return NaN;
  if (f.name === 'e5m2' && exponent === allOnes) return mantissa === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * (mantissa / implicit) * 2 ** (1 - f.bias);
  return sign * (1 + mantissa / implicit) * 2 ** (exponent - f.bias);
}

/** x rounded to the nearest FP8 value (encode then decode). */
export function roundToFp8(x: number, f: Fp8Format): number {
  return decodeFp8(encodeFp8(x, f), f);
}
