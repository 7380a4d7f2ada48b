// How many bytes a weight takes in each storage type. (Which type llama.cpp's quantization mixes give each
// tensor is the quantizer's business: src/quant/mix.ts, used through estimate.ts's mixTypes.)

import { GGMLType, typeFromName, typeInfo } from '../tensor/ggml-type.js';

/** A storage type: `blockSize` values packed into `typeSize` bytes (bits per weight = 8·typeSize/blockSize). */
export interface StorageType {
  readonly name: string;
  readonly blockSize: number;
  readonly typeSize: number;
}

export class UnknownStorageTypeError extends Error {
  constructor(name: string, known: readonly string[], what = 'weight type') {
    super(`unknown ${what} "${name}" (known: ${known.join(', ')})`);
    this.name = 'UnknownStorageTypeError';
  }
}

function ggml(type: GGMLType): StorageType {
  const { name, blockSize, typeSize } = typeInfo(type);
  return { name, blockSize, typeSize };
}

/**
 * bitsandbytes NF4 with double quantization (QLoRA, Dettmers et al. 2023): 4-bit codes, one 8-bit absmax per
 * 64 values and one fp32 second-level scale per 256 absmax blocks, i.e. per 64·256 values
 * 256·(32 + 1) + 4 bytes = 4 + 8/64 + 32/(64·256) = 4.127 bits per weight.
 */
export const NF4: StorageType = { name: 'NF4', blockSize: 64 * 256, typeSize: 256 * (32 + 1) + 4 };

export const F32 = ggml(GGMLType.F32);
export const F16 = ggml(GGMLType.F16);
export const BF16 = ggml(GGMLType.BF16);

export function bitsPerWeight(type: StorageType): number {
  return (8 * type.typeSize) / type.blockSize;
}

/** Bytes of `params` values; exact (an integer) whenever params is a multiple of the block size. */
export function storageBytes(params: number, type: StorageType): number {
  return (params / type.blockSize) * type.typeSize;
}

/** Types kiln's ggml table does not hold. */
const OTHER_TYPES: Record<string, StorageType> = { NF4 };

/** A plain ggml type by name (f16, Q8_0, …), or NF4. */
export function storageType(name: string): StorageType {
  const other = OTHER_TYPES[name.toUpperCase()];
  if (other) return other;
  try {
    return ggml(typeFromName(name));
  } catch {
    throw new UnknownStorageTypeError(name, [...WEIGHT_TYPE_NAMES, 'NF4']);
  }
}

/** The KV-cache types llama.cpp offers (`--cache-type-k/v`). */
export const KV_TYPE_NAMES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1'] as const;

export function kvStorageType(name: string): StorageType {
  if (!(KV_TYPE_NAMES as readonly string[]).includes(name.toLowerCase())) throw new UnknownStorageTypeError(name, KV_TYPE_NAMES, 'KV cache type');
  return storageType(name);
}

/** The `llama-quantize` file types kiln can estimate: plain types, the k-quant mixes and the IQ4 types. */
export const WEIGHT_TYPE_NAMES = [
  'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1',
  'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K', 'IQ4_NL', 'IQ4_XS',
] as const;
export type WeightTypeName = (typeof WEIGHT_TYPE_NAMES)[number];

function isWeightTypeName(name: string): name is WeightTypeName {
  return (WEIGHT_TYPE_NAMES as readonly string[]).includes(name);
}

export function parseWeightType(name: string): WeightTypeName {
  const upper = name.toUpperCase();
  if (isWeightTypeName(upper)) return upper;
  throw new UnknownStorageTypeError(name, WEIGHT_TYPE_NAMES);
}
