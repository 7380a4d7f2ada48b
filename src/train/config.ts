// The `kiln train` configuration file: a JSON object naming the model shape, tokenizer, corpus and the
// optimization settings. Relative paths are resolved against the configuration file's folder.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { checkShape, type ModelShape } from './llama-model.js';
import { MAX_TRAINING_THREADS } from './backend.js';

export interface TrainConfig {
  /** model shape; `vocab` defaults to the tokenizer's size */
  model: Omit<ModelShape, 'vocab'> & { vocab?: number };
  /** "bytes" (256 tokens, token i = byte i) or the path of a byte-level BPE tokenizer.json */
  tokenizer: string;
  /** UTF-8 text to train on */
  corpus: string;
  /** the last valFraction of the corpus's tokens is the validation split */
  valFraction: number;
  /** optimizer steps */
  steps: number;
  /** sequences per micro-batch */
  batchSize: number;
  /** tokens per sequence (≤ model.ctx) */
  seqLen: number;
  /** micro-batches per optimizer step */
  accumulation: number;
  /** peak and final learning rate; linear warmup over warmup steps, then cosine decay */
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** global gradient-norm clip (0: none) */
  gradClip: number;
  seed: number;
  /** validation loss every evalInterval steps, on evalTokens tokens of the validation split */
  evalInterval: number;
  evalTokens: number;
  /** checkpoint every checkpointInterval steps (and at the end) */
  checkpointInterval: number;
  /** matmul threads (default every core, at most MAX_TRAINING_THREADS) */
  threads: number;
  /** the GGUF to write; the checkpoint and loss curve go next to it */
  output: string;
}

export class TrainConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainConfigError';
  }
}

const DEFAULTS = {
  valFraction: 0.1, accumulation: 1, warmup: 0, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, gradClip: 1, seed: 1337,
  evalTokens: 8192,
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function number(obj: Record<string, unknown>, key: string, where: string, opts: { int?: boolean; min?: number; max?: number; fallback?: number }): number {
  const v = obj[key] ?? opts.fallback;
  const { min = -Infinity, max = Infinity } = opts;
  if (typeof v !== 'number' || !Number.isFinite(v) || (opts.int && !Number.isSafeInteger(v)) || v < min || v > max) {
    throw new TrainConfigError(`${where}${key} must be ${opts.int ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function string(obj: Record<string, unknown>, key: string): string {
  const v = obj[key];
  if (typeof v !== 'string' || v.length === 0) throw new TrainConfigError(`${key} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks a parsed configuration; `baseDir` resolves relative paths. */
export function parseTrainConfig(doc: unknown, baseDir: string): TrainConfig {
  if (!isObject(doc)) throw new TrainConfigError('the configuration must be a JSON object');
  if (!isObject(doc.model)) throw new TrainConfigError('model must be an object (dim, layers, heads, kvHeads, ffn, ctx)');
  const m = doc.model;
  const int = (key: string, min = 1, fallback?: number) => number(m, key, 'model.', { int: true, min, max: 1 << 20, fallback });
  const model: TrainConfig['model'] = {
    dim: int('dim'), layers: int('layers'), heads: int('heads'), kvHeads: int('kvHeads', 1, m.heads as number), ffn: int('ffn'), ctx: int('ctx'),
  };
  if (m.vocab !== undefined) model.vocab = int('vocab');
  if (m.ropeBase !== undefined) model.ropeBase = number(m, 'ropeBase', 'model.', { min: 1 });
  if (m.rmsEps !== undefined) model.rmsEps = number(m, 'rmsEps', 'model.', { min: 0, max: 1 });
  if (m.tiedEmbeddings !== undefined) {
    if (typeof m.tiedEmbeddings !== 'boolean') throw new TrainConfigError('model.tiedEmbeddings must be true or false');
    model.tiedEmbeddings = m.tiedEmbeddings;
  }
  if (m.experts !== undefined) {
    model.experts = int('experts', 0);
    model.expertsUsed = int('expertsUsed');
  }
  checkShape({ ...model, vocab: model.vocab ?? 1 });
  const n = (key: string, opts: { int?: boolean; min?: number; max?: number; fallback?: number }) => number(doc, key, '', opts);
  const tokenizer = string(doc, 'tokenizer');
  const steps = n('steps', { int: true, min: 1 });
  const seqLen = n('seqLen', { int: true, min: 1, max: model.ctx });
  const lr = n('lr', { min: 0, max: 10 });
  const evalInterval = n('evalInterval', { int: true, min: 1, fallback: steps });
  return {
    model,
    tokenizer: tokenizer === 'bytes' ? tokenizer : resolve(baseDir, tokenizer),
    corpus: resolve(baseDir, string(doc, 'corpus')),
    valFraction: n('valFraction', { min: 0.0001, max: 0.9999, fallback: DEFAULTS.valFraction }),
    steps,
    batchSize: n('batchSize', { int: true, min: 1, max: 1 << 16 }),
    seqLen,
    accumulation: n('accumulation', { int: true, min: 1, max: 1 << 16, fallback: DEFAULTS.accumulation }),
    lr,
    minLr: n('minLr', { min: 0, max: lr, fallback: lr / 10 }),
    warmup: n('warmup', { int: true, min: 0, max: steps, fallback: DEFAULTS.warmup }),
    weightDecay: n('weightDecay', { min: 0, fallback: DEFAULTS.weightDecay }),
    beta1: n('beta1', { min: 0, max: 0.999999, fallback: DEFAULTS.beta1 }),
    beta2: n('beta2', { min: 0, max: 0.999999, fallback: DEFAULTS.beta2 }),
    gradClip: n('gradClip', { min: 0, fallback: DEFAULTS.gradClip }),
    seed: n('seed', { int: true, fallback: DEFAULTS.seed }),
    evalInterval,
    evalTokens: n('evalTokens', { int: true, min: 1, fallback: DEFAULTS.evalTokens }),
    checkpointInterval: n('checkpointInterval', { int: true, min: 1, fallback: evalInterval }),
    threads: n('threads', { int: true, min: 1, max: MAX_TRAINING_THREADS, fallback: Math.min(availableParallelism(), MAX_TRAINING_THREADS) }),
    output: resolve(baseDir, string(doc, 'output')),
  };
}

export function readTrainConfig(path: string): TrainConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TrainConfigError(`${path}: ${(e as Error).message}`);
  }
  return parseTrainConfig(doc, dirname(resolve(path)));
}
