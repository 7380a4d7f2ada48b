// Which type each tensor gets when a model is quantized to a file type ("ftype", llama.cpp's
// `enum llama_ftype`), following llama.cpp's llama-quant.cpp (llama_tensor_get_type and the tensor loop of
// llama_model_quantize_impl): 1-D tensors and norms stay as they are, output.weight gets Q6_K (Q8_0 when its
// rows do not split into blocks), the _S/_M/_L mixes give attn_v / ffn_down / attn_output more bits in chosen
// layers, and a type whose block does not divide the row length falls back to a compatible one.

import { GGMLType, typeInfo, typeName } from '../tensor/ggml-type.js';

/** llama.cpp's llama_ftype values (stored as general.file_type). */
export enum LlamaFileType {
  ALL_F32 = 0,
  MOSTLY_F16 = 1,
  MOSTLY_Q4_0 = 2,
  MOSTLY_Q4_1 = 3,
  MOSTLY_Q8_0 = 7,
  MOSTLY_Q5_0 = 8,
  MOSTLY_Q5_1 = 9,
  MOSTLY_Q2_K = 10,
  MOSTLY_Q3_K_S = 11,
  MOSTLY_Q3_K_M = 12,
  MOSTLY_Q3_K_L = 13,
  MOSTLY_Q4_K_S = 14,
  MOSTLY_Q4_K_M = 15,
  MOSTLY_Q5_K_S = 16,
  MOSTLY_Q5_K_M = 17,
  MOSTLY_Q6_K = 18,
  MOSTLY_IQ4_NL = 25,
  MOSTLY_IQ4_XS = 30,
  MOSTLY_BF16 = 32,
}

/** The name llama-quantize accepts for each file type, and the tensor type most tensors get. */
const FILE_TYPES: ReadonlyArray<[string, LlamaFileType, GGMLType]> = [
  ['F32', LlamaFileType.ALL_F32, GGMLType.F32],
  ['F16', LlamaFileType.MOSTLY_F16, GGMLType.F16],
  ['BF16', LlamaFileType.MOSTLY_BF16, GGMLType.BF16],
  ['Q8_0', LlamaFileType.MOSTLY_Q8_0, GGMLType.Q8_0],
  ['Q4_0', LlamaFileType.MOSTLY_Q4_0, GGMLType.Q4_0],
  ['Q4_1', LlamaFileType.MOSTLY_Q4_1, GGMLType.Q4_1],
  ['Q5_0', LlamaFileType.MOSTLY_Q5_0, GGMLType.Q5_0],
  ['Q5_1', LlamaFileType.MOSTLY_Q5_1, GGMLType.Q5_1],
  ['Q2_K', LlamaFileType.MOSTLY_Q2_K, GGMLType.Q2_K],
  ['Q3_K_S', LlamaFileType.MOSTLY_Q3_K_S, GGMLType.Q3_K],
  ['Q3_K_M', LlamaFileType.MOSTLY_Q3_K_M, GGMLType.Q3_K],
  ['Q3_K_L', LlamaFileType.MOSTLY_Q3_K_L, GGMLType.Q3_K],
  ['Q4_K_S', LlamaFileType.MOSTLY_Q4_K_S, GGMLType.Q4_K],
  ['Q4_K_M', LlamaFileType.MOSTLY_Q4_K_M, GGMLType.Q4_K],
  ['Q5_K_S', LlamaFileType.MOSTLY_Q5_K_S, GGMLType.Q5_K],
  ['Q5_K_M', LlamaFileType.MOSTLY_Q5_K_M, GGMLType.Q5_K],
  ['Q6_K', LlamaFileType.MOSTLY_Q6_K, GGMLType.Q6_K],
  ['IQ4_NL', LlamaFileType.MOSTLY_IQ4_NL, GGMLType.IQ4_NL],
  ['IQ4_XS', LlamaFileType.MOSTLY_IQ4_XS, GGMLType.IQ4_XS],
];

export class QuantMixError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantMixError';
  }
}

export const FILE_TYPE_NAMES: readonly string[] = FILE_TYPES.map(([name]) => name);

