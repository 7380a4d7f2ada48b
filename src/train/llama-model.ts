// A llama-style model to train: its shape, seeded initial parameters named as in GGUF, the forward pass (the
// same `llama` code inference runs, bound to Params), and export to a GGUF file that `kiln run` and llama.cpp load.

import { checkedSource, tensorList, type BoundModel, type ModelOutput } from '../models/architecture.js';
import { llama, type LlamaHParams } from '../models/llama.js';
import type { Rng } from '../generate/rng.js';
import { GGMLType } from '../tensor/ggml-type.js';
import { GGUFValueType, type GGUFValue } from '../gguf/types.js';
import { metaArray, metaBool, metaF32, metaString, metaU32, type GGUFWriteInput } from '../gguf/writer.js';
import { bytesToUnicode } from '../tokenizer/bytes-to-unicode.js';
import type { TrainedBPE } from './bpe-trainer.js';
import { Param, type Var } from './autograd.js';
import { TrainOps } from './train-ops.js';

export interface ModelShape {
  /** embedding width */
  dim: number;
  layers: number;
  heads: number;
  /** key/value heads (grouped-query attention when fewer than heads) */
  kvHeads: number;
  /** feed-forward hidden width */
  ffn: number;
  vocab: number;
  /** context length the model is trained for */
  ctx: number;
  /** rope base (default 10000) */
  ropeBase?: number;
  /** RMSNorm epsilon (default 1e-5) */
  rmsEps?: number;
  /** share token_embd as the output projection */
  tiedEmbeddings?: boolean;
  /** mixture of experts: experts per layer (0 or absent: dense) and experts used per token */
  experts?: number;
  expertsUsed?: number;
}

export class ModelShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelShapeError';
  }
}

export function checkShape(s: ModelShape): void {
  const positive = ['dim', 'layers', 'heads', 'kvHeads', 'ffn', 'vocab', 'ctx'] as const;
  for (const key of positive) {
    if (!Number.isSafeInteger(s[key]) || s[key] < 1 || s[key] > 1 << 20) throw new ModelShapeError(`model.${key} must be an integer in 1..${1 << 20}, got ${s[key]}`);
  }
  if (s.dim % s.heads !== 0) throw new ModelShapeError(`model.dim ${s.dim} is not a multiple of model.heads ${s.heads}`);
  if ((s.dim / s.heads) % 2 !== 0) throw new ModelShapeError(`head size ${s.dim / s.heads} must be even for rope`);
  if (s.heads % s.kvHeads !== 0) throw new ModelShapeError(`model.heads ${s.heads} is not a multiple of model.kvHeads ${s.kvHeads}`);
  const experts = s.experts ?? 0;
  if (experts > 0 && !(Number.isInteger(s.expertsUsed) && s.expertsUsed! >= 1 && s.expertsUsed! <= experts)) {
    throw new ModelShapeError(`model.expertsUsed must be an integer in 1..${experts}`);
  }
}

export function shapeHParams(s: ModelShape): LlamaHParams {
  const headDim = s.dim / s.heads;
  return {
    arch: 'llama',
    contextLength: s.ctx,
    embeddingLength: s.dim,
    blockCount: s.layers,
    feedForwardLength: s.ffn,
    headCount: s.heads,
    headCountKv: s.kvHeads,
    expertCount: s.experts ?? 0,
    expertUsedCount: s.expertsUsed ?? 0,
    vocabSize: s.vocab,
    causal: true,
    keyLength: headDim,
    valueLength: headDim,
    rmsEps: s.rmsEps ?? 1e-5,
    rope: { nDims: headDim, freqBase: s.ropeBase ?? 10000, freqScale: 1, neox: false },
  };
}

export interface TrainModel {
  shape: ModelShape;
  hparams: LlamaHParams;
  /** in GGUF tensor order */
  params: Param[];
  bound: BoundModel<Param>;
}

type Init = 'one' | 'normal' | 'residual';

/** How a tensor starts: norms at 1, the projections that add into the residual stream scaled down, the rest normal. */
function initOf(name: string): Init {
  if (/_norm\.weight$/.test(name)) return 'one';
  return /(attn_output|ffn_down(_exps)?)\.weight$/.test(name) ? 'residual' : 'normal';
}

/** name, ggml dims and init kind of every tensor, in the order the llama architecture reads them */
function tensorSpecs(s: ModelShape): { name: string; dims: number[]; init: Init }[] {
  const untied = (name: string) => name === 'output.weight' && !s.tiedEmbeddings;
  return tensorList(llama, shapeHParams(s), untied).map(({ name, dims }) => ({ name, dims, init: initOf(name) }));
}

const INIT_STD = 0.02;

/**
 * A fresh model: norms 1, matrices normal(0, 0.02), the projections that add into the residual stream
 * (attn_output, ffn_down) scaled by 1/sqrt(2·layers) as in GPT-2. Drawn from `rng`: the same seed, the same model.
 */
export function createModel(shape: ModelShape, rng: Rng): TrainModel {
  checkShape(shape);
  const residualStd = INIT_STD / Math.sqrt(2 * shape.layers);
  const params = tensorSpecs(shape).map(({ name, dims, init }) => {
    const p = new Param(name, dims);
    if (init === 'one') p.value.fill(1);
    else fillNormal(p.value, rng, init === 'residual' ? residualStd : INIT_STD);
    return p;
  });
  return bindModel(shape, params);
}

