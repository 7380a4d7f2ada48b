// Mixed precision by sensitivity: how much each weight tensor's quantization disturbs the model's output, and a
// type per tensor that keeps the file within a bits-per-weight budget.
//   1. For every quantizable tensor and candidate type (as llama.cpp would store it in rows of that length:
//      K-quants fall back to Q5_0/Q5_1/Q8_0/F16 via ./mix.ts fallbackType; a type with no fallback is dropped),
//      quantize only that tensor, run the calibration chunks and take the mean KL divergence of the output
//      distributions from the unquantized model's.
//   2. Start every tensor at its smallest candidate; repeatedly take the upgrade (any larger candidate of any
//      tensor) with the largest KL reduction per extra byte that still fits the budget, until none does.
// KL divergences of separately quantized tensors are treated as additive (first order).

import { GGUFModelFile } from '../gguf/model-file.js';
import { perplexityChunks } from '../generate/generate.js';
import { Rng } from '../generate/rng.js';
import type { WeightTensor } from '../tensor/tensor.js';
import { dequantizeTensor } from '../tensor/codec.js';
import { GGMLType, typeName } from '../tensor/ggml-type.js';
import { canQuantizeTo, quantizeRows } from './ggml-quantize.js';
import { Model } from '../generate/model.js';
import { compareWithBase, scoredLogits, withBackend, withModel } from './compare.js';
import { fallbackType, isQuantizable, QuantMixError } from './mix.js';

export class BudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BudgetError';
  }
}

export const DEFAULT_CANDIDATES: readonly GGMLType[] = [GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.F16];

/**
 * `file` with some tensors replaced. The others come from `shared`, one object per tensor for all variants, so
 * that a backend which copies weights in (keyed by the tensor object) does so once, not once per variant.
 */
class FileWithTensors extends GGUFModelFile {
  constructor(base: GGUFModelFile, private readonly replaced: ReadonlyMap<string, WeightTensor>, private readonly shared: Map<string, WeightTensor>) {
    super(base.path, {
      ...base.header,
      tensors: base.header.tensors.map((t) => {
        const r = replaced.get(t.name);
        return r ? { ...t, type: r.type, nBytes: r.data.length } : t;
      }),
    }, base.data);
  }

  override tensor(name: string): WeightTensor {
    const replaced = this.replaced.get(name);
    if (replaced) return replaced;
    let t = this.shared.get(name);
    if (!t) this.shared.set(name, t = super.tensor(name));
    return t;
  }
}

export interface CandidateMeasure {
  type: GGMLType;
  bytes: number;
  /** mean KL divergence over the calibration positions with only this tensor quantized to `type` */
  kld: number;
}

export interface TensorSensitivity {
  name: string;
  /** by increasing size */
  candidates: CandidateMeasure[];
}

export interface SensitivityOptions {
  candidates?: readonly GGMLType[];
  /** progress lines */
  log?: (line: string) => void;
}

/** Calibration chunks: the text cut as perplexity does, or (no text) `maxChunks` seeded random token sequences after BOS. */
export function calibrationChunks(file: GGUFModelFile, text: string | undefined, ctx: number, maxChunks: number): number[][] {
  return withModel(file, (model) => {
    if (text !== undefined) return perplexityChunks(model, text, ctx, maxChunks);
    const rng = new Rng(1234);
    const bos = model.tokenizer.bosId ?? 0;
    return Array.from({ length: maxChunks }, () => [bos, ...Array.from({ length: ctx - 1 }, () => Math.floor(rng.nextFloat() * model.vocabSize))]);
  });
}