/** The file type named `name` (as llama-quantize spells it, any case; "Q4_K" means Q4_K_M, "Q3_K" Q3_K_M, "Q5_K" Q5_K_M). */
export function fileTypeFromName(name: string): LlamaFileType {
  const upper = name.toUpperCase();
  const alias: Record<string, string> = { Q3_K: 'Q3_K_M', Q4_K: 'Q4_K_M', Q5_K: 'Q5_K_M' };
  const entry = FILE_TYPES.find(([n]) => n === (alias[upper] ?? upper));
  if (!entry) throw new QuantMixError(`unknown quantization type "${name}" (one of ${FILE_TYPE_NAMES.join(', ')})`);
  return entry[1];
}

export function fileTypeName(ftype: LlamaFileType): string {
  return FILE_TYPES.find(([, f]) => f === ftype)?.[0] ?? `ftype ${ftype}`;
}

/** The type a file type gives every quantized tensor its rules do not single out (llama-quant.cpp's default_type). */
export function defaultTypeOf(ftype: LlamaFileType): GGMLType {
  const entry = FILE_TYPES.find(([, f]) => f === ftype);
  if (!entry) throw new QuantMixError(`unsupported file type ${ftype}`);
  return entry[2];
}

function isQuantized(type: GGMLType): boolean {
  return typeInfo(type).blockSize > 1;
}

/** What of the model the mix rules look at. */
export interface ModelShape {
  arch: string;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nExpert: number;
}

export interface MixOptions {
  ftype: LlamaFileType;
  /** every quantized tensor gets the default type (llama-quantize --pure) */
  pure?: boolean;
  /** --output-type / --token-embedding-type */
  outputType?: GGMLType;
  tokenEmbeddingType?: GGMLType;
  /** an importance matrix is used (changes a few choices, as in llama.cpp) */
  hasImatrix?: boolean;
}

export interface TensorShape {
  name: string;
  dims: readonly number[];
  type: GGMLType;
}

/** The layer of a tensor named "blk.N.…", or −1 (llama_model_loader's weight_name_comparer). */
function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

