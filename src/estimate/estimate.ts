// Memory needed to run or train a model: each term (weights, KV cache, activations, gradients, optimizer states,
// master weights, runtime overhead) with the formula that gives it, split over tensor / pipeline / data parallel
// devices, checked against rules of thumb and a table of devices.

import type { GGUFHeader } from '../gguf/types.js';
import { deviceFits, type DeviceFit } from './devices.js';
import { SLAB_ITEM_MAX } from '../generate/inference-ops.js';
import { modelFromGGUF, type ModelDescription, type ModelShape, type ModelTensor } from './model.js';
import {
  BF16, F16, F32, NF4, bitsPerWeight, kvStorageType, parseWeightType, storageBytes, storageType,
  type StorageType, type WeightTypeName,
} from './storage.js';
import { chooseTensorTypes, defaultTypeOf, fileTypeFromName, quantizationOrder } from '../quant/mix.js';
import { GGMLType, typeName } from '../tensor/ggml-type.js';

export const MODES = ['inference', 'lora', 'qlora', 'full', 'pretrain'] as const;
export type Mode = (typeof MODES)[number];

/** Whose inference compute buffers: llama.cpp's ggml graph, or kiln's own (see kilnComputeBytes). */
export const RUNTIMES = ['llama.cpp', 'kiln'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** Optimizer state bytes per trainable parameter: AdamW m and v in fp32; 8-bit AdamW m and v in int8; SGD momentum fp32. */
export const OPTIMIZER_BYTES = { adamw: 8, adamw8bit: 2, sgd: 4 } as const;
export type Optimizer = keyof typeof OPTIMIZER_BYTES;

/** LoRA target names and the GGUF roles of the matrices they adapt. */
export const LORA_TARGETS: Record<string, readonly string[]> = {
  q: ['attn_q'], k: ['attn_k'], v: ['attn_v'], o: ['attn_output'], qkv: ['attn_qkv'],
  gate: ['ffn_gate', 'ffn_gate_exps'], up: ['ffn_up', 'ffn_up_exps'], down: ['ffn_down', 'ffn_down_exps'],
};

export class EstimateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EstimateError';
  }
}

export interface EstimateSpec {
  model: ModelDescription;
  mode?: Mode;
  /** tokens per sequence */
  ctx?: number;
  /** sequences (inference) or micro-batch size per device (training) */
  batch?: number;
  /** tokens per forward step of prompt processing (llama.cpp's n_ubatch, default 512) */
  ubatch?: number;
  /** F16, Q4_K_M, …: inference and (Q)LoRA base weights; F32/F16/BF16 trained weights in full/pretrain */
  weightType?: string;
  kvType?: string;
  optimizer?: Optimizer;
  mixedPrecision?: boolean;
  gradCheckpointing?: boolean;
  loraRank?: number;
  loraTargets?: readonly string[];
  tp?: number;
  pp?: number;
  dp?: number;
  zero?: 0 | 1 | 2 | 3;
  /** fixed allowance for the runtime itself (default 256 MiB inference and kiln's trainer, 1 GiB other training) */
  overheadBytes?: number;
  /** inference compute buffers as llama.cpp (default) or kiln lays them out; full/pretrain: kiln's own trainer */
  runtime?: Runtime;
  /** kiln training: tokens of the corpus, held as an Int32Array for the whole run (default 0) */
  datasetTokens?: number;
}

export type Settings = Required<Omit<EstimateSpec, 'model' | 'weightType'>> & { weightType: string };

export interface TermPart {
  label: string;
  bytes: number;
  params?: number;
  /** the bytes of this part inside the blocks (what pipeline stages split) */
  inLayers?: number;
}

export interface Term {
  id: 'weights' | 'kv_cache' | 'activations' | 'gradients' | 'optimizer' | 'master_weights' | 'dataset' | 'checkpoint' | 'overhead';
  label: string;
  /** one model replica on one device, no parallelism */
  bytes: number;
  /** what one of the tp·pp·dp devices holds */
  perDevice: number;
  formula: string;
  parts?: TermPart[];
  note?: string;
}

export interface RuleOfThumb {
  rule: string;
  formula: string;
  low: number;
  high: number;
}

export interface Estimate {
  model: { name: string; source: ModelDescription['source']; shape: ModelShape; paramCount: number; shapeGuessed: boolean; note?: string };
  settings: Settings;
  trainableParams: number;
  terms: Term[];
  /** Σ bytes: one replica without parallelism */
  total: number;
  /** Σ perDevice: the figure a device must hold */
  perDevice: number;
  /** tp · pp · dp */
  devices: number;
  rulesOfThumb: RuleOfThumb[];
  fits: DeviceFit[];
}

const MiB = 2 ** 20, GiB = 2 ** 30;

/** The types full training and pretraining keep their weights in. */
const TRAINED_TYPES: Record<string, StorageType> = { F32, F16, BF16 };
const training = (mode: Mode) => mode !== 'inference';

// ---- settings ----

function positiveInt(what: string, v: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new EstimateError(`${what} must be an integer in [1, ${max}], got ${v}`);
  return v;
}

