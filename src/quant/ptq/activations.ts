// Statistics of activations, watched through a layer around the backend that sees the input of every matrix
// product (keyed by its weight's name):
//   - clipping ranges: over calibration chunks, in two passes (amax, then a histogram of |x| over [0, amax]),
//     each input's threshold chosen by ./calibrate.ts;
//   - an importance matrix as llama-imatrix collects it: the mean squared value of each input column;
// and, with clipping ranges known, the same layer quantizes those inputs to simulate quantized activations.

import type { Backend } from '../../kernels/backend.js';
import { matmulExpertsBySlot } from '../../kernels/reference.js';
import type { GGUFModelFile } from '../../gguf/model-file.js';
import { getArray, getString } from '../../gguf/metadata.js';
import type { WeightTensor } from '../../tensor/tensor.js';
import { evaluate, perplexity, type PerplexityResult } from '../../generate/generate.js';
import { Model } from '../../generate/model.js';
import { withModel } from '../compare.js';
import { absMax, AbsHistogram, thresholdOf, type CalibrationOptions } from './calibrate.js';
import { quantizeRun, rangeParams } from './fake-quant.js';
import { SchemeError, type NumberFormat, type QuantScheme } from './scheme.js';

/**
 * `inner` with its matmul replaced, expert products going through it one slot at a time (each expert's slice is
 * seen) and fused projections in one (not as parts); every other member is inner's own, bound to it.
 */
function withMatmul(inner: Backend, matmul: Backend['matmul']): Backend {
  const matmulExperts: Backend['matmulExperts'] = (outs, x, nRows, weights, experts) =>
    matmulExpertsBySlot((out, row, w) => matmul(out, row, w, 1), outs, x, nRows, weights, experts);
  return new Proxy(inner, {
    get(target, key) {
      if (key === 'matmul') return matmul;
      if (key === 'matmulExperts') return matmulExperts;
      if (key === 'matmulMany') return undefined;
      const value = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A backend whose matmul first shows its input x [nTokens, nIn] and the weight (dims [nIn, nOut]) to `watch`. */
export function watchingMatmulInputs(inner: Backend, watch: (weight: WeightTensor, x: Float32Array) => void): Backend {
  return withMatmul(inner, (out, x, w, nTokens, bias) => {
    watch(w, x.subarray(0, nTokens * w.dims[0]));
    inner.matmul(out, x, w, nTokens, bias);
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

/** The formats activations can be simulated in: symmetric per-tensor, one clipping threshold per input. */
export const ACTIVATION_FORMATS: readonly NumberFormat[] = ['int8', 'fp8-e4m3', 'fp8-e5m2'];

/**
 * A backend that fake-quantizes every matrix product's input whose weight has a clipping threshold: per tensor,
 * symmetric, scale = clip / the format's largest value (integer values are clamped to the grid, FP8 saturates).
 */
export function quantizingMatmulInputs(inner: Backend, clips: ReadonlyMap<string, number>, format: NumberFormat): Backend {
  const scheme: QuantScheme = { format, symmetric: true, granularity: 'tensor', groupSize: 0 };
  let scratch = new Float32Array(0); // [nTokens, nIn] of the largest input so far
  return withMatmul(inner, (out, x, w, nTokens, bias) => {
    const clip = clips.get(w.name);
    if (clip === undefined) return inner.matmul(out, x, w, nTokens, bias);
    const n = nTokens * w.dims[0];
    if (scratch.length < n) scratch = new Float32Array(n);
    const { scale } = rangeParams(scheme, -clip, clip);
    quantizeRun(scheme, x, 0, n, scale, 0, scratch);
    inner.matmul(out, scratch, w, nTokens, bias);
  });
}

/**
 * The model with its activations quantized as its file's kiln.quant.activation.* metadata says (written by
 * quantizeWithScheme with calibrated ranges), or the model itself when there is none.
 */
export function withActivationQuantization(model: Model): Model {
  const meta = model.file.metadata;
  const tensors = getArray<string>(meta, 'kiln.quant.activation.tensors');
  const clips = getArray<number>(meta, 'kiln.quant.activation.clip');
  if (!tensors || !clips) return model;
  const format = getString(meta, 'kiln.quant.activation.format') as NumberFormat | undefined;
  if (!format || !ACTIVATION_FORMATS.includes(format) || clips.length !== tensors.length) {
    throw new SchemeError(`${model.file.path}: malformed kiln.quant.activation metadata`);
  }
  return new Model(model.file, quantizingMatmulInputs(model.backend, new Map(tensors.map((t, i) => [t, clips[i]])), format));
}