/** Normal(0, std) samples by Box–Muller. */
function fillNormal(out: Float32Array, rng: Rng, std: number): void {
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.nextFloat())), theta = 2 * Math.PI * rng.nextFloat();
    out[i] = std * r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = std * r * Math.sin(theta);
  }
}

/** The model over existing parameters (in GGUF tensor order, as createModel makes them). */
export function bindModel(shape: ModelShape, params: Param[]): TrainModel {
  const byName = new Map(params.map((p) => [p.name, p]));
  const hparams = shapeHParams(shape);
  const bound = llama.bind<Param>(hparams, checkedSource('llama', (name) => byName.get(name), (p) => p.value));
  return { shape, hparams, params, bound };
}

/** The logits of a training forward pass (every architecture kiln trains has a language-model head). */
export function logitsOf(output: ModelOutput<Var>): Var {
  if (!output.head) throw new ModelShapeError('the model has no language-model head to train');
  return output.head(output.hidden);
}

/** logits [nSeq · seqLen, vocab] for `tokens` [nSeq · seqLen] */
export function forwardLogits(model: TrainModel, tokens: Int32Array, nSeq: number, seqLen: number): Var {
  return logitsOf(model.bound.forward(new TrainOps(tokens, nSeq, seqLen)));
}

/** The tokenizer of the raw bytes: token i is byte i. */
export function byteTokenizer(): TrainedBPE {
  return { vocab: Array.from({ length: 256 }, (_, b) => Uint8Array.of(b)), merges: [], specials: [] };
}

/** the special token that ends a text in GPT-2-style vocabularies */
const END_OF_TEXT = '<|endoftext|>';

/** GGUF token types (llama.cpp's llama_token_type) */
const TOKEN_NORMAL = 1, TOKEN_CONTROL = 3;

/**
 * A byte-level BPE as GGUF tokenizer metadata, GPT-2 style: tokens spelled in GPT-2's byte-to-unicode characters
 * (specials as their text, typed CONTROL), merges as "a b". kiln's Tokenizer and llama.cpp both read it.
 */
export function tokenizerMetadata(tokenizer: TrainedBPE): Map<string, GGUFValue> {
  const special = new Map(tokenizer.specials.map((s) => [s.id, s.content]));
  // GPT-2's convention: <|endoftext|> begins and ends a text (without it llama.cpp and kiln would take token 11)
  const endOfText = tokenizer.specials.find((s) => s.content === END_OF_TEXT);
  const ends: [string, GGUFValue][] = endOfText
    ? [['tokenizer.ggml.bos_token_id', metaU32(endOfText.id)], ['tokenizer.ggml.eos_token_id', metaU32(endOfText.id)]]
    : [];
  return new Map([
    ['tokenizer.ggml.model', metaString('gpt2')],
    ['tokenizer.ggml.pre', metaString('gpt-2')],
    ['tokenizer.ggml.tokens', metaArray(GGUFValueType.STRING, tokenizer.vocab.map((b, id) => special.get(id) ?? bytesToUnicode(b)))],
    ['tokenizer.ggml.token_type', metaArray(GGUFValueType.INT32, tokenizer.vocab.map((_, id) => (special.has(id) ? TOKEN_CONTROL : TOKEN_NORMAL)))],
    ['tokenizer.ggml.merges', metaArray(GGUFValueType.STRING, tokenizer.merges.map(([a, b]) => `${bytesToUnicode(a)} ${bytesToUnicode(b)}`))],
    ['tokenizer.ggml.add_bos_token', metaBool(false)],
    ...ends,
  ]);
}

/**
 * The GGUF of a trained model: llama hyper-parameters, the tokenizer's metadata and every parameter as F32.
 */
export function modelGGUF(model: TrainModel, tokenizer: TrainedBPE, name: string): GGUFWriteInput {
  const hp = model.hparams;
  if (tokenizer.vocab.length !== hp.vocabSize) throw new ModelShapeError(`tokenizer has ${tokenizer.vocab.length} tokens, model.vocab is ${hp.vocabSize}`);
  const meta = new Map<string, GGUFValue>([
    ['general.architecture', metaString('llama')],
    ['general.name', metaString(name)],
    ['general.file_type', metaU32(0)], // all F32
    ['llama.context_length', metaU32(hp.contextLength)],
    ['llama.embedding_length', metaU32(hp.embeddingLength)],
    ['llama.block_count', metaU32(hp.blockCount)],
    ['llama.feed_forward_length', metaU32(hp.feedForwardLength)],
    ['llama.attention.head_count', metaU32(hp.headCount)],
    ['llama.attention.head_count_kv', metaU32(hp.headCountKv)],
    ['llama.attention.layer_norm_rms_epsilon', metaF32(hp.rmsEps)],
    ['llama.rope.dimension_count', metaU32(hp.rope.nDims)],
    ['llama.rope.freq_base', metaF32(hp.rope.freqBase)],
    ['llama.vocab_size', metaU32(hp.vocabSize)],
  ]);
  if (hp.expertCount > 0) {
    meta.set('llama.expert_count', metaU32(hp.expertCount));
    meta.set('llama.expert_used_count', metaU32(hp.expertUsedCount));
  }
  for (const [key, value] of tokenizerMetadata(tokenizer)) meta.set(key, value);
  const tensors = model.params.map((p) => ({
    name: p.name,
    dims: p.dims,
    type: GGMLType.F32,
    data: new Uint8Array(p.value.buffer, p.value.byteOffset, p.value.byteLength),
  }));
  return { metadata: meta, tensors };
}