function resolveSettings(spec: EstimateSpec): Settings {
  const { model } = spec;
  const mode = spec.mode ?? 'inference';
  if (!MODES.includes(mode)) throw new EstimateError(`unknown mode "${mode}" (${MODES.join(', ')})`);
  const optimizer = spec.optimizer ?? 'adamw';
  if (!(optimizer in OPTIMIZER_BYTES)) throw new EstimateError(`unknown optimizer "${optimizer}" (${Object.keys(OPTIMIZER_BYTES).join(', ')})`);
  const loraTargets = spec.loraTargets ?? Object.keys(LORA_TARGETS);
  for (const t of loraTargets) if (!(t in LORA_TARGETS)) throw new EstimateError(`unknown LoRA target "${t}" (${Object.keys(LORA_TARGETS).join(', ')})`);
  const zero = spec.zero ?? 0;
  if (![0, 1, 2, 3].includes(zero)) throw new EstimateError(`--zero must be 0, 1, 2 or 3, got ${zero}`);
  const settings: Settings = {
    mode,
    ctx: positiveInt('ctx', spec.ctx ?? 4096, 1 << 24),
    batch: positiveInt('batch', spec.batch ?? 1, 1 << 20),
    ubatch: positiveInt('ubatch', spec.ubatch ?? 512, 1 << 24),
    weightType: spec.weightType ?? '',
    kvType: (spec.kvType ?? 'f16').toLowerCase(),
    optimizer,
    mixedPrecision: spec.mixedPrecision ?? false,
    gradCheckpointing: spec.gradCheckpointing ?? false,
    loraRank: positiveInt('LoRA rank', spec.loraRank ?? 16, 1 << 16),
    loraTargets,
    tp: positiveInt('tp', spec.tp ?? 1, 1 << 16),
    pp: positiveInt('pp', spec.pp ?? 1, model.shape.nLayer),
    dp: positiveInt('dp', spec.dp ?? 1, 1 << 20),
    zero,
    overheadBytes: spec.overheadBytes ?? (training(mode) && spec.runtime !== 'kiln' ? GiB : 256 * MiB),
    runtime: spec.runtime ?? 'llama.cpp',
    datasetTokens: spec.datasetTokens ?? 0,
  };
  if (!Number.isSafeInteger(settings.datasetTokens) || settings.datasetTokens < 0) throw new EstimateError(`datasetTokens must be a non-negative integer, got ${settings.datasetTokens}`);
  if (!RUNTIMES.includes(settings.runtime)) throw new EstimateError(`unknown runtime "${settings.runtime}" (${RUNTIMES.join(', ')})`);
  settings.weightType = resolveWeightType(spec.weightType, model, settings);
  kvStorageType(settings.kvType);
  if (kilnTraining(settings)) checkKilnTraining(model.shape, settings);
  return settings;
}

/** The weight type the estimate uses: the one asked for, else the model's own; trained weights are F32/F16/BF16. */
function resolveWeightType(asked: string | undefined, model: ModelDescription, s: Settings): string {
  const native = model.nativeType;
  if (s.mode === 'full' || s.mode === 'pretrain') {
    const type = asked?.toUpperCase() ?? (s.mixedPrecision ? (native === 'F16' ? 'F16' : 'BF16') : 'F32');
    if (!(type in TRAINED_TYPES)) throw new EstimateError(`${s.mode} trains F32, F16 or BF16 weights, not ${type}`);
    if (s.mixedPrecision && type === 'F32') throw new EstimateError('--mixed-precision keeps 16-bit weights (F16 or BF16) beside an fp32 master copy');
    return type;
  }
  if (asked !== undefined) return parseWeightType(asked);
  if (s.mode === 'qlora') return 'NF4';
  return native;
}

// ---- weights ----

/** The type llama-quantize's `mix` gives each tensor, by name: the quantizer's own rules (src/quant/mix.ts). */
export function mixTypes(model: ModelDescription, mix: WeightTypeName): Map<string, StorageType> {
  const shapes = quantizationOrder(model.tensors.map((t) => ({
    name: t.name,
    dims: t.isVector ? [t.nIn] : [t.nIn, t.nOut, t.count],
    type: GGMLType.F32,
  })));
  const { arch, nLayer, nHead, nKvHead, nExpert } = model.shape;
  const types = chooseTensorTypes(shapes, { arch, nLayer, nHead, nHeadKv: nKvHead, nExpert }, { ftype: fileTypeFromName(mix) });
  return new Map(shapes.map((t, i) => [t.name, storageType(typeName(types[i]))]));
}

/** The storage type of one tensor under the settings (undefined: keep the GGUF file's stored bytes). */
function typeOfTensor(t: ModelTensor, model: ModelDescription, s: Settings, mixed: () => Map<string, StorageType>): StorageType | undefined {
  const wt = s.weightType;
  if (wt === 'GGUF') return undefined;
  if (s.mode === 'full' || s.mode === 'pretrain') return TRAINED_TYPES[wt];
  if (s.mode === 'qlora' && !(t.layer >= 0 && !t.isVector && t.role !== 'ffn_gate_inp')) {
    // bitsandbytes quantizes only the Linear layers of the blocks; embeddings, output, norms and router stay 16-bit
    return model.nativeType === 'F16' ? F16 : BF16;
  }
  if (wt === 'NF4') return NF4;
  // the parameters a bare count adds beyond the guessed shape's tensors get the mix's default type
  if (t.role === 'other') return storageType(typeName(defaultTypeOf(fileTypeFromName(wt))));
  return mixed().get(t.name);
}

