// LoRA (Hu et al. 2021): the chosen projections W [nOut rows of nIn] of a frozen model get a trainable low-rank
// update, y = W·x + (alpha/r)·B·(A·dropout(x)) with A [r rows of nIn] ~ Normal(0, 1/nIn) and B [nOut rows of r] = 0,
// so training starts from the base model exactly. The model's forward code is untouched: LoraTrainOps is the
// training ModelOps with `linear` adding the low-rank path for adapted weights and no gradient for any base weight.
// Adapters are written as llama.cpp's GGUF LoRA adapters (`T.lora_a` ggml dims [nIn, r], `T.lora_b` [r, nOut], F32),
// or merged into the weights: W ← W + (alpha/r)·B·A.

import type { Rng } from '../generate/rng.js';
import { GGMLType } from '../tensor/ggml-type.js';
import type { GGUFValue } from '../gguf/types.js';
import { metaF32, metaString, type GGUFWriteInput } from '../gguf/writer.js';
import { add, linear, linearInputGradient, linearValues, Param, Var } from './autograd.js';
import { allocFloats, trainingBackend } from './backend.js';
import { TrainOps } from './train-ops.js';
import { logitsOf, type TrainModel } from './llama-model.js';
import type { GGUFModelFile } from '../gguf/model-file.js';
import { readLoraDeltas } from '../generate/lora-adapter.js';

export class LoraConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraConfigError';
  }
}

export interface LoraConfig {
  rank: number;
  alpha: number;
  /** dropout probability on the adapter's input while training */
  dropout: number;
  /** short projection names (q, k, v, o, gate, up, down, output) */
  targets: string[];
}

export const DEFAULT_LORA: LoraConfig = { rank: 8, alpha: 16, dropout: 0.05, targets: ['q', 'v'] };

/** short target name → the GGUF tensor name's projection part */
const TARGET_TENSORS: Record<string, string> = {
  q: 'attn_q', k: 'attn_k', v: 'attn_v', o: 'attn_output', gate: 'ffn_gate', up: 'ffn_up', down: 'ffn_down', output: 'output',
};

/** One adapted weight's trainable pair. */
export interface LoraPair {
  /** ggml dims [nIn, r]: r rows of nIn */
  a: Param;
  /** ggml dims [r, nOut]: nOut rows of r */
  b: Param;
}

export interface LoraAdapter {
  config: LoraConfig;
  /** by the adapted weight's name */
  pairs: Map<string, LoraPair>;
  /** every A and B, in model tensor order (A before B) */
  params: Param[];
  /** alpha / r */
  scale: number;
}

function isTarget(name: string, targets: readonly string[]): boolean {
  const match = /^(?:blk\.\d+\.)?(.+)\.weight$/.exec(name);
  return match !== null && targets.some((t) => TARGET_TENSORS[t] === match[1]);
}

