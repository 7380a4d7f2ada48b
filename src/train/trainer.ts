// Pretraining a llama-style model on a text corpus. Reading order:
//   1. tokenize the corpus; the first (1 − valFraction) of the tokens train, the rest validate
//   2. a seeded model (or the checkpoint's, with --resume), AdamW, and the sampler's generator
//   3. each step: `accumulation` micro-batches of random windows → cross-entropy → backward; clip, step
//   4. every evalInterval steps: validation loss on fixed windows; every checkpointInterval: checkpoint + curve
//   5. at the end: the validation loss over the whole split, the GGUF, the curve.
// Everything random comes from one generator whose state the checkpoint keeps, so a resumed run continues
// bit-identically.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Rng } from '../generate/rng.js';
import { Tokenizer } from '../tokenizer/index.js';
import { writeModel, type ModelFormat } from '../hf/export.js';
import { backward, crossEntropy } from './autograd.js';
import { floatsMark, releaseFloats, setTrainingThreads } from './backend.js';
import { AdamW, learningRate } from './optim.js';
import { byteTokenizer, createModel, forwardLogits, modelGGUF, tokenizerMetadata, type ModelShape, type TrainModel } from './llama-model.js';
import { readHFTokenizerJson } from '../tokenizer/hf-tokenizer-json.js';
import type { TrainedBPE } from './bpe-trainer.js';
import { readCheckpoint, writeCheckpoint, CheckpointError, type LossPoint } from './checkpoint.js';
import { lossCurveSvg } from './loss-curve.js';
import { TrainConfigError, type TrainConfig } from './config.js';

export interface TrainOptions {
  /** continue from the checkpoint next to the output */
  resume?: boolean;
  /** stop once this many steps are done (checkpointing there), e.g. to train in pieces */
  stopAt?: number;
  onProgress?: (p: TrainProgress) => void;
  /** write the model as a GGUF file (default) or a Hugging Face folder */
  format?: ModelFormat;
}

export interface TrainProgress {
  step: number;
  steps: number;
  /** this step's training loss */
  loss: number;
  /** the latest validation loss, if any yet */
  valLoss?: number;
  tokensPerSecond: number;
  etaSeconds: number;
}

export interface TrainResult {
  history: { train: LossPoint[]; val: LossPoint[] };
  /** steps done */
  step: number;
  /** validation loss over the whole validation split (when the run finished) */
  finalValLoss?: number;
  /** the GGUF (when the run finished) */
  modelPath?: string;
  checkpointPath: string;
  curvePath: string;
  seconds: number;
  tokensPerSecond: number;
}

/** Where a run's files go, next to its output GGUF. */
export function runPaths(output: string): { checkpoint: string; curve: string } {
  const stem = output.replace(/\.gguf$/i, '');
  return { checkpoint: `${stem}.ckpt`, curve: `${stem}.loss.svg` };
}

export interface Corpus {
  tokenizer: TrainedBPE;
  train: Int32Array;
  val: Int32Array;
}

export function loadCorpus(cfg: TrainConfig): Corpus {
  const bytes = readFileSync(cfg.corpus);
  let tokenizer: TrainedBPE, tokens: Int32Array;
  if (cfg.tokenizer === 'bytes') {
    tokenizer = byteTokenizer();
    tokens = Int32Array.from(bytes);
  } else {
    tokenizer = readHFTokenizerJson(cfg.tokenizer);
    const encoder = Tokenizer.fromMetadata(tokenizerMetadata(tokenizer));
    // a corpus marks where a text ends with the tokenizer's special tokens (e.g. <|endoftext|>): they are parsed
    tokens = Int32Array.from(encoder.encode(bytes.toString('utf8'), { addSpecial: false, parseSpecial: true }));
  }
  const nTrain = Math.floor(tokens.length * (1 - cfg.valFraction));
  const train = tokens.subarray(0, nTrain), val = tokens.subarray(nTrain);
  if (Math.min(train.length, val.length) <= cfg.seqLen) {
    throw new TrainConfigError(`${cfg.corpus}: ${train.length} training and ${val.length} validation tokens; each split needs more than seqLen ${cfg.seqLen}`);
  }
  return { tokenizer, train, val };
}

/** inputs and next-token targets of windows starting at `offsets`, each seqLen long: both [offsets.length · seqLen] */
export function windows(data: Int32Array, offsets: readonly number[], seqLen: number): { tokens: Int32Array; targets: Int32Array } {
  const tokens = new Int32Array(offsets.length * seqLen), targets = new Int32Array(offsets.length * seqLen);
  offsets.forEach((o, b) => {
    tokens.set(data.subarray(o, o + seqLen), b * seqLen);
    targets.set(data.subarray(o + 1, o + seqLen + 1), b * seqLen);
  });
  return { tokens, targets };
}

/** mean next-token loss over the windows at `offsets`, batchSize windows at a time (no gradients kept) */
export function evaluate(model: TrainModel, data: Int32Array, offsets: number[], batchSize: number, seqLen: number): number {
  let total = 0;
  for (let i = 0; i < offsets.length; i += batchSize) {
    const batch = offsets.slice(i, i + batchSize);
    const mark = floatsMark();
    const { tokens, targets } = windows(data, batch, seqLen);
    total += crossEntropy(forwardLogits(model, tokens, batch.length, seqLen), targets).value[0] * batch.length;
    releaseFloats(mark);
  }
  return total / offsets.length;
}