/**
 * Weight bytes grouped by type. Exact per tensor for GGUF files, configs and explicit shapes. For a bare
 * parameter count N the guessed shape's matrices only give the proportions of each type: N × share × bits / 8.
 */
export function weightParts(model: ModelDescription, s: Settings): TermPart[] {
  const tensors = model.shapeGuessed ? model.tensors.filter((t) => !t.isVector) : model.tensors;
  const groups = new Map<string, { type?: StorageType; params: number; bytes: number; inLayers: number }>();
  let mixed: Map<string, StorageType> | undefined;
  const mixedTypes = () => (mixed ??= mixTypes(model, parseWeightType(s.weightType)));
  for (const t of tensors) {
    const type = typeOfTensor(t, model, s, mixedTypes);
    const name = type?.name ?? t.stored!.type;
    const g = groups.get(name) ?? { type, params: 0, bytes: 0, inLayers: 0 };
    const bytes = type ? storageBytes(t.params, type) : t.stored!.bytes;
    g.params += t.params;
    g.bytes += bytes;
    if (t.layer >= 0) g.inLayers += bytes;
    groups.set(name, g);
  }
  const covered = tensors.reduce((n, t) => n + t.params, 0);
  const parts = [...groups].map(([label, g]) => {
    if (!model.shapeGuessed) return { label, params: g.params, bytes: g.bytes, inLayers: g.inLayers };
    const params = model.paramCount * (g.params / covered);
    const bytes = storageBytes(params, g.type!);
    return { label, params, bytes, inLayers: bytes * (g.inLayers / g.bytes) };
  });
  return parts.sort((a, b) => b.bytes - a.bytes);
}

// ---- the estimate ----

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const n = (x: number) => (Number.isInteger(x) ? x.toLocaleString('en-US') : x.toPrecision(4));

/** LoRA parameters: rank × (n_in + n_out) for every adapted matrix (each expert's matrix counts). */
export function loraParams(model: ModelDescription, rank: number, targets: readonly string[]): number {
  const roles = new Set(targets.flatMap((t) => LORA_TARGETS[t]));
  return sum(model.tensors.filter((t) => roles.has(t.role)).map((t) => rank * (t.nIn + t.nOut) * t.count));
}

/** f16 values one position takes in the KV cache of one layer: the architecture's cache row, keys + values. */
const cacheRowWidth = (model: ModelDescription) => model.cacheRow.keys + model.cacheRow.values;

/**
 * KV cache: n_layer × (the architecture's cache row per position: n_kv_heads × (key + value width) for full K/V,
 * MLA's latent + roped key) × ctx × batch × bytes per value of the cache type.
 */
export function kvCacheBytes(model: ModelDescription, ctx: number, batch: number, kvType: string): number {
  return storageBytes(model.shape.nLayer * cacheRowWidth(model) * ctx * batch, kvStorageType(kvType));
}

/**
 * What one block computes per token, read from its tensors, so that it follows the architecture (LayerNorm,
 * GELU or gated feed-forwards, fused projections, latent attention): a matrix turns n_in values into n_out (an
 * expert stack, for each expert used), a norm returns its width, attention returns attn_output's input width and
 * the feed-forward activation ffn_down's.
 */
export interface BlockWidths {
  /**
   * f32 values kiln's ops return per token, each op a fresh array: every matrix's output, every norm's, the
   * attention output, the feed-forward activation, and a copy of each fused output the block splits into parts
   * (q/k/v, gate/up, MLA's latent and roped key)
   */
  kilnValues: number;
  /** rows of the feed-forward's input projections (gate and up; each expert used; shared experts): llama.cpp's 2·ffn */
  ffnInputs: number;
  /** the attention output, attn_output's input width */
  attention: number;
  /** the widest matmul over every token: its input, the input's activation copy and its output, 2·n_in + n_out */
  widestMatmul: number;
}

/** roles whose output a block splits into parts (column copies) */
const SPLIT_OUTPUTS = new Set(['attn_qkv', 'attn_kv_a_mqa']);

/**
 * The widths per token of the f32 arrays kiln's ops return in one block, in the order they are made: each norm's,
 * each matrix's output (twice where the block splits it into parts), the feed-forward activation (ffn_down's input)
 * and the attention output.
 */
function kilnOutputWidths(tensors: readonly ModelTensor[], expertsUsed: number): number[] {
  const byRole = (role: string) => tensors.find((t) => t.role === role);
  const [up, down] = [byRole('ffn_up'), byRole('ffn_down')];
  // phi3's ffn_up holds the gate rows too: twice ffn_down's input, and no ffn_gate
  const fusedGateUp = up !== undefined && down !== undefined && !byRole('ffn_gate') && up.nOut === 2 * down.nIn;
  const widths: number[] = [];
  for (const t of tensors) {
    if (t.isVector) {
      if (t.role.endsWith('_norm')) widths.push(t.nIn);
      continue;
    }
    const used = t.count > 1 ? expertsUsed : 1;
    const out = t.nOut * used;
    widths.push(out);
    if (SPLIT_OUTPUTS.has(t.role) || (t === up && fusedGateUp)) widths.push(out);
    if (/^ffn_down(_exps|_shexp)?$/.test(t.role)) widths.push(t.nIn * used);
  }
  const attention = byRole('attn_output')?.nIn;
  if (attention !== undefined) widths.push(attention);
  return widths;
}

