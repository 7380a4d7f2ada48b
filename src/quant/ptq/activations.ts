// Calibrating the ranges of activations: the input of every matrix product (keyed by its weight's name) is
// watched over calibration chunks through a layer around the backend, in two passes (amax, then a histogram
// of |x| over [0, amax]), and each input's clipping threshold chosen by ./calibrate.ts.

import type { Backend } from '../../kernels/backend.js';
import type { GGUFModelFile } from '../../gguf/model-file.js';
import { evaluate } from '../../generate/generate.js';
import { withModel } from '../compare.js';
import { absMax, AbsHistogram, thresholdOf, type CalibrationOptions } from './calibrate.js';

/** A backend whose matmul first shows its input x [nTokens, nIn] and the weight's name to `watch`. */
export function watchingMatmulInputs(inner: Backend, watch: (weight: string, x: Float32Array) => void): Backend {
  const matmul: Backend['matmul'] = (out, x, w, nTokens) => {
    watch(w.name, x.subarray(0, nTokens * w.dims[0]));
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
    withModel(file, (model) => { for (const chunk of chunks) evaluate(model, chunk); }, (b) => watchingMatmulInputs(b, watch));
  const amax = new Map<string, number>();
  runAll((weight, x) => amax.set(weight, Math.max(amax.get(weight) ?? 0, absMax(x))));
  const histograms = new Map([...amax].map(([weight, m]) => [weight, new AbsHistogram(m)]));
  runAll((weight, x) => histograms.get(weight)!.add(x));
  return [...histograms].map(([tensor, h]) => ({ tensor, amax: h.amax, clip: thresholdOf(h, options), signed: h.signed }));
}
