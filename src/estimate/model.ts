// The model an estimate is about: its architecture's hyper-parameters, KV cache row and weight tensors, read from a
// GGUF header, a Hugging Face config.json, explicit shape numbers, or a bare parameter count (with a llama-shaped
// guess). A config or a shape becomes GGUF metadata that the architecture's own `hparams()` reads, and its tensors
// are the architecture's tensor list (`tensorList`); a GGUF file's tensors are its own, with their stored bytes.

import { MetadataError, type Metadata } from '../gguf/metadata.js';
import type { GGUFHeader, GGUFValue } from '../gguf/types.js';
import { metaString, metaU32 } from '../gguf/writer.js';
import { tensorList, type Architecture, type CacheRow, type TensorSpec } from '../models/architecture.js';
import { ArchMetadata, readBaseHParams, type HParams } from '../models/hparams.js';
import { llama } from '../models/llama.js';
import { findArchitecture, SUPPORTED_ARCHITECTURES } from '../models/registry.js';
import { typeName } from '../tensor/ggml-type.js';
import type { ModelShape as TrainShape } from '../train/llama-model.js';

export class ModelSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSpecError';
  }
}

/** The model in numbers: what the estimate's formulas and its summary line use. */
export interface ModelShape {
  /** the GGUF architecture (`general.architecture`) */
  arch: string;
  nLayer: number;
  /** hidden size h */
  dim: number;
  nHead: number;
  nKvHead: number;
  /** per-head key and value widths (usually dim / nHead) */
  keyLength: number;
  valueLength: number;
  /** feed-forward width (per expert in a mixture of experts) */
  ffn: number;
  vocab: number;
  tiedEmbeddings: boolean;
  /** 0 = dense */
  nExpert: number;
  nExpertUsed: number;
  /** rms: one weight vector per norm; layer: weight and bias */
  norm: 'rms' | 'layer';
  /** biases on the q, k, v projections (qwen2) */
  qkvBias: boolean;
  /** the context the model was trained with, when known */
  ctxTrain?: number;
}

/** One weight tensor, named and shaped as in GGUF (ne[0] = values per row). */
export interface ModelTensor {
  name: string;
  /** GGUF role: attn_q, ffn_down_exps, token_embd, attn_norm, … */
  role: string;
  /** block index, −1 outside the blocks */
  layer: number;
  /** ne[0]: values per row (the input width of a matrix) */
  nIn: number;
  /** ne[1]: rows (the output width); 1 for vectors */
  nOut: number;
  /** ne[2]: stacked matrices (experts); 1 otherwise */
  count: number;
  params: number;
  isVector: boolean;
  /** exact type and bytes when the tensor comes from a GGUF file */
  stored?: { type: string; bytes: number };
}

export interface ModelDescription {
  name: string;
  source: 'gguf' | 'config' | 'shape' | 'params';
  shape: ModelShape;
  tensors: ModelTensor[];
  /** N: the sum of the tensors' parameters, or the parameter count given */
  paramCount: number;
  /** true when the shape is a llama-shaped guess from the parameter count alone */
  shapeGuessed: boolean;
  /** weight type to assume when none is asked for (config torch_dtype; GGUF files use their stored types) */
  nativeType: string;
  /** the architecture's hyper-parameters (what its `hparams()` returns; the base ones where kiln does not know it) */
  hparams: HParams;
  /** f16 values one position takes in one layer's KV cache (the architecture's `cacheRow`) */
  cacheRow: CacheRow;
  /** what the estimate had to assume, when it had to */
  note?: string;
}

// Limits on shape numbers, so that a hostile config cannot make the tensor list (≈ 12 entries per layer) huge.
const MAX_LAYERS = 100_000;
const MAX_WIDTH = 1 << 24;