export function checkLoraConfig(c: LoraConfig): void {
  if (!Number.isInteger(c.rank) || c.rank < 1 || c.rank > 4096) throw new LoraConfigError(`rank must be an integer in 1..4096, got ${c.rank}`);
  if (!(c.alpha > 0)) throw new LoraConfigError(`alpha must be positive, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new LoraConfigError(`dropout must be in [0, 1), got ${c.dropout}`);
  const unknown = c.targets.filter((t) => !(t in TARGET_TENSORS));
  if (unknown.length > 0 || c.targets.length === 0) {
    throw new LoraConfigError(`targets must be some of ${Object.keys(TARGET_TENSORS).join(',')}, got ${c.targets.join(',') || 'none'}`);
  }
}

/** Fresh adapters for the config's targets of `model`: A ~ Normal(0, 1/nIn) (Kaiming-style), B = 0. */
export function createLora(model: TrainModel, config: LoraConfig, rng: Rng): LoraAdapter {
  checkLoraConfig(config);
  const pairs = new Map<string, LoraPair>(), params: Param[] = [];
  for (const w of model.params) {
    if (w.dims.length !== 2 || !isTarget(w.name, config.targets)) continue;
    const [nIn, nOut] = w.dims, r = config.rank;
    const a = new Param(`${w.name}.lora_a`, [nIn, r]), b = new Param(`${w.name}.lora_b`, [r, nOut]);
    const std = 1 / Math.sqrt(nIn);
    for (let i = 0; i < a.value.length; i += 2) {
      // Box–Muller: two normals from two uniforms
      const radius = std * Math.sqrt(-2 * Math.log(1 - rng.nextFloat())), theta = 2 * Math.PI * rng.nextFloat();
      a.value[i] = radius * Math.cos(theta);
      if (i + 1 < a.value.length) a.value[i + 1] = radius * Math.sin(theta);
    }
    pairs.set(w.name, { a, b });
    params.push(a, b);
  }
  if (pairs.size === 0) throw new LoraConfigError(`the model has no ${config.targets.join(',')} projections to adapt`);
  return { config, pairs, params, scale: config.alpha / config.rank };
}

/** x·Wᵀ for a frozen W (nOut rows of nIn): the gradient flows to x only */
function frozenLinear(x: Var, w: Var): Var {
  const n = x.rows, nOut = w.rows;
  return new Var(linearValues(x, w), n, nOut, [x], (g) => linearInputGradient(x, w, g)); // dx += g·W
}

/** s · x with each value dropped with probability p and the kept ones scaled by 1/(1 − p) (no rng: no dropout) */
function scaledDropout(x: Var, s: number, p: number, rng: Rng | undefined): Var {
  const n = x.value.length;
  const factor = allocFloats(n, false); // per value: 0 or s/(1 − p)
  for (let i = 0; i < n; i++) factor[i] = rng && p > 0 ? (rng.nextFloat() < p ? 0 : s / (1 - p)) : s;
  const out = allocFloats(n, false);
  for (let i = 0; i < n; i++) out[i] = x.value[i] * factor[i];
  return new Var(out, x.rows, x.cols, [x], (g) => {
    const dx = x.gradient();
    for (let i = 0; i < n; i++) dx[i] += g[i] * factor[i];
  });
}

/**
 * Training ops with adapters: every base weight frozen, adapted ones with y = W·x + (alpha/r)·B·(A·dropout(x)).
 * `rng` draws the dropout masks (absent: evaluation, no dropout).
 */
export class LoraTrainOps extends TrainOps {
  constructor(tokens: Int32Array, nSeq: number, seqLen: number, private readonly adapter: LoraAdapter, private readonly rng?: Rng) {
    super(tokens, nSeq, seqLen);
  }

  override linear(x: Var, w: Param, bias?: Param): Var {
    if (bias) throw new LoraConfigError(`${w.name}: biased projections are not supported with LoRA`);
    const y = frozenLinear(x, w);
    const pair = this.adapter.pairs.get(w.name);
    if (!pair) return y;
    const input = scaledDropout(x, this.adapter.scale, this.adapter.config.dropout, this.rng);
    return add(y, linear(linear(input, pair.a), pair.b)); // (alpha/r)·B·(A·x) by linearity
  }
}

/** The logits [nSeq · seqLen, vocab] of the adapted model. */
export function loraForwardLogits(model: TrainModel, adapter: LoraAdapter, tokens: Int32Array, nSeq: number, seqLen: number, rng?: Rng): Var {
  return logitsOf(model.bound.forward(new LoraTrainOps(tokens, nSeq, seqLen, adapter, rng)));
}

/** Trainable parameter count of the adapter. */
export function loraParamCount(adapter: LoraAdapter): number {
  return adapter.params.reduce((n, p) => n + p.value.length, 0);
}

/** The adapter as llama.cpp's GGUF LoRA adapter (metadata as llama.cpp's convert_lora_to_gguf writes it). */
export function loraAdapterGGUF(adapter: LoraAdapter, architecture: string, name: string): GGUFWriteInput {
  const metadata = new Map<string, GGUFValue>([
    ['general.architecture', metaString(architecture)],
    ['general.type', metaString('adapter')],
    ['adapter.type', metaString('lora')],
    ['adapter.lora.alpha', metaF32(adapter.config.alpha)],
    ['general.name', metaString(name)],
  ]);
  const tensors = adapter.params.map((p) => ({
    name: p.name, dims: p.dims, type: GGMLType.F32, data: new Uint8Array(p.value.buffer, p.value.byteOffset, p.value.byteLength),
  }));
  return { metadata, tensors };
}

/** The merged weights W + (alpha/r)·B·A of every adapted weight, by name: [nOut rows of nIn] each. */
export function mergedWeights(model: TrainModel, adapter: LoraAdapter): Map<string, Float32Array> {
  const byName = new Map(model.params.map((p) => [p.name, p]));
  const merged = new Map<string, Float32Array>();
  for (const [name, { a, b }] of adapter.pairs) {
    const w = byName.get(name)!, nIn = w.cols, nOut = w.rows, r = a.rows;
    const delta = new Float32Array(nOut * nIn); // B·A: [nOut, r]·[r, nIn]
    trainingBackend().gemm(delta, b.value, a.value, nOut, nIn, r, false, false, false);
    merged.set(name, Float32Array.from(w.value, (v, i) => v + adapter.scale * delta[i]));
  }
  return merged;
}

/**
 * An adapter GGUF (as loraAdapterGGUF writes it, or llama.cpp's) as trainable pairs over `model`, to continue
 * training it or to run it through the training forward. Rank and alpha come from the file; dropout is 0.
 */
export function loraFromGGUF(model: TrainModel, file: GGUFModelFile): LoraAdapter {
  const byName = new Map(model.params.map((p) => [p.name, p]));
  const deltas = readLoraDeltas(file, { architecture: model.hparams.arch, dims: (name) => byName.get(name)?.dims }, 1);
  const ranks = new Set([...deltas.values()].map((d) => d.rank));
  if (ranks.size !== 1) throw new LoraConfigError(`${file.path}: adapters of several ranks (${[...ranks].join(', ')})`);
  const [rank] = ranks, alpha = [...deltas.values()][0].scale * rank;
  const pairs = new Map<string, LoraPair>(), params: Param[] = [];
  for (const w of model.params) {
    const d = deltas.get(w.name);
    if (!d) continue;
    const pair = { a: new Param(`${w.name}.lora_a`, [d.nIn, rank], d.a), b: new Param(`${w.name}.lora_b`, [rank, d.nOut], d.b) };
    pairs.set(w.name, pair);
    params.push(pair.a, pair.b);
  }
  const targets = Object.keys(TARGET_TENSORS).filter((t) => [...pairs.keys()].some((name) => isTarget(name, [t])));
  return { config: { rank, alpha, dropout: 0, targets }, pairs, params, scale: alpha / rank };
}