function widthsOf(tensors: readonly ModelTensor[], expertsUsed: number): BlockWidths {
  const w: BlockWidths = { kilnValues: sum(kilnOutputWidths(tensors, expertsUsed)), ffnInputs: 0, attention: 0, widestMatmul: 0 };
  for (const t of tensors) {
    if (t.isVector) continue;
    const out = t.nOut * (t.count > 1 ? expertsUsed : 1);
    if (t.role === 'attn_output') w.attention = t.nIn;
    if (/^ffn_(gate|up)(_exps|_shexp)?$/.test(t.role)) w.ffnInputs += out;
    if (t.count === 1) w.widestMatmul = Math.max(w.widestMatmul, 2 * t.nIn + t.nOut);
  }
  return w;
}

/** Each block's tensors. */
function blockTensors(model: ModelDescription): ModelTensor[][] {
  const blocks: ModelTensor[][] = Array.from({ length: model.shape.nLayer }, () => []);
  for (const t of model.tensors) blocks[t.layer]?.push(t);
  return blocks;
}

/** Each block's widths (blocks differ: deepseek2's first is dense, the others mixtures of experts). */
export function blockWidths(model: ModelDescription): BlockWidths[] {
  return blockTensors(model).map((tensors) => widthsOf(tensors, Math.max(1, model.shape.nExpertUsed)));
}

const maxOf = (blocks: readonly BlockWidths[], key: keyof BlockWidths) => Math.max(0, ...blocks.map((b) => b[key]));

/** Values per output row: logits for a decoder, final hidden states for an encoder (no language-model head). */
const outputWidth = (model: ModelDescription) => (model.hparams.causal ? model.shape.vocab : model.shape.dim);

/**
 * Inference scratch (f32) for one forward step of T = min(ubatch, batch·ctx) tokens; layers run one at a time, so
 * one layer's buffers: hidden state, norm output and attention output (3·dim), the step's cache rows (k and v),
 * the feed-forward's input rows (gate and up, each expert used: 2·ffn·used for llama), attention scores
 * (heads × T × ctx) and one output row per sequence.
 */
export function inferenceActivationBytes(model: ModelDescription, ctx: number, batch: number, ubatch: number): number {
  const T = Math.min(ubatch, batch * ctx), { shape } = model;
  const ffnInputs = maxOf(blockWidths(model), 'ffnInputs');
  return 4 * (T * (3 * shape.dim + cacheRowWidth(model) + ffnInputs) + shape.nHead * T * ctx + batch * outputWidth(model));
}

/** Korthikanti et al. 2022: activations of one transformer layer in 16-bit, 34·s·b·h + 5·a·s²·b bytes. */
export function layerActivationBytes(s: number, b: number, h: number, a: number): number {
  return 34 * s * b * h + 5 * a * s * s * b;
}

/** How a term spreads over devices: tp splits every matrix, pp gives a stage ⌈L/pp⌉ layers, ZeRO shards over dp. */
interface Split {
  tp: number;
  dp: number;
  zero: number;
  layers: number;
  layersPerStage: number;
}

/**
 * One device's share of a term of `bytes`, `inLayers` of them inside the blocks: non-layer tensors (embeddings,
 * output) are counted whole on a stage, layers ⌈L/pp⌉ of L; all of it ÷ tp; ÷ dp from ZeRO stage `zeroStage` on.
 */
function onDevice(bytes: number, inLayers: number, split: Split, zeroStage = 4): number {
  const stage = bytes - inLayers + (inLayers * split.layersPerStage) / split.layers;
  return stage / split.tp / (split.zero >= zeroStage ? split.dp : 1);
}

/** Training facts shared by the terms: trainable parameters, their bytes, and their share inside the blocks. */
interface Trained {
  params: number;
  /** bytes of a trained parameter and of its gradient: 16-bit under mixed precision, else the weight type (fp32 LoRA) */
  bytes: number;
  inLayers: number;
  isLora: boolean;
}

function trainedParams(model: ModelDescription, s: Settings): Trained {
  const isLora = s.mode === 'lora' || s.mode === 'qlora';
  if (!training(s.mode)) return { params: 0, bytes: 0, inLayers: 0, isLora };
  const inBlocks = sum(model.tensors.filter((t) => t.layer >= 0).map((t) => t.params)) / sum(model.tensors.map((t) => t.params));
  return {
    params: isLora ? loraParams(model, s.loraRank, s.loraTargets) : model.paramCount,
    bytes: s.mixedPrecision ? 2 : isLora ? 4 : storageBytes(1, TRAINED_TYPES[s.weightType]),
    inLayers: isLora ? 1 : inBlocks,
    isLora,
  };
}

