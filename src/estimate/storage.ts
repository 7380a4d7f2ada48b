// How many bytes a weight takes in each storage type, and which type llama.cpp's quantization mixes
// (Q4_K_M, Q3_K_S, …) give each tensor.

import { GGMLType, QK_K, typeFromName, typeInfo } from '../tensor/ggml-type.js';

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

/** ggml's IQ4_NL (f16 scale + 16 bytes of 4-bit indices per 32 values): llama.cpp's fallback for Q2_K/Q3_K rows. */
const IQ4_NL: StorageType = { name: 'IQ4_NL', blockSize: 32, typeSize: 2 + 16 };

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
const OTHER_TYPES: Record<string, StorageType> = { NF4, IQ4_NL };

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

// ---- llama.cpp quantization mixes (llama-quant.cpp, llama_tensor_get_type) ----

/** What a tensor is, as far as the mixes care: its GGUF role name, its layer (−1 outside blocks), its row length. */
export interface TypedTensor {
  role: string;
  layer: number;
  /** values per row (ggml ne[0]); k-quants need a multiple of 256 */
  nIn: number;
  /** 1-D tensors (norms, biases) stay F32 in every GGUF file */
  isVector: boolean;
}

/** Model facts the mixes look at. */
export interface MixContext {
  nLayer: number;
  nHead: number;
  nKvHead: number;
  nExpert: number;
  /** no separate output matrix: token_embd doubles as the output and is typed like one */
  tiedOutput: boolean;
}

/** The `llama-quantize` file types kiln can estimate: plain types and the k-quant mixes. */
export const WEIGHT_TYPE_NAMES = [
  'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1',
  'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K',
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

/** The type a mix gives every tensor it does not single out (llama-quant.cpp's default_type). */
export function mixBaseType(mix: WeightTypeName): StorageType {
  return storageType(mix.replace(/_[SML]$/, ''));
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer between. */
function useMoreBits(layer: number, nLayer: number): boolean {
  const eighth = Math.floor(nLayer / 8);
  return layer < eighth || layer >= Math.floor((7 * nLayer) / 8) || (layer - eighth) % 3 === 2;
}

const K_QUANTS = new Set(['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K']);
const PLAIN = new Set(['F32', 'F16', 'BF16', 'Q8_0', 'Q6_K']);

/** The name of the type the mix chooses for a tensor before the row-length check. */
function mixChoice(mix: WeightTypeName, t: TypedTensor, m: MixContext): string {
  const base = mixBaseType(mix).name;
  if (PLAIN.has(mix)) return base;
  const { layer } = t;
  const { nLayer } = m;
  const role = t.role === 'token_embd' && m.tiedOutput ? 'output' : t.role;
  const gqa = m.nKvHead > 0 ? m.nHead / m.nKvHead : 1;
  const eightExperts = m.nExpert === 8;
  switch (role) {
    case 'output':
      return t.nIn % QK_K !== 0 ? 'Q8_0' : 'Q6_K';
    case 'attn_v': {
      let type = base;
      if (mix === 'Q2_K') type = gqa >= 4 ? 'Q4_K' : 'Q3_K';
      else if (mix === 'Q3_K_M') type = layer < 2 ? 'Q5_K' : 'Q4_K';
      else if (mix === 'Q3_K_L') type = 'Q5_K';
      else if ((mix === 'Q4_K_M' || mix === 'Q5_K_M') && useMoreBits(layer, nLayer)) type = 'Q6_K';
      else if (mix === 'Q4_K_S' && layer < 4) type = 'Q5_K';
      // llama.cpp's LLM_TYPE_70B (80 llama layers): attn_v is 8× smaller than attn_q there, so it gets more bits
      if (nLayer === 80 && (type === 'Q3_K' || type === 'Q4_K')) type = 'Q5_K';
      return eightExperts ? 'Q8_0' : type;
    }
    case 'attn_k':
      return eightExperts ? 'Q8_0' : base;
    case 'ffn_down':
    case 'ffn_down_exps':
      if (mix === 'Q2_K') return 'Q3_K';
      if (mix === 'Q3_K_M') return layer < Math.floor(nLayer / 16) ? 'Q5_K' : 'Q4_K';
      if (mix === 'Q3_K_L') return 'Q5_K';
      if ((mix === 'Q4_K_M' || mix === 'Q5_K_M') && useMoreBits(layer, nLayer)) return 'Q6_K';
      if (mix === 'Q4_K_S' && layer < Math.floor(nLayer / 8)) return 'Q5_K';
      return base;
    case 'attn_output':
      if (eightExperts) return ['Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q4_K_S', 'Q4_K_M'].includes(mix) ? 'Q5_K' : base;
      if (mix === 'Q2_K') return 'Q3_K';
      if (mix === 'Q3_K_M') return 'Q4_K';
      if (mix === 'Q3_K_L') return 'Q5_K';
      return base;
    case 'attn_qkv':
      if (mix === 'Q3_K_M' || mix === 'Q3_K_L') return 'Q4_K';
      if (mix === 'Q4_K_M') return 'Q5_K';
      if (mix === 'Q5_K_M') return 'Q6_K';
      return base;
    default:
      return base;
  }
}

/** llama.cpp's fallback when a row is not a multiple of the chosen type's block. */
const FALLBACK: Record<string, string> = { Q2_K: 'IQ4_NL', Q3_K: 'IQ4_NL', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0' };

/** Matrices that llama.cpp's converter writes in F32 and llama-quantize leaves alone: MoE routers, position tables. */
const KEPT_F32 = new Set(['ffn_gate_inp', 'position_embd', 'token_types']);

/** The storage type llama-quantize gives `t` under `mix`: 1-D tensors F32, rows that do not fit a block fall back. */
export function tensorStorageType(mix: WeightTypeName, t: TypedTensor, m: MixContext): StorageType {
  if (t.isVector || KEPT_F32.has(t.role)) return F32;
  let name = mixChoice(mix, t, m);
  let type = storageType(name);
  if (t.nIn % type.blockSize !== 0) {
    name = K_QUANTS.has(name) ? FALLBACK[name] : 'F16';
    type = storageType(name);
    if (t.nIn % type.blockSize !== 0) type = F16;
  }
  return type;
}