function checkCount(what: string, v: number, max = MAX_WIDTH, min = 1): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new ModelSpecError(`${what} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

export function checkShape(s: ModelShape): ModelShape {
  checkCount('layers', s.nLayer, MAX_LAYERS);
  for (const [what, v] of [['dim', s.dim], ['heads', s.nHead], ['kv heads', s.nKvHead], ['key length', s.keyLength],
    ['value length', s.valueLength], ['ffn', s.ffn], ['vocab', s.vocab]] as const) checkCount(what, v);
  checkCount('experts', s.nExpert, 1 << 16, 0);
  checkCount('experts used', s.nExpertUsed, Math.max(1, s.nExpert), 0);
  if (s.nHead % s.nKvHead !== 0) throw new ModelSpecError(`heads (${s.nHead}) must be a multiple of kv heads (${s.nKvHead})`);
  return s;
}

function tensor(name: string, dims: readonly number[]): ModelTensor {
  const [nIn, nOut = 1, count = 1] = dims;
  const layer = /^blk\.(\d+)\./.exec(name);
  const base = name.replace(/^blk\.\d+\./, '').replace(/\.(weight|bias)$/, '');
  const role = name.endsWith('.bias') ? `${base}.bias` : base;
  return { name, role, layer: layer ? Number(layer[1]) : -1, nIn, nOut, count, params: nIn * nOut * count, isVector: dims.length === 1 };
}

const sumParams = (tensors: readonly ModelTensor[]) => tensors.reduce((n, t) => n + t.params, 0);

// ---- the architecture ----

/** The architecture `name` if kiln runs it, else llama's, whose tensor list the estimate then assumes. */
function architectureFor(name: string): { architecture: Architecture; note?: string } {
  if (SUPPORTED_ARCHITECTURES.includes(name)) return { architecture: findArchitecture(name) };
  return { architecture: llama, note: `kiln does not know the ${name} architecture: estimated as a llama-shaped model` };
}

/** Per-head key and value widths: `attention.key_length` / `value_length`, by default embedding_length / head_count. */
function headLengths(hp: HParams, keys: ArchMetadata): { keyLength: number; valueLength: number } {
  const headDim = Math.floor(hp.embeddingLength / hp.headCount);
  return { keyLength: keys.count('attention.key_length', headDim), valueLength: keys.count('attention.value_length', headDim) };
}

/**
 * The hyper-parameters and KV cache row of the architecture that GGUF metadata names, read by the architecture
 * itself. One kiln does not run, or whose reader refuses the metadata, gets the hyper-parameters every architecture
 * has and a llama-style cache row, n_head_kv × (key_length + value_length), with a note saying so.
 */
export function architectureOf(meta: Metadata): { hparams: HParams; cacheRow: CacheRow; note?: string } {
  const { hp, keys } = readBaseHParams(meta);
  let note = `kiln does not know the ${hp.arch} architecture: its KV cache is estimated as llama's (n_head_kv × (key_length + value_length) per layer)`;
  if (SUPPORTED_ARCHITECTURES.includes(hp.arch)) {
    const architecture = findArchitecture(hp.arch);
    try {
      const hparams = architecture.hparams(meta);
      return { hparams, cacheRow: architecture.cacheRow(hparams) };
    } catch (e) {
      if (!(e instanceof MetadataError)) throw e;
      note = `kiln's ${hp.arch} reader refuses this model (${e.message}): its KV cache is estimated as llama's`;
    }
  }
  const { keyLength, valueLength } = headLengths(hp, keys);
  return { hparams: hp, cacheRow: { keys: hp.headCountKv * keyLength, values: hp.headCountKv * valueLength }, note };
}

/** The summary numbers of a model of these hyper-parameters and tensors. */
function shapeOf(hp: HParams, meta: Metadata, tensors: readonly ModelTensor[]): ModelShape {
  const keys = new ArchMetadata(meta, hp.arch);
  const has = (role: string) => tensors.some((t) => t.role === role);
  return checkShape({
    arch: hp.arch,
    nLayer: hp.blockCount,
    dim: hp.embeddingLength,
    nHead: hp.headCount,
    nKvHead: hp.headCountKv,
    ...headLengths(hp, keys),
    // the experts' own width where the architecture has one (deepseek2)
    ffn: (hp.expertCount > 0 && keys.count('expert_feed_forward_length', 0)) || hp.feedForwardLength || 1,
    vocab: hp.vocabSize || tensors.find((t) => t.role === 'token_embd')?.nOut || 1,
    tiedEmbeddings: !has('output'),
    nExpert: hp.expertCount,
    nExpertUsed: hp.expertUsedCount,
    norm: tensors.some((t) => t.role.endsWith('_norm.bias')) ? 'layer' : 'rms',
    qkvBias: has('attn_q.bias') || has('attn_qkv.bias'),
    ctxTrain: meta.has(`${hp.arch}.context_length`) ? hp.contextLength : undefined,
  });
}

// ---- GGUF ----