function weightsTerm(model: ModelDescription, s: Settings, trained: Trained, split: Split): Term {
  const parts = weightParts(model, s);
  const label = s.weightType === 'GGUF' ? 'as stored in the GGUF file' : s.weightType;
  let formula = `Σ tensors params × bits/8 (${label}): ${parts.map((p) => `${p.label} ${n(p.params!)}×${bitsPerWeightOf(p)}`).join(' + ')}`;
  if (model.shapeGuessed) formula += ` — N = ${n(model.paramCount)} split in the proportions of a llama-shaped guess`;
  if (trained.isLora) {
    const adapters = trained.params * trained.bytes;
    parts.push({ label: `LoRA adapters (${trained.bytes * 8}-bit)`, params: trained.params, bytes: adapters, inLayers: adapters });
    formula += ` + LoRA ${n(trained.params)} × ${trained.bytes} B`;
  }
  const bytes = sum(parts.map((p) => p.bytes));
  return {
    id: 'weights', label: trained.isLora ? 'weights (frozen base + adapters)' : 'weights', bytes,
    perDevice: onDevice(bytes, sum(parts.map((p) => p.inLayers!)), split, 3), formula, parts,
  };
}

/** The cache row in words: by heads where it holds full keys and values, else as the architecture states it. */
function cacheRowFormula(model: ModelDescription): string {
  const { shape, cacheRow: row } = model;
  const fullKV = row.keys === shape.nKvHead * shape.keyLength && row.values === shape.nKvHead * shape.valueLength;
  if (fullKV && shape.keyLength === shape.valueLength) return `2 × ${shape.nLayer} layers × ${shape.nKvHead} kv heads × ${shape.keyLength} head dim`;
  if (fullKV) return `${shape.nLayer} layers × ${shape.nKvHead} kv heads × (${shape.keyLength} + ${shape.valueLength})`;
  if (row.values === 0) return `${shape.nLayer} layers × ${row.keys} values (one row for keys and values, shared by every head)`;
  return `${shape.nLayer} layers × (${row.keys} + ${row.values})`;
}

function kvCacheTerm(model: ModelDescription, s: Settings, split: Split): Term {
  const bytes = kvCacheBytes(model, s.ctx, s.batch, s.kvType);
  return {
    id: 'kv_cache', label: `KV cache (${s.kvType})`, bytes, perDevice: onDevice(bytes, bytes, split),
    formula: `${cacheRowFormula(model)} × ${s.ctx} ctx × ${s.batch} batch × ${bitsPerWeight(kvStorageType(s.kvType)) / 8} B`,
    note: model.hparams.causal ? undefined : 'an encoder keeps no cache between requests: these are the keys and values of the batch it encodes',
  };
}

/** V8's external-allocation soft limit: ArrayBuffer memory allocated past it since the last collection triggers one. */
export const V8_EXTERNAL_SOFT_LIMIT = 64 * MiB;

/**
 * kiln's compute memory for one step of T = min(ubatch, batch·ctx) tokens. Every op returns an f32 array of T rows
 * (kilnOutputWidths; BlockWidths.kilnValues is their sum per token). Arrays over SLAB_ITEM_MAX values are handed from
 * layer to layer (InferenceOps.endLayer): one block's worth is resident, plus the previous layer's output it keeps.
 * Smaller ones are views of slabs that become garbage, and so do an earlier step's arrays when a prompt takes several
 * steps; V8 frees garbage only after about V8_EXTERNAL_SOFT_LIMIT of new ArrayBuffer memory, so it adds up to that.
 * On top: the WebAssembly scratch of the largest op, which stays committed (x, its activation copy and the output of
 * the widest matmul, 4·T·(2·n_in + n_out), or attention's gathered f16 cache rows plus q and its output), and one
 * output row per sequence (logits, or an encoder's hidden states).
 */
export function kilnComputeBytes(model: ModelDescription, ctx: number, batch: number, ubatch: number): number {
  const T = Math.min(ubatch, batch * ctx), { shape } = model;
  const blocks = blockWidths(model);
  const outputs = blockTensors(model).map((tensors) => kilnOutputWidths(tensors, Math.max(1, shape.nExpertUsed)));
  const handedOn = Math.max(0, ...outputs.map((widths) => sum(widths.filter((w) => T * w > SLAB_ITEM_MAX))));
  const kept = T * shape.dim > SLAB_ITEM_MAX ? shape.dim : 0;
  const inSlabs = sum(outputs.map((widths) => sum(widths.filter((w) => T * w <= SLAB_ITEM_MAX))));
  // each step of a prompt makes its own arrays; the earlier steps' are garbage until V8 collects
  const steps = Math.ceil((batch * ctx) / T), perStep = 4 * T * (handedOn + kept);
  const activations = perStep + Math.min((steps - 1) * perStep + steps * 4 * T * inSlabs, V8_EXTERNAL_SOFT_LIMIT);
  const matmulScratch = 4 * T * maxOf(blocks, 'widestMatmul');
  const q = shape.nHead * shape.keyLength;
  const attentionScratch = 2 * Math.min(batch * ctx, T * ctx) * cacheRowWidth(model) + 4 * T * (q + maxOf(blocks, 'attention'));
  return activations + Math.max(matmulScratch, attentionScratch) + 4 * batch * outputWidth(model);
}

