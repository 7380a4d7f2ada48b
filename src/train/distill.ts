// Knowledge distillation (Hinton et al. 2015) of a teacher model into a student trained from scratch:
//   loss = α · T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) · CE(z_s, y) [+ w · MSE(P·h_s, h_t)]
// The optional last term is FitNets-style hint matching (Romero et al. 2015): the student's final hidden states
// h_s [n, dimS] (after the output norm: the forward's `hidden`) are mapped by a learned projection P (dimS → dimT)
// onto the teacher's h_t [n, dimT]. The teacher runs the same TrainOps forward; only its values are used (no gradient).
// Reading order: the student and its corpus as `kiln train` makes them, then the loop of trainer.ts with the loss above.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeGGUF } from '../gguf/writer.js';
import { Rng } from '../generate/rng.js';
import { Param, Var, backward, crossEntropy, klDivergence, linear } from './autograd.js';
import { allocFloats, floatsMark, releaseFloats, setTrainingThreads } from './backend.js';
import { AdamW, learningRate } from './optim.js';
import { createModel, logitsOf, modelGGUF, type TrainModel } from './llama-model.js';
import { TrainOps } from './train-ops.js';
import { allWindows, evaluate, loadCorpus, spreadWindows, windows } from './trainer.js';
import type { LossPoint } from './checkpoint.js';
import { TrainConfigError, type TrainConfig } from './config.js';

export interface DistillOptions {
  /** weight of the soft (teacher) term; 0 trains on hard labels alone */
  alpha: number;
  temperature: number;
  /** weight of the hidden-state matching term; 0 turns it off */
  hiddenWeight: number;
  onProgress?: (p: { step: number; steps: number; loss: number; valLoss?: number }) => void;
}

export interface DistillResult {
  history: { train: LossPoint[]; val: LossPoint[] };
  /** the student's cross-entropy over the whole validation split */
  finalValLoss: number;
  modelPath: string;
}

/** mean over all values of (x − target)², target constant → a scalar [1, 1] */
export function meanSquaredError(x: Var, target: Float32Array): Var {
  const n = x.value.length;
  if (target.length !== n) throw new RangeError(`meanSquaredError: ${n} values vs ${target.length} targets`);
  let total = 0;
  for (let i = 0; i < n; i++) total += (x.value[i] - target[i]) ** 2;
  const out = allocFloats(1);
  out[0] = total / n;
  return new Var(out, 1, 1, [x], (g) => {
    // d/dx = 2 (x − target) / n
    const dx = x.gradient(), k = (2 * g[0]) / n;
    for (let i = 0; i < n; i++) dx[i] += k * (x.value[i] - target[i]);
  });
}

/** Σ weight · term over scalar terms → a scalar [1, 1] */
export function weightedSum(terms: readonly [Var, number][]): Var {
  const out = allocFloats(1);
  for (const [v, w] of terms) out[0] += w * v.value[0];
  return new Var(out, 1, 1, terms.map(([v]) => v), (g) => {
    for (const [v, w] of terms) v.gradient()[0] += w * g[0];
  });
}

export function checkDistillOptions(o: DistillOptions): void {
  if (!(o.alpha >= 0 && o.alpha <= 1)) throw new TrainConfigError(`alpha must be in [0, 1], got ${o.alpha}`);
  if (!(o.temperature > 0 && Number.isFinite(o.temperature))) throw new TrainConfigError(`temperature must be positive, got ${o.temperature}`);
  if (!(o.hiddenWeight >= 0 && Number.isFinite(o.hiddenWeight))) throw new TrainConfigError(`hidden weight must be ≥ 0, got ${o.hiddenWeight}`);
}

/** Trains the student `cfg` describes against `teacher` and writes it to cfg.output. */
export async function distill(teacher: TrainModel, cfg: TrainConfig, options: DistillOptions): Promise<DistillResult> {
  checkDistillOptions(options);
  setTrainingThreads(cfg.threads);
  const corpus = loadCorpus(cfg);
  const vocab = cfg.model.vocab ?? corpus.tokenizer.vocab.length;
  if (vocab !== teacher.shape.vocab) throw new TrainConfigError(`the student's vocabulary (${vocab}) differs from the teacher's (${teacher.shape.vocab})`);
  const rng = new Rng(cfg.seed);
  const student = createModel({ ...cfg.model, vocab }, rng);
  const { alpha, temperature, hiddenWeight } = options;
  // P: student dim → teacher dim, starting at 0 (it learns first, then passes the hint's gradient to the student)
  const projection = hiddenWeight > 0 ? new Param('hidden_proj.weight', [student.shape.dim, teacher.shape.dim]) : undefined;
  const trained = projection ? [...student.params, projection] : student.params;
  const optimizer = new AdamW(trained, { beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weightDecay });
  const schedule = { lr: cfg.lr, minLr: cfg.minLr, warmupSteps: cfg.warmup, totalSteps: cfg.steps };
  const evalOffsets = spreadWindows(corpus.val, cfg.seqLen, Math.max(1, Math.floor(cfg.evalTokens / cfg.seqLen)));
  const history: DistillResult['history'] = { train: [], val: [] };
  const useTeacher = alpha > 0 || projection !== undefined;

  for (let step = 0; step < cfg.steps;) {
    let loss = 0;
    for (let micro = 0; micro < cfg.accumulation; micro++) {
      const mark = floatsMark();
      const offsets = Array.from({ length: cfg.batchSize }, () => Math.floor(rng.nextFloat() * (corpus.train.length - cfg.seqLen)));
      const { tokens, targets } = windows(corpus.train, offsets, cfg.seqLen);
      const out = student.bound.forward(new TrainOps(tokens, cfg.batchSize, cfg.seqLen));
      const logits = logitsOf(out); // [n, vocab]
      const terms: [Var, number][] = [[crossEntropy(logits, targets), 1 - alpha]];
      if (useTeacher) {
        const teacherOut = teacher.bound.forward(new TrainOps(tokens, cfg.batchSize, cfg.seqLen)); // values only
        if (alpha > 0) terms.push([klDivergence(logits, logitsOf(teacherOut).value, temperature), alpha]);
        if (projection) terms.push([meanSquaredError(linear(out.hidden, projection), teacherOut.hidden.value), hiddenWeight]);
      }
      const l = weightedSum(terms);
      backward(l, Float32Array.of(1 / cfg.accumulation));
      loss += l.value[0] / cfg.accumulation;
      releaseFloats(mark);
    }
    optimizer.step(learningRate(step, schedule), cfg.gradClip);
    optimizer.zeroGrad();
    step++;
    history.train.push({ step, loss });
    if (step % cfg.evalInterval === 0 || step === cfg.steps) {
      history.val.push({ step, loss: evaluate(student, corpus.val, evalOffsets, cfg.batchSize, cfg.seqLen) });
    }
    options.onProgress?.({ step, steps: cfg.steps, loss, valLoss: history.val[history.val.length - 1]?.loss });
  }
  const finalValLoss = evaluate(student, corpus.val, allWindows(corpus.val, cfg.seqLen), cfg.batchSize, cfg.seqLen);
  mkdirSync(dirname(cfg.output), { recursive: true });
  await writeGGUF(cfg.output, modelGGUF(student, corpus.tokenizer, cfg.output.split('/').pop()!.replace(/\.gguf$/i, '')));
  return { history, finalValLoss, modelPath: cfg.output };
}