/** The model in a GGUF file: hyper-parameters from its metadata, tensors (with their exact stored bytes) from its tensor infos. */
export function modelFromGGUF(header: GGUFHeader, name = 'model.gguf'): ModelDescription {
  const { hparams, cacheRow, note } = architectureOf(header.metadata);
  const tensors = header.tensors.map((t) => ({ ...tensor(t.name, t.dims), params: t.nElements, stored: { type: typeName(t.type), bytes: t.nBytes } }));
  return {
    name, source: 'gguf', shape: shapeOf(hparams, header.metadata, tensors), tensors, paramCount: sumParams(tensors), shapeGuessed: false,
    nativeType: 'GGUF', hparams, cacheRow, note,
  };
}

// ---- models given by numbers: their architecture's tensor list ----

/** The optional tensors a model given by numbers has. */
interface Present {
  tied: boolean;
  /** biases on q, k and v where the architecture makes them optional (llama's attention_bias) */
  qkvBias: boolean;
  /** every norm also has a bias (LayerNorm), whatever the architecture's own norms */
  layerNorm: boolean;
}

/** the tensor list with a `.bias` beside every norm weight that lacks one */
function withNormBiases(specs: readonly TensorSpec[]): TensorSpec[] {
  const names = new Set(specs.map((s) => s.name));
  return specs.flatMap((s) => {
    const bias = s.name.replace(/_norm\.weight$/, '_norm.bias');
    return bias === s.name || names.has(bias) ? [s] : [s, { ...s, name: bias }];
  });
}

/** GGUF metadata of `arch`: general.architecture and `{arch}.KEY` for every defined value */
function archMetadata(arch: string, values: Record<string, number | undefined>): Metadata {
  const meta = new Map<string, GGUFValue>([['general.architecture', metaString(arch)]]);
  for (const [key, v] of Object.entries(values)) if (v !== undefined) meta.set(`${arch}.${key}`, metaU32(v));
  return meta;
}

/** The model whose `{arch}.KEY` metadata are `values`: the architecture's hyper-parameters and tensor list. */
function modelFromMetadata(arch: string, values: Record<string, number | undefined>, present: Present, name: string): Omit<ModelDescription, 'source' | 'nativeType'> {
  const meta = archMetadata(arch, values);
  const { architecture, note } = architectureFor(arch);
  let hparams: HParams;
  try {
    hparams = architecture.hparams(meta);
  } catch (e) {
    if (e instanceof MetadataError) throw new ModelSpecError(`${name}: ${e.message}`);
    throw e;
  }
  const isPresent = (t: string) => (t === 'output.weight' && !present.tied) || (present.qkvBias && /\.attn_(q|k|v)\.bias$/.test(t));
  const specs = tensorList(architecture, hparams, isPresent);
  const tensors = (present.layerNorm ? withNormBiases(specs) : specs).map((s) => tensor(s.name, s.dims));
  return {
    name, shape: shapeOf(hparams, meta, tensors), tensors, paramCount: sumParams(tensors), shapeGuessed: false,
    hparams, cacheRow: architecture.cacheRow(hparams), note,
  };
}

/** A model of this shape: its architecture's tensors (llama's where kiln does not know the architecture). */
export function modelFromShape(shape: ModelShape, name = 'model', nativeType = 'F16'): ModelDescription {
  const s = checkShape(shape);
  const values = {
    embedding_length: s.dim, block_count: s.nLayer, 'attention.head_count': s.nHead, 'attention.head_count_kv': s.nKvHead,
    'attention.key_length': s.keyLength, 'attention.value_length': s.valueLength, feed_forward_length: s.ffn, vocab_size: s.vocab,
    expert_count: s.nExpert, expert_used_count: s.nExpertUsed, context_length: s.ctxTrain,
  };
  const present = { tied: s.tiedEmbeddings, qkvBias: s.qkvBias, layerNorm: s.norm === 'layer' };
  return { ...modelFromMetadata(s.arch, values, present, name), source: 'shape', nativeType };
}

// ---- Hugging Face config.json ----

const TORCH_DTYPES: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** a config.json's integer `key`, or undefined when absent or null */
type ConfigNumber = (key: string) => number | undefined;

/** How a model_type's config.json maps onto its GGUF architecture's metadata. */
interface ConfigMapping {
  arch: string;
  /** GGUF key (after `{arch}.`) ← config key, or a value computed from config keys */
  keys: Record<string, string | ((n: ConfigNumber) => number | undefined)>;
  /** config keys the architecture cannot do without */
  required: readonly string[];
  /** tie_word_embeddings when the config does not say */
  tied: boolean;
}

const LLAMA_KEYS: ConfigMapping['keys'] = {
  embedding_length: 'hidden_size', block_count: 'num_hidden_layers', 'attention.head_count': 'num_attention_heads',
  'attention.head_count_kv': 'num_key_value_heads', feed_forward_length: 'intermediate_size', vocab_size: 'vocab_size',
  context_length: 'max_position_embeddings', 'attention.key_length': 'head_dim', 'attention.value_length': 'head_dim',
};
const LLAMA_REQUIRED = ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'vocab_size'];