/** "V" or "lo–hi": a width over the blocks */
function widthRange(blocks: readonly BlockWidths[], key: keyof BlockWidths): string {
  const values = blocks.map((b) => b[key]);
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  return lo === hi ? `${hi}` : `${lo}–${hi}`;
}

/** "batch·V logits", or an encoder's "batch·dim hidden states" */
const outputFormula = (model: ModelDescription, batch: number) =>
  `${batch}·${outputWidth(model)} ${model.hparams.causal ? 'logits' : 'hidden states'}`;

function kilnComputeTerm(model: ModelDescription, s: Settings, split: Split): Term {
  const T = Math.min(s.ubatch, s.batch * s.ctx);
  const bytes = kilnComputeBytes(model, s.ctx, s.batch, s.ubatch);
  return {
    id: 'activations', label: 'compute buffers (kiln)', bytes, perDevice: bytes / split.tp,
    formula: `4 B·T·${widthRange(blockWidths(model), 'kilnValues')} values the ops of one layer return per token (matmul outputs, norms, ` +
      `attention, activations; arrays over ${SLAB_ITEM_MAX} values are handed from layer to layer, plus the kept layer output; smaller ` +
      `ones over the ${model.shape.nLayer} layers, and earlier steps' arrays, add up to at most V8's 64 MiB GC threshold) + largest wasm op scratch + 4 B·${outputFormula(model, s.batch)}, ` +
      `T = min(ubatch ${s.ubatch}, batch·ctx) = ${T} tokens per step`,
  };
}

function computeBufferTerm(model: ModelDescription, s: Settings, split: Split): Term {
  if (s.runtime === 'kiln') return kilnComputeTerm(model, s, split);
  const bytes = inferenceActivationBytes(model, s.ctx, s.batch, s.ubatch);
  const T = Math.min(s.ubatch, s.batch * s.ctx), { shape } = model;
  return {
    id: 'activations', label: 'compute buffers', bytes, perDevice: bytes / split.tp,
    formula: `4 B × [T·(3·${shape.dim} + ${cacheRowWidth(model)} cache row + ${maxOf(blockWidths(model), 'ffnInputs')} ffn input rows) + ` +
      `${shape.nHead} heads·T·${s.ctx} ctx + ${outputFormula(model, s.batch)}], T = min(ubatch ${s.ubatch}, batch·ctx) = ${T} tokens per step`,
  };
}

// ---- kiln's own trainer (src/train) ----

const kilnTraining = (s: Settings) => s.runtime === 'kiln' && (s.mode === 'full' || s.mode === 'pretrain');

/** kiln trains dense llama models in f32 with AdamW on one device; anything else has no kiln-specific model. */
function checkKilnTraining(shape: ModelShape, s: Settings): void {
  const unsupported = [
    shape.arch !== 'llama' && `the ${shape.arch} architecture`, shape.nExpert > 0 && 'a mixture of experts',
    shape.qkvBias && 'q/k/v biases', shape.norm !== 'rms' && 'layer norm',
    s.weightType !== 'F32' && `${s.weightType} weights`, s.mixedPrecision && 'mixed precision',
    s.gradCheckpointing && 'gradient checkpointing', s.optimizer !== 'adamw' && `optimizer ${s.optimizer}`,
    s.tp * s.pp * s.dp > 1 && 'parallelism',
  ].filter((x): x is string => typeof x === 'string');
  if (unsupported.length > 0) throw new EstimateError(`kiln's trainer runs dense llama models in f32 with AdamW on one device, not ${unsupported.join(', ')}`);
}

/**
 * The bytes one step of kiln's trainer holds at its peak, the end of backward, for nSeq sequences of S tokens
 * (n = nSeq·S rows). Every autograd op allocates its outputs in the matmul kernel's WebAssembly memory and none is
 * released before the step ends, so the memory's high-water mark is the sum (f32, 4 B a float). Per layer:
 *   values     n·(6·dim + 2·q + 2·k + v + attn + 4·ffn): attn norm, wo out, residual sum, ffn norm, down out,
 *              residual sum; q and k before and after rope; v; attention out; gate, up, swiglu and its kept σ(gate)
 *   gradients  of the same Vars but σ: n·(6·dim + 2·q + 2·k + v + attn + 3·ffn)
 *   weightsT   each linear's transposed weight copy: dim·(q + k + v) + attn·dim + 3·dim·ffn
 *   attention  probabilities nSeq·heads·S² kept for backward; per-head gathers 5·S·hd (forward) + 3·S·hd + S² (backward)
 * Outside the blocks: embedding rows and final norm with their gradients 4·n·dim, logits and their gradient 2·n·V,
 * the output's transposed weight dim·V, the loss's softmax in f64 (8 B) 8·n·V. Beside the WebAssembly memory, on the
 * JS heap: rope's cos and sin in f64 8·n·hd, and each norm's 1/rms, 4·n·(2·L + 1).
 */
