// Statistics of activations, watched through a layer around the backend that sees the input of every matrix
// product (keyed by its weight's name):
//   - clipping ranges: over calibration chunks, in two passes (amax, then a histogram of |x| over [0, amax]),
//     each input's threshold chosen by ./calibrate.ts;
//   - an importance matrix as llama-imatrix collects it: the mean squared value of each input column.

import type { Backend } from '../../kernels/backend.js';
import type { GGUFModelFile } from '../../gguf/model-file.js';
import type { WeightTensor } from '../../tensor/tensor.js';
import { evaluate, perplexity, type PerplexityResult } from '../../generate/generate.js';
import { withModel } from '../compare.js';
import { absMax, AbsHistogram, thresholdOf, type CalibrationOptions } from './calibrate.js';

/** A backend whose matmul first shows its input x [nTokens, nIn] and the weight (dims [nIn, nOut]) to `watch`. */
export function watchingMatmulInputs(inner: Backend, watch: (weight: WeightTensor, x: Float32Array) => void): Backend {
  const matmul: Backend['matmul'] = (out, x, w, nTokens) => {
    watch(w, x.subarray(0, nTokens * w.dims[0]));
    inner.matmul(out, x, w, nTokens);
  };
  return new Proxy(inner, {
    get(target, key) {
      if (key === 'matmul') return matmul;
      const value = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

export interface ActivationRange {
  /** the weight whose input this is */
  tensor: string;
  /** largest |x| seen */
  amax: number;
  /** chosen clipping threshold: inputs are quantized within [−clip, clip] */
  clip: number;
  /** whether negative values occurred */
  signed: boolean;
}

/** The clipping range of every matrix product's input over `chunks` (token sequences, each run on its own). */
export function calibrateActivations(file: GGUFModelFile, chunks: readonly number[][], options: CalibrationOptions): ActivationRange[] {
  const runAll = (watch: (weight: string, x: Float32Array) => void) =>
    withModel(file, (model) => { for (const chunk of chunks) evaluate(model, chunk); }, (b) => watchingMatmulInputs(b, (w, x) => watch(w.name, x)));
  const amax = new Map<string, number>();
  runAll((weight, x) => amax.set(weight, Math.max(amax.get(weight) ?? 0, absMax(x))));
  const histograms = new Map([...amax].map(([weight, m]) => [weight, new AbsHistogram(m)]));
  runAll((weight, x) => histograms.get(weight)!.add(x));
  return [...histograms].map(([tensor, h]) => ({ tensor, amax: h.amax, clip: thresholdOf(h, options), signed: h.signed }));
}

export interface CollectedImportance {
  /** weight name → mean of x_j² over every token that met the weight, per input column j */
  entries: Map<string, Float32Array>;
  /** calls per weight: one per chunk (each chunk is one batch) */
  calls: number;
  perplexity: PerplexityResult;
}

/**
 * llama-imatrix's statistics over perplexity's chunks of `text` (and its perplexity on the way): per matrix
 * product, the mean squared input of each column; output.weight only with `processOutput` (llama-imatrix
 * --process-output); mixture-of-experts slices are not collected.
 */
export function collectImportance(file: GGUFModelFile, text: string, ctx: number, maxChunks: number, processOutput = false,
  onChunk?: (i: number, n: number, ppl: number) => void): CollectedImportance {
  const sums = new Map<string, { squares: Float64Array; rows: number }>(); // squares [nIn]
  const watch = (w: WeightTensor, x: Float32Array) => {
    if (w.name.endsWith(']')) return; // one expert's slice of a stacked tensor
    if (w.name === 'output.weight' && !processOutput) return;
    const nIn = w.dims[0];
    let s = sums.get(w.name);
    if (!s) sums.set(w.name, s = { squares: new Float64Array(nIn), rows: 0 });
    for (let at = 0; at < x.length; at += nIn) for (let j = 0; j < nIn; j++) s.squares[j] += x[at + j] * x[at + j];
    s.rows += x.length / nIn;
  };
  const result = withModel(file, (model) => perplexity(model, text, ctx, maxChunks, onChunk), (b) => watchingMatmulInputs(b, watch));
  const entries = new Map([...sums].map(([name, s]) => [name, Float32Array.from(s.squares, (v) => v / s.rows)]));
  return { entries, calls: result.chunks, perplexity: result };
}