/** Step 1: the KL divergence caused by each (tensor, candidate type) alone; tensors no candidate fits are left out. */
export function measureSensitivity(file: GGUFModelFile, chunks: readonly number[][], options: SensitivityOptions = {}): TensorSensitivity[] {
  const log = options.log ?? (() => undefined);
  const shared = new Map<string, WeightTensor>();
  const variant = (replaced: ReadonlyMap<string, WeightTensor>) => new FileWithTensors(file, replaced, shared);
  return withBackend((backend) => {
    const baseScored = scoredLogits(new Model(variant(new Map()), backend), chunks);
    const quantizable = file.tensorInfos.filter((t) => isQuantizable(t));
    return quantizable.flatMap((info, i) => {
      const x = dequantizeTensor(file.tensor(info.name));
      const nPerRow = info.dims[0];
      const types = new Set<GGMLType>();
      for (const candidate of options.candidates ?? DEFAULT_CANDIDATES) {
        try {
          const type = fallbackType(info, candidate);
          if (canQuantizeTo(type)) types.add(type);
        } catch (e) {
          if (!(e instanceof QuantMixError)) throw e; // else: no way to store this candidate in rows of this length
        }
      }
      const candidates = [...types].map((type): CandidateMeasure => {
        const data = quantizeRows(type, x, nPerRow, x.length / nPerRow);
        const model = new Model(variant(new Map([[info.name, { name: info.name, type, dims: info.dims, data }]])), backend);
        return { type, bytes: data.length, kld: compareWithBase(model, chunks, (c) => baseScored[c]).meanKld };
      }).sort((a, b) => a.bytes - b.bytes);
      const measured = candidates.map((c) => `${typeName(c.type)} ${c.kld.toExponential(2)}`).join(', ');
      log(`[${i + 1}/${quantizable.length}] ${info.name}: ${measured || `no candidate fits rows of ${nPerRow}: kept ${typeName(info.type)}`}`);
      return candidates.length > 0 ? [{ name: info.name, candidates }] : [];
    });
  });
}

export interface Assignment {
  types: Map<string, GGMLType>;
  /** bytes of all tensors (quantizable ones at their assigned types) */
  totalBytes: number;
  bitsPerWeight: number;
  /** sum of the assigned candidates' KL divergences */
  predictedKld: number;
}

/** Step 2: the greedy assignment within targetBpw bits per weight over all of the file's tensors. */
export function assignTypes(file: GGUFModelFile, sensitivity: readonly TensorSensitivity[], targetBpw: number): Assignment {
  const measured = new Set(sensitivity.map((s) => s.name));
  const fixedBytes = file.tensorInfos.filter((t) => !measured.has(t.name)).reduce((sum, t) => sum + t.nBytes, 0);
  const nValues = file.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
  const budget = (targetBpw * nValues) / 8;
  const choice = sensitivity.map(() => 0);
  let used = fixedBytes + sensitivity.reduce((sum, s) => sum + s.candidates[0].bytes, 0);
  if (used > budget) throw new BudgetError(`${targetBpw} bits per weight is below the smallest mix, ${((8 * used) / nValues).toFixed(3)}`);
  for (;;) {
    let best: { tensor: number; candidate: number; ratio: number } | undefined;
    sensitivity.forEach((s, i) => {
      const now = s.candidates[choice[i]];
      s.candidates.forEach((c, j) => {
        const extra = c.bytes - now.bytes, gain = now.kld - c.kld;
        if (extra <= 0 || gain <= 0 || used + extra > budget) return;
        if (!best || gain / extra > best.ratio) best = { tensor: i, candidate: j, ratio: gain / extra };
      });
    });
    if (!best) break;
    const { tensor, candidate } = best;
    used += sensitivity[tensor].candidates[candidate].bytes - sensitivity[tensor].candidates[choice[tensor]].bytes;
    choice[tensor] = candidate;
  }
  const picked = sensitivity.map((s, i) => s.candidates[choice[i]]);
  return {
    types: new Map(sensitivity.map((s, i) => [s.name, picked[i].type])),
    totalBytes: used,
    bitsPerWeight: (8 * used) / nValues,
    predictedKld: picked.reduce((sum, c) => sum + c.kld, 0),
  };
}
