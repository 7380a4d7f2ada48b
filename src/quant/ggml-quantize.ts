// Float32 rows to any storable ggml type, bit-identical to ggml_quantize_chunk (what llama-quantize calls):
// F32 copies, F16/BF16 round to nearest even, Q4_0…Q8_0, Q2_K…Q6_K, IQ4_NL and IQ4_XS as in ggml-quants.c, using
// the importance-weighted search when an imatrix row of column weights is given (Q8_0 and F16/BF16 ignore it).

import { GGMLType, rowBytes, typeName } from '../tensor/ggml-type.js';
import { fp32ToBf16, fp32ToFp16 } from '../tensor/float16.js';
import { quantizeRowK, type KQuantType } from './k-quants.js';
import { quantizeRowLegacy, type LegacyType } from './legacy-quants.js';
import { quantizeRowIQ4, type IQ4Type } from './iq4-quants.js';

export class UnsupportedQuantTypeError extends Error {
  constructor(readonly type: GGMLType) {
    super(`kiln cannot quantize to ${typeName(type)}`);
    this.name = 'UnsupportedQuantTypeError';
  }
}

const LEGACY: ReadonlyMap<GGMLType, LegacyType> = new Map([
  [GGMLType.Q4_0, 'Q4_0'], [GGMLType.Q4_1, 'Q4_1'], [GGMLType.Q5_0, 'Q5_0'], [GGMLType.Q5_1, 'Q5_1'], [GGMLType.Q8_0, 'Q8_0'],
]);

const K_QUANTS: ReadonlyMap<GGMLType, KQuantType> = new Map([
  [GGMLType.Q2_K, 'Q2_K'], [GGMLType.Q3_K, 'Q3_K'], [GGMLType.Q4_K, 'Q4_K'], [GGMLType.Q5_K, 'Q5_K'], [GGMLType.Q6_K, 'Q6_K'],
]);

const IQ4: ReadonlyMap<GGMLType, IQ4Type> = new Map([[GGMLType.IQ4_NL, 'IQ4_NL'], [GGMLType.IQ4_XS, 'IQ4_XS']]);

/** Types quantizeRow can produce. */
export function canQuantizeTo(type: GGMLType): boolean {
  return type === GGMLType.F32 || type === GGMLType.F16 || type === GGMLType.BF16 || LEGACY.has(type) || K_QUANTS.has(type) || IQ4.has(type);
}

/**
 * Quantizes x[xOffset .. xOffset+n) (one row; n a multiple of the type's block size) into
 * out[outOffset .. outOffset + rowBytes(type, n)). `importance`: the row's n imatrix column weights, if any.
 */
export function quantizeRow(
  type: GGMLType, x: Float32Array, xOffset: number, n: number, out: Uint8Array, outOffset: number, importance?: Float32Array,
): void {
  const bytes = rowBytes(type, n);
  if (outOffset + bytes > out.length) throw new RangeError(`output too small for a ${typeName(type)} row of ${n} values`);
  const row = x.subarray(xOffset, xOffset + n);
  if (importance && importance.length < n) throw new RangeError(`importance has ${importance.length} values, the row ${n}`);
  const legacy = LEGACY.get(type);
  if (legacy) return quantizeRowLegacy(legacy, row, n, out, outOffset, importance);
  const k = K_QUANTS.get(type);
  if (k) return quantizeRowK(k, row, n, out, outOffset, importance);
  const iq4 = IQ4.get(type);
  if (iq4) return quantizeRowIQ4(iq4, row, n, out, outOffset, importance);
  const view = new DataView(out.buffer, out.byteOffset + outOffset, bytes);
  switch (type) {
    case GGMLType.F32:
      for (let i = 0; i < n; i++) view.setFloat32(4 * i, row[i], true);
      return;
    case GGMLType.F16:
      for (let i = 0; i < n; i++) view.setUint16(2 * i, fp32ToFp16(row[i]), true);
      return;
    case GGMLType.BF16:
      for (let i = 0; i < n; i++) view.setUint16(2 * i, fp32ToBf16(row[i]), true);
      return;
    default:
      throw new UnsupportedQuantTypeError(type);
  }
}

/**
 * Quantizes a matrix of `nRows` rows of `nPerRow` values (row-major) and returns its bytes.
 * `importance` (nPerRow values) weighs the columns of every row.
 */
export function quantizeRows(type: GGMLType, x: Float32Array, nPerRow: number, nRows: number, importance?: Float32Array): Uint8Array {
  const bytesPerRow = rowBytes(type, nPerRow);
  const out = new Uint8Array(bytesPerRow * nRows);
  for (let r = 0; r < nRows; r++) quantizeRow(type, x, r * nPerRow, nPerRow, out, r * bytesPerRow, importance);
  return out;
}