export function kilnTrainingStepBytes(shape: ModelShape, seqLen: number, nSeq: number): TermPart[] {
  const n = nSeq * seqLen, S = seqLen, L = shape.nLayer, hd = shape.keyLength;
  const { dim, ffn, vocab: V } = shape;
  const q = shape.nHead * hd, k = shape.nKvHead * hd, v = shape.nKvHead * shape.valueLength, attn = shape.nHead * shape.valueLength;
  const values = L * n * (6 * dim + 2 * q + 2 * k + v + attn + 4 * ffn) + 2 * n * dim + n * V;
  const gradients = L * n * (6 * dim + 2 * q + 2 * k + v + attn + 3 * ffn) + 2 * n * dim + n * V;
  const weightsT = L * (dim * (q + k + v) + attn * dim + 3 * dim * ffn) + dim * V;
  const attention = L * (nSeq * shape.nHead * S * S + 8 * S * hd + S * S);
  return [
    { label: 'activations (f32, tape)', bytes: 4 * values },
    { label: 'activation gradients (f32)', bytes: 4 * gradients },
    { label: 'transposed weight copies (f32)', bytes: 4 * weightsT },
    { label: 'attention probabilities + head scratch (f32)', bytes: 4 * attention },
    { label: 'loss softmax (f64)', bytes: 8 * n * V },
    { label: 'rope angles (f64), 1/rms (JS heap)', bytes: 8 * n * hd + 4 * n * (2 * L + 1) },
  ];
}

function kilnTrainingActivationsTerm(shape: ModelShape, s: Settings): Term {
  const parts = kilnTrainingStepBytes(shape, s.ctx, s.batch);
  const bytes = sum(parts.map((p) => p.bytes));
  return {
    id: 'activations', label: 'training step (kiln autograd)', bytes, perDevice: bytes, parts,
    formula: `one step of ${s.batch} × ${s.ctx} tokens held until backward ends: ${shape.nLayer} layers × ` +
      '[values + grads n·(12·dim + 4·q + 4·k + 2·v + 2·attn + 7·ffn) + wᵀ + nSeq·heads·S² probs] + 4·n·dim + 2·n·V + dim·V, f32; + 8·n·V f64 softmax',
    note: 'one step\'s JS-heap arrays; those of earlier steps linger until V8 collects them, so a long run can hold tens of MiB more (at most V8\'s 64 MiB external-memory threshold)',
  };
}

/**
 * Saving a checkpoint concatenates every parameter with its AdamW m and v into one buffer before writing it
 * (src/train/checkpoint.ts): 12 B per parameter on top of the rest, which stays resident.
 */
function kilnCheckpointTerm(params: number): Term {
  const bytes = 12 * params;
  return { id: 'checkpoint', label: 'checkpoint buffer (while saving)', bytes, perDevice: bytes, formula: `${n(params)} parameters × (value + m + v) 12 B` };
}

function datasetTerm(s: Settings): Term {
  const bytes = 4 * s.datasetTokens;
  return { id: 'dataset', label: 'dataset tokens', bytes, perDevice: bytes, formula: `${n(s.datasetTokens)} tokens × 4 B (Int32Array)` };
}

/** Gradients, optimizer states and (under mixed precision) the fp32 master copy of the trained parameters. */
function parameterStateTerms(trained: Trained, s: Settings, split: Split): Term[] {
  const term = (id: Term['id'], label: string, bytesPerParam: number, zeroStage: number, detail = ''): Term => {
    const bytes = trained.params * bytesPerParam;
    return { id, label, bytes, perDevice: onDevice(bytes, bytes * trained.inLayers, split, zeroStage), formula: `${n(trained.params)} trainable × ${bytesPerParam} B${detail}` };
  };
  const lora = trained.isLora ? ` (LoRA r=${s.loraRank} on ${s.loraTargets.join(',')}: Σ r·(n_in + n_out))` : '';
  const terms = [
    term('gradients', 'gradients', trained.bytes, 2, lora),
    term('optimizer', `optimizer states (${s.optimizer})`, OPTIMIZER_BYTES[s.optimizer], 1),
  ];
  if (s.mixedPrecision) terms.push(term('master_weights', 'fp32 master weights', 4, 1));
  return terms;
}

function overheadTerm(s: Settings): Term {
  const what = training(s.mode) ? 'framework, device context, allocator slack' : 'runtime, code, tokenizer tables';
  return { id: 'overhead', label: 'runtime overhead', bytes: s.overheadBytes, perDevice: s.overheadBytes, formula: `fixed allowance ${s.overheadBytes / MiB} MiB (${what})` };
}

export function estimateMemory(spec: EstimateSpec): Estimate {
  const { model } = spec;
  const { shape } = model;
  const s = resolveSettings(spec);
  const split: Split = { tp: s.tp, dp: s.dp, zero: s.zero, layers: shape.nLayer, layersPerStage: Math.ceil(shape.nLayer / s.pp) };
  const trained = trainedParams(model, s);
  const weights = weightsTerm(model, s, trained, split);
  const terms = [
    weights,
    ...(kilnTraining(s)
      ? [...parameterStateTerms(trained, s, split), kilnTrainingActivationsTerm(shape, s), datasetTerm(s), kilnCheckpointTerm(model.paramCount)]
      : training(s.mode)
        ? [...parameterStateTerms(trained, s, split), trainingActivations(shape, s)]
        : [kvCacheTerm(model, s, split), computeBufferTerm(model, s, split)]),
    overheadTerm(s),
  ];
  const perDevice = sum(terms.map((t) => t.perDevice));
  return {
    model: { name: model.name, source: model.source, shape, paramCount: model.paramCount, shapeGuessed: model.shapeGuessed, note: model.note },
    settings: s,
    trainableParams: trained.params,
    terms,
    total: sum(terms.map((t) => t.bytes)),
    perDevice,
    devices: s.tp * s.pp * s.dp,
    rulesOfThumb: rulesOfThumb(model.paramCount, weights.bytes, s.mode),
    fits: deviceFits(perDevice),
  };
}