/** `count` window starts spread evenly over data (the periodic validation set) */
export function spreadWindows(data: Int32Array, seqLen: number, count: number): number[] {
  const last = data.length - seqLen - 1;
  return Array.from({ length: count }, (_, i) => Math.floor((i * last) / Math.max(1, count - 1)));
}

/** every non-overlapping window (the final validation pass) */
export function allWindows(data: Int32Array, seqLen: number): number[] {
  return Array.from({ length: Math.floor((data.length - 1) / seqLen) }, (_, i) => i * seqLen);
}

function sameShape(a: ModelShape, b: ModelShape): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ModelShape>;
  return [...keys].every((k) => a[k] === b[k]);
}

export async function train(cfg: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const started = performance.now();
  setTrainingThreads(cfg.threads);
  const paths = runPaths(cfg.output);
  mkdirSync(dirname(cfg.output), { recursive: true });
  const corpus = loadCorpus(cfg);
  const shape: ModelShape = { ...cfg.model, vocab: cfg.model.vocab ?? corpus.tokenizer.vocab.length };

  let rng = new Rng(cfg.seed);
  const model = createModel(shape, rng);
  const optimizer = new AdamW(model.params, { beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weightDecay });
  let step = 0;
  let history: TrainResult['history'] = { train: [], val: [] };
  if (options.resume) {
    if (!existsSync(paths.checkpoint)) throw new CheckpointError(`no checkpoint to resume at ${paths.checkpoint}`);
    const ckpt = readCheckpoint(paths.checkpoint);
    if (!sameShape(ckpt.shape, shape)) throw new CheckpointError(`${paths.checkpoint} holds a model of another shape than the configuration's`);
    const mine = model.params;
    if (ckpt.params.length !== mine.length || ckpt.params.some((p, i) => p.name !== mine[i].name || p.value.length !== mine[i].value.length)) {
      throw new CheckpointError(`${paths.checkpoint} holds other tensors than the model's`);
    }
    ckpt.params.forEach((p, i) => mine[i].value.set(p.value));
    optimizer.loadState(ckpt.optimizer);
    rng = Rng.fromState(ckpt.rng);
    step = ckpt.step;
    history = ckpt.history;
  }

  const schedule = { lr: cfg.lr, minLr: cfg.minLr, warmupSteps: cfg.warmup, totalSteps: cfg.steps };
  const evalOffsets = spreadWindows(corpus.val, cfg.seqLen, Math.max(1, Math.floor(cfg.evalTokens / cfg.seqLen)));
  const tokensPerStep = cfg.batchSize * cfg.seqLen * cfg.accumulation;
  const stopAt = Math.min(cfg.steps, options.stopAt ?? cfg.steps);
  const firstStep = step;
  const loopStart = performance.now();
  const save = () => {
    writeCheckpoint(paths.checkpoint, { shape, step, rng: rng.state(), history, params: model.params, optimizer: optimizer.saveState() });
    writeFileSync(paths.curve, lossCurveSvg(history.train, history.val, `${cfg.output.split('/').pop()}: loss`));
  };

  while (step < stopAt) {
    let loss = 0;
    for (let micro = 0; micro < cfg.accumulation; micro++) {
      const mark = floatsMark();
      const offsets = Array.from({ length: cfg.batchSize }, () => Math.floor(rng.nextFloat() * (corpus.train.length - cfg.seqLen)));
      const { tokens, targets } = windows(corpus.train, offsets, cfg.seqLen);
      const l = crossEntropy(forwardLogits(model, tokens, cfg.batchSize, cfg.seqLen), targets);
      backward(l, Float32Array.of(1 / cfg.accumulation)); // the step's gradient is the micro-batches' mean
      loss += l.value[0] / cfg.accumulation;
      releaseFloats(mark);
    }
    optimizer.step(learningRate(step, schedule), cfg.gradClip);
    optimizer.zeroGrad();
    step++;
    history.train.push({ step, loss });
    if (step % cfg.evalInterval === 0 || step === cfg.steps) {
      history.val.push({ step, loss: evaluate(model, corpus.val, evalOffsets, cfg.batchSize, cfg.seqLen) });
    }
    if (step % cfg.checkpointInterval === 0 || step === stopAt) save();
    const elapsed = (performance.now() - loopStart) / 1000;
    options.onProgress?.({
      step, steps: cfg.steps, loss,
      valLoss: history.val[history.val.length - 1]?.loss,
      tokensPerSecond: ((step - firstStep) * tokensPerStep) / elapsed,
      etaSeconds: (elapsed / (step - firstStep)) * (cfg.steps - step),
    });
  }
  const loopSeconds = (performance.now() - loopStart) / 1000;

  const result: TrainResult = {
    history, step, checkpointPath: paths.checkpoint, curvePath: paths.curve,
    seconds: (performance.now() - started) / 1000,
    tokensPerSecond: step > firstStep ? ((step - firstStep) * tokensPerStep) / loopSeconds : 0,
  };
  if (step === cfg.steps) {
    result.finalValLoss = evaluate(model, corpus.val, allWindows(corpus.val, cfg.seqLen), cfg.batchSize, cfg.seqLen);
    const name = cfg.output.split('/').pop()!.replace(/\.gguf$/i, '');
    await writeModel(cfg.output, modelGGUF(model, corpus.tokenizer, name), options.format);
    result.modelPath = cfg.output;
    result.seconds = (performance.now() - started) / 1000;
  }
  return result;
}