const LLAMA: ConfigMapping = {
  arch: 'llama',
  // Mixtral's experts; 2 used per token unless the config says
  keys: { ...LLAMA_KEYS, expert_count: 'num_local_experts', expert_used_count: (n) => n('num_experts_per_tok') ?? (n('num_local_experts') ? 2 : undefined) },
  required: LLAMA_REQUIRED,
  tied: false,
};

/** model_type → mapping, by the model families' public config keys */
const CONFIG_MAPPINGS: Record<string, ConfigMapping> = {
  llama: LLAMA,
  mistral: LLAMA,
  mixtral: LLAMA,
  qwen2: { ...LLAMA, arch: 'qwen2' },
  gpt2: {
    arch: 'gpt2',
    keys: {
      embedding_length: 'n_embd', block_count: 'n_layer', 'attention.head_count': 'n_head', vocab_size: 'vocab_size', context_length: 'n_positions',
      feed_forward_length: (n) => n('n_inner') ?? 4 * n('n_embd')!, // n_inner null: 4·n_embd
    },
    required: ['n_embd', 'n_layer', 'n_head', 'vocab_size'],
    tied: true,
  },
  bert: { arch: 'bert', keys: LLAMA_KEYS, required: LLAMA_REQUIRED, tied: true },
  gemma2: { arch: 'gemma2', keys: LLAMA_KEYS, required: LLAMA_REQUIRED, tied: true },
  phi3: { arch: 'phi3', keys: LLAMA_KEYS, required: LLAMA_REQUIRED, tied: false },
  deepseek_v2: {
    arch: 'deepseek2',
    keys: {
      ...LLAMA_KEYS,
      'attention.q_lora_rank': 'q_lora_rank', 'attention.kv_lora_rank': 'kv_lora_rank', 'rope.dimension_count': 'qk_rope_head_dim',
      // a head's q and k: the plain dims, then the roped ones
      'attention.key_length': (n) => n('qk_nope_head_dim')! + n('qk_rope_head_dim')!, 'attention.value_length': 'v_head_dim',
      expert_count: 'n_routed_experts', expert_used_count: 'num_experts_per_tok', expert_shared_count: 'n_shared_experts',
      expert_feed_forward_length: 'moe_intermediate_size', leading_dense_block_count: 'first_k_dense_replace',
    },
    required: [...LLAMA_REQUIRED, 'kv_lora_rank', 'qk_rope_head_dim', 'qk_nope_head_dim', 'v_head_dim'],
    tied: false,
  },
};