/** The order llama-quantize writes (and decides) tensors in: by layer (non-layer tensors first), then by name. */
export function quantizationOrder<T extends { name: string }>(tensors: readonly T[]): T[] {
  return [...tensors].sort((a, b) => {
    const la = layerOf(a.name), lb = layerOf(b.name);
    if (la !== lb) return la - lb;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}

/** ggml_n_dims: the number of dimensions up to the last one larger than 1. */
function nDims(dims: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < dims.length; i++) if (dims[i] > 1) n = i + 1;
  return n;
}

/** Name parts of tensors llama-quantize never quantizes (besides norms and 1-D tensors). */
const NEVER_QUANTIZED = [
  'ffn_gate_inp.weight', 'ssm_conv1d.weight', 'attn_rel_b.weight', 'time_mix_first.weight', 'time_mix_w1.weight',
  'time_mix_w2.weight', 'time_mix_decay_w1.weight', 'time_mix_decay_w2.weight', 'time_mix_lerp_fused.weight',
];

/** Whether llama-quantize would quantize this tensor at all. */
export function isQuantizable(t: TensorShape): boolean {
  const name = t.name;
  if (!name.endsWith('weight') || nDims(t.dims) < 2) return false;
  if (name.includes('_norm.weight')) return false;
  if (name === 'position_embd.weight' || name === 'token_types.weight') return false;
  return !NEVER_QUANTIZED.some((part) => name.includes(part));
}

/** use_more_bits: the first and last eighth of the layers and every third one between get more bits. */
function useMoreBits(iLayer: number, nLayers: number): boolean {
  const eighth = Math.trunc(nLayers / 8);
  return iLayer < eighth || iLayer >= Math.trunc((7 * nLayers) / 8) || (iLayer - eighth) % 3 === 2;
}

/** C integer division (truncating). */
function div(a: number, b: number): number {
  return Math.trunc(a / b);
}

/** The fallback when the row length is not a multiple of the chosen type's block (llama_tensor_get_type). */
export function fallbackType(t: TensorShape, type: GGMLType): GGMLType {
  const nx = t.dims[0];
  if (nx % typeInfo(type).blockSize === 0) return type;
  const table = new Map<GGMLType, GGMLType>([
    [GGMLType.Q2_K, GGMLType.IQ4_NL], [GGMLType.Q3_K, GGMLType.IQ4_NL], [GGMLType.IQ4_XS, GGMLType.IQ4_NL],
    [GGMLType.Q4_K, GGMLType.Q5_0], [GGMLType.Q5_K, GGMLType.Q5_1], [GGMLType.Q6_K, GGMLType.Q8_0],
  ]);
  const next = table.get(type);
  if (next === undefined) throw new QuantMixError(`tensor ${t.name}: rows of ${nx} values do not split into ${typeName(type)} blocks and there is no fallback for it`);
  return nx % typeInfo(next).blockSize === 0 ? next : GGMLType.F16;
}

/**
 * Chooses the type of every tensor, in the order given (use quantizationOrder: the per-layer counters
 * depend on it). Returns one type per tensor; a tensor keeps its type when it is not quantized.
 */
export function chooseTensorTypes(tensors: readonly TensorShape[], model: ModelShape, options: MixOptions): GGMLType[] {
  const ftype = options.ftype;
  const F = LlamaFileType;
  const defaultType = defaultTypeOf(ftype);
  const hasOutput = tensors.some((t) => t.name === 'output.weight');
  const nAttentionWv = tensors.filter((t) => /attn_v\.weight|attn_qkv\.weight|attn_kv_b\.weight/.test(t.name)).length;
  const nGqa = model.nHeadKv > 0 ? div(model.nHead, model.nHeadKv) : 0;
  const isFalcon = model.arch === 'falcon';
  const is70B = model.arch === 'llama' && model.nLayer === 80 && model.nHead !== model.nHeadKv;
  const isIQ4 = ftype === F.MOSTLY_IQ4_NL || ftype === F.MOSTLY_IQ4_XS;
  let iAttentionWv = 0, iFfnDown = 0;

  /** layer_info: the counter, or for mixtures of experts the layer parsed from the name. */
  const layerIndex = (counter: number, name: string): number => {
    if (model.nExpert <= 1) return counter;
    const layer = layerOf(name);
    if (layer < 0 || layer >= model.nLayer) throw new QuantMixError(`cannot tell the layer of tensor ${name}`);
    return layer;
  };

  /** llama_tensor_get_type without the shape fallback. */
  const mixType = (t: TensorShape, type: GGMLType): GGMLType => {
    const name = t.name;
    const nLayer = model.nLayer;
    if (name === 'output.weight' || (!hasOutput && name === 'token_embd.weight')) {
      if (options.outputType !== undefined) return options.outputType;
      if (isFalcon || t.dims[0] % typeInfo(type).blockSize !== 0) return GGMLType.Q8_0;
      return type !== GGMLType.Q8_0 ? GGMLType.Q6_K : type;
    }
    if (name === 'token_embd.weight') return options.tokenEmbeddingType ?? type;
    if (name.includes('attn_v.weight')) {
      if (ftype === F.MOSTLY_Q2_K) type = nGqa >= 4 ? GGMLType.Q4_K : GGMLType.Q3_K;
      else if (ftype === F.MOSTLY_Q3_K_M) type = iAttentionWv < 2 ? GGMLType.Q5_K : GGMLType.Q4_K;
      else if (ftype === F.MOSTLY_Q3_K_L) type = GGMLType.Q5_K;
      else if (isIQ4 && nGqa >= 4) type = GGMLType.Q5_K;
      else if ((ftype === F.MOSTLY_Q4_K_M || ftype === F.MOSTLY_Q5_K_M) && useMoreBits(iAttentionWv, nAttentionWv)) type = GGMLType.Q6_K;
      else if (ftype === F.MOSTLY_Q4_K_S && iAttentionWv < 4) type = GGMLType.Q5_K;
      // 70B: 8 heads share attn_v, so more bits cost little
      if (is70B && (type === GGMLType.Q3_K || type === GGMLType.Q4_K)) type = GGMLType.Q5_K;
      if (model.nExpert === 8) type = GGMLType.Q8_0;
      iAttentionWv++;
      return type;
    }
    if (name.includes('attn_k.weight')) return model.nExpert === 8 ? GGMLType.Q8_0 : type;
    if (name.includes('ffn_down')) {
      const iLayer = layerIndex(iFfnDown, name);
      iFfnDown++;
      if (ftype === F.MOSTLY_Q2_K) return GGMLType.Q3_K;
      if (ftype === F.MOSTLY_Q3_K_M) {
        return iLayer < div(nLayer, 16) ? GGMLType.Q5_K : !isFalcon || useMoreBits(iLayer, nLayer) ? GGMLType.Q4_K : GGMLType.Q3_K;
      }
      if (ftype === F.MOSTLY_Q3_K_L) return isFalcon ? GGMLType.Q4_K : GGMLType.Q5_K;
      if (ftype === F.MOSTLY_Q4_K_M) {
        if (isFalcon) return iLayer < div(nLayer, 16) ? GGMLType.Q6_K : useMoreBits(iLayer, nLayer) ? GGMLType.Q5_K : GGMLType.Q4_K;
        return useMoreBits(iLayer, nLayer) ? GGMLType.Q6_K : type;
      }
      // the first eighth of ffn_down is the most sensitive: without an imatrix, IQ4 gives it Q5_K
      if (isIQ4 && !options.hasImatrix && iLayer < div(nLayer, 8)) return GGMLType.Q5_K;
      if (ftype === F.MOSTLY_Q5_K_M) return useMoreBits(iLayer, nLayer) ? GGMLType.Q6_K : type;
      if (ftype === F.MOSTLY_Q4_K_S) return !isFalcon && iLayer < div(nLayer, 8) ? GGMLType.Q5_K : type;
      if ((ftype === F.MOSTLY_Q4_0 || ftype === F.MOSTLY_Q5_0) && options.hasImatrix && iLayer < div(nLayer, 8)) {
        // with an imatrix, the first ffn_down layers of Q4_0/Q5_0 get the affine variant
        return ftype === F.MOSTLY_Q4_0 ? GGMLType.Q4_1 : GGMLType.Q5_1;
      }
      return type;
    }
    if (name.includes('attn_output.weight')) {
      if (isFalcon) return ftype === F.MOSTLY_Q3_K_L ? GGMLType.Q4_K : type;
      if (model.nExpert === 8) {
        const bumped = [F.MOSTLY_Q2_K, F.MOSTLY_Q3_K_S, F.MOSTLY_Q3_K_M, F.MOSTLY_IQ4_NL, F.MOSTLY_Q4_K_S, F.MOSTLY_Q4_K_M, F.MOSTLY_IQ4_XS];
        return bumped.includes(ftype) ? GGMLType.Q5_K : type;
      }
      if (ftype === F.MOSTLY_Q2_K) return GGMLType.Q3_K;
      if (ftype === F.MOSTLY_Q3_K_M) return GGMLType.Q4_K;
      if (ftype === F.MOSTLY_Q3_K_L) return GGMLType.Q5_K;
      return type;
    }
    if (name.includes('attn_qkv.weight')) {
      if (ftype === F.MOSTLY_Q3_K_M || ftype === F.MOSTLY_Q3_K_L) return GGMLType.Q4_K;
      if (ftype === F.MOSTLY_Q4_K_M) return GGMLType.Q5_K;
      if (ftype === F.MOSTLY_Q5_K_M) return GGMLType.Q6_K;
      return type;
    }
    return type;
  };

  return tensors.map((t) => {
    if (!isQuantizable(t)) return t.type;
    let type = defaultType;
    if (!options.pure && isQuantized(defaultType)) type = fallbackType(t, mixType(t, type));
    if (options.tokenEmbeddingType !== undefined && t.name === 'token_embd.weight') type = options.tokenEmbeddingType;
    if (options.outputType !== undefined && t.name === 'output.weight') type = options.outputType;
    return type;
  });
}
