// Quantization-aware training: the forward pass sees every quantizable weight as dequant(quant(W)) in the GGUF
// block type it will be exported to, and the backward pass is the straight-through estimator: the gradient taken at
// the quantized weights updates the float weights W unchanged. Implemented by swapping values around the
// forward/backward: `apply` keeps W aside and writes dequant(quant(W)) in its place, `restore` puts W back before
// the optimizer steps. The export quantizes the trained float weights with the same quantizer.

import { GGMLType, dequantizeRow, rowBytes, typeInfo } from '../tensor/index.js';
import { quantizeRow, canQuantizeTo, UnsupportedQuantTypeError } from '../quant/ggml-quantize.js';
import type { Model } from '../generate/model.js';
import { Rng } from '../generate/rng.js';
import { evaluate as evaluateInference, logProbability } from '../generate/generate.js';
import { backward, crossEntropy, type Param } from './autograd.js';
import { floatsMark, releaseFloats } from './backend.js';
import { AdamW, learningRate } from './optim.js';
import { forwardLogits, type TrainModel } from './llama-model.js';
import { windows } from './trainer.js';

/** Matrices whose rows are whole blocks of `type` are quantized; vectors (norms) stay F32, as in llama.cpp. */
export function quantizable(p: Param, type: GGMLType): boolean {
  return p.dims.length >= 2 && p.cols % typeInfo(type).blockSize === 0;
}

/** The export's type of each parameter. */
export function exportTypeOf(type: GGMLType): (p: Param) => GGMLType {
  return (p) => (quantizable(p, type) ? type : GGMLType.F32);
}

/** out = dequant(quant(x)) row by row: x and out [nRows, nPerRow] */
export function quantizeRoundTrip(type: GGMLType, x: Float32Array, nPerRow: number, nRows: number, out: Float32Array): void {
  const row = new Uint8Array(rowBytes(type, nPerRow));
  for (let r = 0; r < nRows; r++) {
    quantizeRow(type, x, r * nPerRow, nPerRow, row, 0);
    dequantizeRow(type, row, nPerRow, out, r * nPerRow);
  }
}

export class FakeQuantizer {
  private readonly targets: Param[];
  /** the float weights W of each target while its value holds dequant(quant(W)) */
  private readonly masters: Float32Array[];

  constructor(params: readonly Param[], readonly type: GGMLType) {
    if (!canQuantizeTo(type)) throw new UnsupportedQuantTypeError(type);
    this.targets = params.filter((p) => quantizable(p, type));
    this.masters = this.targets.map((p) => new Float32Array(p.value.length));
  }

  /** forward weights ← dequant(quant(W)), W kept */
  apply(): void {
    this.targets.forEach((p, i) => {
      this.masters[i].set(p.value);
      quantizeRoundTrip(this.type, this.masters[i], p.cols, p.rows, p.value);
    });
  }

  /** W back in place: the gradient just taken at the quantized weights is the straight-through estimate for W */
  restore(): void {
    this.targets.forEach((p, i) => p.value.set(this.masters[i]));
  }
}

export interface QatOptions {
  type: GGMLType;
  steps: number;
  batchSize: number;
  seqLen: number;
  /** peak and final learning rate (cosine, no warmup) */
  lr: number;
  minLr: number;
  seed: number;
  gradClip: number;
  onStep?: (step: number, loss: number) => void;
}

/** Fine-tunes `model` in place on random windows of `data` with fake-quantized weights (its float weights updated). */
export function trainQat(model: TrainModel, data: Int32Array, o: QatOptions): void {
  const fake = new FakeQuantizer(model.params, o.type);
  const optimizer = new AdamW(model.params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
  const rng = new Rng(o.seed);
  const schedule = { lr: o.lr, minLr: o.minLr, warmupSteps: 0, totalSteps: o.steps };
  for (let step = 0; step < o.steps; step++) {
    const offsets = Array.from({ length: o.batchSize }, () => Math.floor(rng.nextFloat() * (data.length - o.seqLen)));
    const { tokens, targets } = windows(data, offsets, o.seqLen);
    const mark = floatsMark();
    fake.apply();
    const loss = crossEntropy(forwardLogits(model, tokens, o.batchSize, o.seqLen), targets);
    backward(loss);
    fake.restore();
    const value = loss.value[0];
    releaseFloats(mark);
    optimizer.step(learningRate(step, schedule), o.gradClip);
    optimizer.zeroGrad();
    o.onStep?.(step + 1, value);
  }
}

/**
 * Mean next-token loss of an inference Model over the non-overlapping windows of `window` tokens of `data`
 * (each window evaluated from an empty cache; every position but the last predicts the next token).
 */
export function heldOutLoss(model: Model, data: Int32Array, window: number): number {
  const nVocab = model.vocabSize;
  let nll = 0, count = 0;
  for (let start = 0; start + window <= data.length; start += window) {
    const chunk = Array.from(data.subarray(start, start + window));
    const logits = evaluateInference(model, chunk); // [window, vocab]
    for (let i = 0; i + 1 < window; i++, count++) nll -= logProbability(logits, i * nVocab, nVocab, chunk[i + 1]);
  }
  if (count === 0) throw new RangeError(`${data.length} tokens hold no window of ${window}`);
  return nll / count;
}