/** A config.json of a llama / mistral / mixtral / qwen2 / gpt2 / bert / gemma2 / phi3 / deepseek_v2 model. */
export function modelFromConfig(config: unknown, name = 'config.json'): ModelDescription {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ModelSpecError(`${name} is not a JSON object`);
  const c = config as Record<string, unknown>;
  const number: ConfigNumber = (key) => {
    const v = c[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ModelSpecError(`${name}: "${key}" is not a non-negative integer`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'boolean') throw new ModelSpecError(`${name}: "${key}" is not a boolean`);
    return v;
  };
  const modelType = typeof c.model_type === 'string' ? c.model_type : 'llama';
  // a model_type kiln does not map is read by llama's keys, under its own name
  const mapping = CONFIG_MAPPINGS[modelType] ?? { ...LLAMA, arch: modelType };
  for (const key of mapping.required) if (number(key) === undefined) throw new ModelSpecError(`${name}: "${key}" is missing`);
  const values = Object.fromEntries(Object.entries(mapping.keys).map(([key, from]) => [key, typeof from === 'string' ? number(from) : from(number)]));
  const present = { tied: bool('tie_word_embeddings', mapping.tied), qkvBias: bool('attention_bias', false), layerNorm: false };
  const dtype = typeof c.torch_dtype === 'string' ? TORCH_DTYPES[c.torch_dtype] : undefined;
  return { ...modelFromMetadata(mapping.arch, values, present, name), source: 'config', nativeType: dtype ?? 'F16' };
}

// ---- kiln train configurations ----

/** The llama model a `kiln train` configuration's shape describes (`vocab` resolved from its tokenizer); kiln trains F32. */
export function modelFromTrainShape(s: TrainShape, name = 'train config'): ModelDescription {
  const headDim = s.dim / s.heads;
  const nExpert = s.experts ?? 0;
  const shape: ModelShape = {
    arch: 'llama', nLayer: s.layers, dim: s.dim, nHead: s.heads, nKvHead: s.kvHeads, keyLength: headDim, valueLength: headDim,
    ffn: s.ffn, vocab: s.vocab, tiedEmbeddings: s.tiedEmbeddings ?? false, nExpert, nExpertUsed: nExpert > 0 ? s.expertsUsed ?? 0 : 0,
    norm: 'rms', qkvBias: false, ctxTrain: s.ctx,
  };
  return { ...modelFromShape(shape, name, 'F32'), source: 'config' };
}

// ---- shape flags and bare parameter counts ----

/** llama's feed-forward width: 2/3 of 4·dim, rounded up to a multiple of 256. */
export function llamaFfn(dim: number): number {
  return 256 * Math.ceil(Math.floor((2 * 4 * dim) / 3) / 256);
}

export interface ShapeFlags {
  arch?: string;
  layers?: number;
  dim?: number;
  heads?: number;
  kvHeads?: number;
  ffn?: number;
  vocab?: number;
  tied?: boolean;
  experts?: number;
  expertsUsed?: number;
  norm?: 'rms' | 'layer';
}

/** A shape from explicit numbers; what is not given follows llama's proportions (head dim 128, dim/128 layers). */
export function shapeFromFlags(f: ShapeFlags): ModelShape {
  if (f.dim === undefined) throw new ModelSpecError('a model shape needs at least --dim (or give --params alone for a guess)');
  const nHead = f.heads ?? Math.max(1, Math.round(f.dim / 128));
  const headDim = f.dim / nHead;
  if (!Number.isInteger(headDim)) throw new ModelSpecError(`dim ${f.dim} is not a multiple of ${nHead} heads`);
  const nExpert = f.experts ?? 0;
  return checkShape({
    arch: f.arch ?? 'llama',
    nLayer: f.layers ?? Math.max(1, Math.round(f.dim / 128)),
    dim: f.dim,
    nHead,
    nKvHead: f.kvHeads ?? nHead,
    keyLength: headDim,
    valueLength: headDim,
    ffn: f.ffn ?? llamaFfn(f.dim),
    vocab: f.vocab ?? 32000,
    tiedEmbeddings: f.tied ?? false,
    nExpert,
    nExpertUsed: nExpert > 0 ? (f.expertsUsed ?? 2) : 0,
    norm: f.norm ?? 'rms',
    qkvBias: false,
  });
}

/** The llama-shaped model (dim a multiple of 128, dim/128 layers and heads) whose size is nearest to `params`. */
export function guessShape(params: number, arch = 'llama'): ModelShape {
  let best: ModelShape | undefined, bestError = Infinity;
  for (let dim = 128; dim <= 128 * 1024; dim += 128) {
    const shape = shapeFromFlags({ arch, dim });
    const error = Math.abs(modelFromShape(shape).paramCount - params);
    if (error >= bestError) break; // the size grows with dim, so the error falls and then rises
    best = shape;
    bestError = error;
  }
  return best!;
}

/** Parses a parameter count: 7B, 1.5b, 350M, 130e9, 7000000000. */
export function parseParamCount(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbt]?)\s*$/i.exec(text);
  const scale: Record<string, number> = { '': 1, k: 1e3, m: 1e6, b: 1e9, t: 1e12 };
  const n = m ? Number(m[1]) * scale[m[2].toLowerCase()] : NaN;
  if (!Number.isFinite(n) || n < 1 || n > 1e15) throw new ModelSpecError(`"${text}" is not a parameter count (e.g. 7B, 350M, 130e9)`);
  return Math.round(n);
}

/**
 * A model known by its parameter count N. With a shape, its tensors are exact and the N − (shape's parameters) it
 * does not cover become one "other" tensor; without one, a llama-shaped guess supplies the shape.
 */
export function modelFromParamCount(params: number, shape?: ModelShape, name = 'model'): ModelDescription {
  const guessed = shape === undefined;
  const model = modelFromShape(shape ?? guessShape(params), name);
  const tensors = [...model.tensors];
  if (!guessed) {
    if (model.paramCount > params) throw new ModelSpecError(`the shape has ${model.paramCount} parameters, more than the ${params} given`);
    if (model.paramCount < params) tensors.push({ ...tensor('other.weight', [params - model.paramCount]), isVector: false });
  }
  return { ...model, source: 'params', tensors, paramCount: params, shapeGuessed: guessed };
}
