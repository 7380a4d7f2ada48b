// The model an estimate is about: its shape and its weight tensors, read from a GGUF header, a Hugging Face
// config.json, explicit shape numbers, or a bare parameter count (with a llama-shaped guess).

import type { GGUFHeader } from '../gguf/types.js';
import { readHParams } from '../models/hparams.js';
import { typeName } from '../tensor/ggml-type.js';
import type { ModelShape as TrainShape } from '../train/llama-model.js';

export class ModelSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSpecError';
  }
}

export interface ModelShape {
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

function tensor(name: string, layer: number, dims: readonly number[]): ModelTensor {
  const [nIn, nOut = 1, count = 1] = dims;
  const base = name.replace(/^blk\.\d+\./, '').replace(/\.(weight|bias)$/, '');
  const role = name.endsWith('.bias') ? `${base}.bias` : base;
  return { name, role, layer, nIn, nOut, count, params: nIn * nOut * count, isVector: dims.length === 1 };
}

/** The tensors of a llama-family model of this shape, with llama.cpp's GGUF names. */
export function shapeTensors(s: ModelShape): ModelTensor[] {
  const q = s.nHead * s.keyLength, k = s.nKvHead * s.keyLength, v = s.nKvHead * s.valueLength;
  const norm = (name: string, layer: number) =>
    s.norm === 'layer' ? [tensor(`${name}.weight`, layer, [s.dim]), tensor(`${name}.bias`, layer, [s.dim])] : [tensor(`${name}.weight`, layer, [s.dim])];
  const out: ModelTensor[] = [tensor('token_embd.weight', -1, [s.dim, s.vocab])];
  for (let i = 0; i < s.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(...norm(`${b}attn_norm`, i));
    out.push(tensor(`${b}attn_q.weight`, i, [s.dim, q]), tensor(`${b}attn_k.weight`, i, [s.dim, k]), tensor(`${b}attn_v.weight`, i, [s.dim, v]));
    if (s.qkvBias) out.push(tensor(`${b}attn_q.bias`, i, [q]), tensor(`${b}attn_k.bias`, i, [k]), tensor(`${b}attn_v.bias`, i, [v]));
    out.push(tensor(`${b}attn_output.weight`, i, [s.nHead * s.valueLength, s.dim]));
    out.push(...norm(`${b}ffn_norm`, i));
    if (s.nExpert > 0) {
      out.push(tensor(`${b}ffn_gate_inp.weight`, i, [s.dim, s.nExpert]));
      out.push(tensor(`${b}ffn_gate_exps.weight`, i, [s.dim, s.ffn, s.nExpert]), tensor(`${b}ffn_up_exps.weight`, i, [s.dim, s.ffn, s.nExpert]));
      out.push(tensor(`${b}ffn_down_exps.weight`, i, [s.ffn, s.dim, s.nExpert]));
    } else {
      out.push(tensor(`${b}ffn_gate.weight`, i, [s.dim, s.ffn]), tensor(`${b}ffn_up.weight`, i, [s.dim, s.ffn]), tensor(`${b}ffn_down.weight`, i, [s.ffn, s.dim]));
    }
  }
  out.push(...norm('output_norm', -1));
  if (!s.tiedEmbeddings) out.push(tensor('output.weight', -1, [s.dim, s.vocab]));
  return out;
}

const sumParams = (tensors: readonly ModelTensor[]) => tensors.reduce((n, t) => n + t.params, 0);

export function modelFromShape(shape: ModelShape, name = 'model', nativeType = 'F16'): ModelDescription {
  const tensors = shapeTensors(checkShape(shape));
  return { name, source: 'shape', shape, tensors, paramCount: sumParams(tensors), shapeGuessed: false, nativeType };
}

// ---- GGUF ----

/** The model in a GGUF file: shape from its metadata, tensors (with their exact stored bytes) from its tensor infos. */
export function modelFromGGUF(header: GGUFHeader, name = 'model.gguf'): ModelDescription {
  const hp = readHParams(header.metadata);
  const tensors = header.tensors.map((t) => {
    const layer = /^blk\.(\d+)\./.exec(t.name);
    return { ...tensor(t.name, layer ? Number(layer[1]) : -1, t.dims), params: t.nElements, stored: { type: typeName(t.type), bytes: t.nBytes } };
  });
  const embd = tensors.find((t) => t.role === 'token_embd');
  const shape = checkShape({
    arch: hp.arch,
    nLayer: hp.blockCount,
    dim: hp.embeddingLength,
    nHead: hp.headCount,
    nKvHead: hp.headCountKv,
    keyLength: hp.keyLength,
    valueLength: hp.valueLength,
    ffn: hp.feedForwardLength || 1,
    vocab: hp.vocabSize || embd?.nOut || 1,
    tiedEmbeddings: !tensors.some((t) => t.role === 'output'),
    nExpert: hp.expertCount,
    nExpertUsed: hp.expertUsedCount,
    norm: tensors.some((t) => t.role === 'attn_norm.bias') ? 'layer' : 'rms',
    qkvBias: tensors.some((t) => t.role === 'attn_q.bias'),
    ctxTrain: hp.contextLength,
  });
  return { name, source: 'gguf', shape, tensors, paramCount: sumParams(tensors), shapeGuessed: false, nativeType: 'GGUF' };
}

// ---- Hugging Face config.json ----

const TORCH_DTYPES: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** A llama / mistral / qwen2 / mixtral-style config.json. */
export function modelFromConfig(config: unknown, name = 'config.json'): ModelDescription {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ModelSpecError(`${name} is not a JSON object`);
  const c = config as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number') throw new ModelSpecError(`${name}: "${key}" ${v === undefined ? 'is missing' : 'is not a number'}`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'boolean') throw new ModelSpecError(`${name}: "${key}" is not a boolean`);
    return v;
  };
  const dim = int('hidden_size');
  const nHead = int('num_attention_heads');
  const headDim = int('head_dim', dim / nHead);
  const nExpert = int('num_local_experts', 0);
  const dtype = typeof c.torch_dtype === 'string' ? TORCH_DTYPES[c.torch_dtype] : undefined;
  const shape: ModelShape = {
    arch: typeof c.model_type === 'string' ? c.model_type : 'llama',
    nLayer: int('num_hidden_layers'),
    dim,
    nHead,
    nKvHead: int('num_key_value_heads', nHead),
    keyLength: headDim,
    valueLength: headDim,
    ffn: int('intermediate_size'),
    vocab: int('vocab_size'),
    tiedEmbeddings: bool('tie_word_embeddings', false),
    nExpert,
    nExpertUsed: nExpert > 0 ? int('num_experts_per_tok', 2) : 0,
    norm: 'rms',
    // qwen2 always has q/k/v biases; llama-style configs say so with attention_bias
    qkvBias: c.model_type === 'qwen2' || bool('attention_bias', false),
    ctxTrain: c.max_position_embeddings === undefined ? undefined : int('max_position_embeddings'),
  };
  return { ...modelFromShape(shape, name, dtype ?? 'F16'), source: 'config' };
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
    const error = Math.abs(sumParams(shapeTensors(shape)) - params);
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
  const s = shape ?? guessShape(params);
  const tensors = shapeTensors(checkShape(s));
  const covered = sumParams(tensors);
  if (!guessed) {
    if (covered > params) throw new ModelSpecError(`the shape has ${covered} parameters, more than the ${params} given`);
    if (covered < params) tensors.push({ ...tensor('other.weight', -1, [params - covered]), isVector: false });
  }
  return { name, source: 'params', shape: s, tensors, paramCount: params, shapeGuessed: guessed, nativeType: 'F16' };
}