function bitsPerWeightOf(p: TermPart): string {
  return `${+((8 * p.bytes) / p.params!).toFixed(4)} bits`;
}

/**
 * Training activations (Korthikanti et al. 2022, 16-bit): 34·s·b·h + 5·a·s²·b per layer; with full activation
 * checkpointing only each layer's input (2·s·b·h) is kept, plus one layer's full set while it is recomputed;
 * plus the fp32 logits of the loss, 4·s·b·V. fp32 training doubles the layer terms. Under 1F1B pipelining the
 * first stage keeps pp micro-batches of its ⌈L/pp⌉ layers in flight.
 */
function trainingActivations(shape: ModelShape, s: Settings): Term {
  const { ctx: seq, batch: b, pp, tp } = s;
  const h = shape.dim, a = shape.nHead, L = shape.nLayer;
  const widthFactor = s.mixedPrecision || s.weightType !== 'F32' ? 1 : 2;
  const perLayer = layerActivationBytes(seq, b, h, a) * widthFactor;
  const layerInput = 2 * seq * b * h * widthFactor;
  const logits = 4 * seq * b * shape.vocab;
  const stored = (layers: number, checkpointing: boolean) => (checkpointing ? layers * layerInput + perLayer : layers * perLayer);
  const bytes = stored(L, s.gradCheckpointing) + logits;
  const stage = Math.ceil(L / pp);
  const firstStage = stored(stage * pp, s.gradCheckpointing) + (pp === 1 ? logits : 0);
  const lastStage = stored(stage, s.gradCheckpointing) + logits;
  const layerFormula = `(34·s·b·h + 5·a·s²·b) = 34·${seq}·${b}·${h} + 5·${a}·${seq}²·${b}${widthFactor === 2 ? ' × 2 (fp32)' : ''}`;
  const formula = s.gradCheckpointing
    ? `checkpointing: ${L} layers × 2·s·b·h + one layer ${layerFormula} + logits 4·s·b·V (V = ${shape.vocab})`
    : `${L} layers × ${layerFormula} + logits 4·s·b·V (V = ${shape.vocab})`;
  return {
    id: 'activations', label: `activations${s.gradCheckpointing ? ' (checkpointed)' : ''}`, bytes,
    perDevice: Math.max(firstStage, lastStage) / tp, formula,
    parts: [{ label: 'layers', bytes: bytes - logits }, { label: 'logits', bytes: logits }],
    note: `${s.gradCheckpointing ? 'without' : 'with'} checkpointing: ${(stored(L, !s.gradCheckpointing) + logits).toLocaleString('en-US')} bytes`,
  };
}

/**
 * The source notes' rules of thumb: model size S = N×B (B bytes per parameter of the weights; for training the
 * 16-bit model, B = 2), serving size S′ = N×B×k with k 1.1–1.2, and whole-job multiples of S per mode.
 */
function rulesOfThumb(N: number, weightBytes: number, mode: Mode): RuleOfThumb[] {
  const B = mode === 'inference' ? weightBytes / N : 2;
  const S = N * B;
  const multiple: Record<Mode, [number, number, string]> = {
    inference: [1.2, 5, 'inference'], lora: [1.2, 2, 'LoRA'], qlora: [1.2, 2, 'LoRA'], full: [8, 15, 'full fine-tune'], pretrain: [12, 20, 'training'],
  };
  const [lo, hi, what] = multiple[mode];
  return [
    { rule: 'S = N×B', formula: `${n(N)} × ${+B.toFixed(4)} B`, low: S, high: S },
    { rule: "S′ = N×B×k, k 1.1–1.2", formula: `${n(N)} × ${+B.toFixed(4)} B × 1.1–1.2`, low: S * 1.1, high: S * 1.2 },
    { rule: `${what} ${lo}–${hi}× S`, formula: `${lo}–${hi} × S`, low: S * lo, high: S * hi },
  ];
}

/**
 * The memory kiln itself needs to run a GGUF model with `batch` sequences of `ctx` positions, for comparison with
 * a measured peak RSS: runtime overhead (`overheadBytes`: Node, kiln's code and its worker threads; 256 MiB when not
 * measured) + the weights as stored (read once into WebAssembly memory) + the f16 KV cache + kiln's compute buffers.
 */
export function estimateInference(header: GGUFHeader, ctx: number, batch: number, kvType = 'f16', overheadBytes?: number): Estimate {
  return estimateMemory({ model: modelFromGGUF(header), mode: 'inference', ctx, batch, kvType, overheadBytes, runtime: 'kiln' });
}
