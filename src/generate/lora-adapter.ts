// LoRA adapters at inference, as llama.cpp's `--lora FILE` / `--lora-scaled FILE S` apply them: an adapter GGUF
// (general.type = adapter, adapter.type = lora, adapter.lora.alpha) holds, for an adapted weight W named T,
// `T.lora_a` (ggml dims [nIn, r]: r rows of nIn) and `T.lora_b` ([r, nOut]: nOut rows of r). The projection
// through W becomes y = W·x + s·(alpha/r)·B·(A·x), s the user's scale.

import { loadGGUF, type GGUFModelFile } from '../gguf/model-file.js';
import { dequantizeTensor } from '../tensor/index.js';

export class LoraAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraAdapterError';
  }
}

/** One adapted weight's low-rank update. */
export interface LoraDelta {
  /** [rank, nIn] */
  a: Float32Array;
  /** [nOut, rank] */
  b: Float32Array;
  rank: number;
  nIn: number;
  nOut: number;
  /** s · alpha / rank */
  scale: number;
}

/** Which adapter files to apply, each with its scale s. */
export interface LoraSpec {
  path: string;
  scale: number;
}

function metaString(file: GGUFModelFile, key: string): string | undefined {
  const v = file.metadata.get(key);
  return v && typeof v.value === 'string' ? v.value : undefined;
}

/** What an adapter is checked against: the model's architecture and its weights' ggml dims. */
export interface AdaptedModel {
  architecture: string | undefined;
  dims(name: string): readonly number[] | undefined;
}

export function adaptedGGUF(file: GGUFModelFile): AdaptedModel {
  return { architecture: metaString(file, 'general.architecture'), dims: (name) => file.optionalTensor(name)?.dims };
}

/**
 * The deltas of `adapter` for the weights of `base`, keyed by weight name. Checks the adapter's type, architecture
 * and that every pair's shapes fit the weight it adapts.
 */
export function readLoraDeltas(adapter: GGUFModelFile, base: AdaptedModel, userScale: number): Map<string, LoraDelta> {
  const where = adapter.path;
  if (metaString(adapter, 'general.type') !== 'adapter' || metaString(adapter, 'adapter.type') !== 'lora') {
    throw new LoraAdapterError(`${where} is not a LoRA adapter (general.type = adapter, adapter.type = lora)`);
  }
  const arch = metaString(adapter, 'general.architecture'), baseArch = base.architecture;
  if (arch !== baseArch) throw new LoraAdapterError(`${where} adapts a ${arch} model, the model is ${baseArch}`);
  const alphaValue = adapter.metadata.get('adapter.lora.alpha')?.value;
  const deltas = new Map<string, LoraDelta>();
  for (const info of adapter.tensorInfos) {
    if (!info.name.endsWith('.lora_a')) {
      if (!info.name.endsWith('.lora_b')) throw new LoraAdapterError(`${where}: unexpected tensor ${info.name}`);
      if (!adapter.has(info.name.replace(/\.lora_b$/, '.lora_a'))) throw new LoraAdapterError(`${where}: ${info.name} has no lora_a`);
      continue;
    }
    const name = info.name.slice(0, -'.lora_a'.length);
    if (!adapter.has(`${name}.lora_b`)) throw new LoraAdapterError(`${where}: ${info.name} has no lora_b`);
    const dims = base.dims(name);
    if (!dims) throw new LoraAdapterError(`${where} adapts ${name}, which the model does not have`);
    const a = adapter.tensor(`${name}.lora_a`), b = adapter.tensor(`${name}.lora_b`);
    const [nIn, nOut] = dims, rank = a.dims[1];
    if (dims.length !== 2 || a.dims.length !== 2 || b.dims.length !== 2 || a.dims[0] !== nIn || b.dims[0] !== rank || b.dims[1] !== nOut) {
      throw new LoraAdapterError(`${where}: ${name} is [${dims}] but lora_a is [${a.dims}] and lora_b [${b.dims}]`);
    }
    // llama.cpp: scale = s · alpha / rank, or s alone when the adapter has no alpha
    const alpha = typeof alphaValue === 'number' && alphaValue > 0 ? alphaValue : rank;
    deltas.set(name, { a: dequantizeTensor(a), b: dequantizeTensor(b), rank, nIn, nOut, scale: (userScale * alpha) / rank });
  }
  if (deltas.size === 0) throw new LoraAdapterError(`${where} holds no lora_a/lora_b pairs`);
  return deltas;
}

/** The deltas of every adapter file for `base`, grouped by weight name. */
export function loadLoraAdapters(specs: readonly LoraSpec[], base: GGUFModelFile): Map<string, LoraDelta[]> {
  const byWeight = new Map<string, LoraDelta[]>();
  for (const spec of specs) {
    for (const [name, delta] of readLoraDeltas(loadGGUF(spec.path), adaptedGGUF(base), spec.scale)) {
      byWeight.set(name, [...(byWeight.get(name) ?? []), delta]);
    }
  }
  return byWeight;
}

/** out [rows, nOut] += scale · (x·Aᵀ)·Bᵀ for x [rows, nIn] */
export function addLoraDelta(out: Float32Array, x: Float32Array, rows: number, d: LoraDelta): void {
  const ax = new Float32Array(d.rank); // A·x of one row
  for (let t = 0; t < rows; t++) {
    const xo = t * d.nIn, oo = t * d.nOut;
    for (let k = 0; k < d.rank; k++) {
      let sum = 0;
      for (let i = 0; i < d.nIn; i++) sum += d.a[k * d.nIn + i] * x[xo + i];
      ax[k] = sum * d.scale;
    }
    for (let j = 0; j < d.nOut; j++) {
      let sum = 0;
      for (let k = 0; k < d.rank; k++) sum += d.b[j * d.rank + k] * ax[k];
      out[oo + j] += sum;
    }
  }
}
