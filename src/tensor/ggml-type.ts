// ggml tensor types as numbered in the GGUF format (ggml.h `enum ggml_type`).
// Every type stores its values in blocks: `blockSize` values packed into `typeSize` bytes.

export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
}

export interface TypeInfo {
  readonly name: string;
  /** values per block */
  readonly blockSize: number;
  /** bytes per block */
  readonly typeSize: number;
}

/** K-quant super-block size (QK_K in ggml). */
export const QK_K = 256;

const TYPE_INFO: ReadonlyMap<GGMLType, TypeInfo> = new Map<GGMLType, TypeInfo>([
  [GGMLType.F32, { name: 'F32', blockSize: 1, typeSize: 4 }],
  [GGMLType.F16, { name: 'F16', blockSize: 1, typeSize: 2 }],
  [GGMLType.BF16, { name: 'BF16', blockSize: 1, typeSize: 2 }],
  [GGMLType.F64, { name: 'F64', blockSize: 1, typeSize: 8 }],
  [GGMLType.I8, { name: 'I8', blockSize: 1, typeSize: 1 }],
  [GGMLType.I16, { name: 'I16', blockSize: 1, typeSize: 2 }],
  [GGMLType.I32, { name: 'I32', blockSize: 1, typeSize: 4 }],
  [GGMLType.I64, { name: 'I64', blockSize: 1, typeSize: 8 }],
  // d (f16) + 16 bytes of 4-bit quants
  [GGMLType.Q4_0, { name: 'Q4_0', blockSize: 32, typeSize: 2 + 16 }],
  // d, m (f16) + 16 bytes of 4-bit quants
  [GGMLType.Q4_1, { name: 'Q4_1', blockSize: 32, typeSize: 4 + 16 }],
  // d (f16) + 4 bytes of high bits + 16 bytes of low nibbles
  [GGMLType.Q5_0, { name: 'Q5_0', blockSize: 32, typeSize: 2 + 4 + 16 }],
  // d, m (f16) + 4 bytes of high bits + 16 bytes of low nibbles
  [GGMLType.Q5_1, { name: 'Q5_1', blockSize: 32, typeSize: 4 + 4 + 16 }],
  // d (f16) + 32 int8
  [GGMLType.Q8_0, { name: 'Q8_0', blockSize: 32, typeSize: 2 + 32 }],
  // d, s = d*sum(q) (f16) + 32 int8
  [GGMLType.Q8_1, { name: 'Q8_1', blockSize: 32, typeSize: 4 + 32 }],
  // scales[16] + qs[64] + d, dmin (f16)
  [GGMLType.Q2_K, { name: 'Q2_K', blockSize: QK_K, typeSize: 16 + 64 + 4 }],
  // hmask[32] + qs[64] + scales[12] + d (f16)
  [GGMLType.Q3_K, { name: 'Q3_K', blockSize: QK_K, typeSize: 32 + 64 + 12 + 2 }],
  // d, dmin (f16) + scales[12] + qs[128]
  [GGMLType.Q4_K, { name: 'Q4_K', blockSize: QK_K, typeSize: 4 + 12 + 128 }],
  // d, dmin (f16) + scales[12] + qh[32] + qs[128]
  [GGMLType.Q5_K, { name: 'Q5_K', blockSize: QK_K, typeSize: 4 + 12 + 32 + 128 }],
  // ql[128] + qh[64] + scales[16] (int8) + d (f16)
  [GGMLType.Q6_K, { name: 'Q6_K', blockSize: QK_K, typeSize: 128 + 64 + 16 + 2 }],
  // d (f32) + qs[256] int8 + bsums[16] int16
  [GGMLType.Q8_K, { name: 'Q8_K', blockSize: QK_K, typeSize: 4 + 256 + 32 }],
  // d (f16) + 16 bytes of 4-bit indices into a non-linear table of 16 int8 levels
  [GGMLType.IQ4_NL, { name: 'IQ4_NL', blockSize: 32, typeSize: 2 + 16 }],
  // d (f16) + scales_h (u16) + scales_l[4]: 8 6-bit sub-block scales | qs[128]: 4-bit indices as IQ4_NL's
  [GGMLType.IQ4_XS, { name: 'IQ4_XS', blockSize: QK_K, typeSize: 2 + 2 + 4 + 128 }],
]);

/** Thrown for a type number that kiln does not know how to store. */
export class UnknownTensorTypeError extends Error {
  constructor(readonly typeId: number, context = '') {
    super(`unknown or unsupported ggml tensor type ${typeId}${context ? ` (${context})` : ''}`);
    this.name = 'UnknownTensorTypeError';
  }
}

export function isKnownType(type: number): type is GGMLType {
  return TYPE_INFO.has(type as GGMLType);
}

export function typeInfo(type: GGMLType): TypeInfo {
  const info = TYPE_INFO.get(type);
  if (!info) throw new UnknownTensorTypeError(type);
  return info;
}

export function typeName(type: GGMLType): string {
  return TYPE_INFO.get(type)?.name ?? `type${type}`;
}

export function typeFromName(name: string): GGMLType {
  const upper = name.toUpperCase();
  for (const [type, info] of TYPE_INFO) if (info.name === upper) return type;
  throw new Error(`unknown tensor type name "${name}"`);
}

/** Bytes taken by one row of `n` values; n must be a multiple of the block size. */
export function rowBytes(type: GGMLType, n: number): number {
  const { blockSize, typeSize } = typeInfo(type);
  if (n % blockSize !== 0) throw new Error(`row of ${n} values is not a multiple of ${typeName(type)}'s block size ${blockSize}`);
  return (n / blockSize) * typeSize;
}

/** Bits per weight, including block scales. */
export function bitsPerWeight(type: GGMLType): number {
  const { blockSize, typeSize } = typeInfo(type);
  return (typeSize * 8) / blockSize;
}
