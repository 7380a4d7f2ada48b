// Supervised fine-tuning on prompt → response pairs. Reading order:
//   1. examples: JSONL lines {prompt, response} or {messages: [{role, content}, ...]} (rendered with the model's
//      chat template, ChatML when it has none) → tokens, with a label mask: only response tokens are learned
//   2. a Tuning: what trains (the whole model, LoRA adapters, or prompt-tuning virtual tokens) and its forward
//   3. each step: a random batch (padded, padding masked) → masked cross-entropy → backward, clip, AdamW
//   4. evaluation: mean response loss and exact-match accuracy (every response token is the argmax under teacher
//      forcing, i.e. greedy decoding reproduces the response).

import { readFileSync } from 'node:fs';
import { Rng } from '../generate/rng.js';
import { ChatTemplate, type ChatMessage } from '../generate/chat-template.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { backward, crossEntropy, tokenLogprobs, type Param, type Var } from './autograd.js';
import { floatsMark, releaseFloats } from './backend.js';
import { AdamW, learningRate } from './optim.js';
import { forwardLogits, type TrainModel } from './llama-model.js';
import { loraForwardLogits, type LoraAdapter } from './lora.js';
import { promptTuningLogits, type PromptTuning } from './prompt-tuning.js';

export class SftDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SftDataError';
  }
}

/** One training sequence: its tokens and which of them are learned (response tokens). */
export interface SftExample {
  /** [n] */
  tokens: Int32Array;
  /** [n] 1 where the token is a target of the loss */
  learn: Uint8Array;
}

interface Segment {
  text: string;
  learn: boolean;
}

/** The text pieces of one JSONL record, in order, each learned or not. */
function segments(record: unknown, template: ChatTemplate, where: string): Segment[] {
  const r = record as { prompt?: unknown; response?: unknown; messages?: unknown };
  if (typeof r?.prompt === 'string' && typeof r.response === 'string') {
    return [{ text: r.prompt, learn: false }, { text: r.response, learn: true }];
  }
  if (!Array.isArray(r?.messages)) throw new SftDataError(`${where}: expected {"prompt","response"} or {"messages":[...]}`);
  const messages = r.messages as ChatMessage[];
  if (messages.some((m) => typeof m?.role !== 'string' || typeof m.content !== 'string')) {
    throw new SftDataError(`${where}: every message needs a string "role" and "content"`);
  }
  // each assistant turn is the text its rendering adds after the conversation so far with the turn opened
  const out: Segment[] = [];
  let done = '';
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const opened = template.render(messages.slice(0, i), true), full = template.render(messages.slice(0, i + 1), false);
    if (!opened.startsWith(done) || !full.startsWith(opened)) throw new SftDataError(`${where}: the chat template does not render turn by turn`);
    out.push({ text: opened.slice(done.length), learn: false }, { text: full.slice(opened.length), learn: true });
    done = full;
  });
  if (out.length === 0) throw new SftDataError(`${where}: no assistant message to learn`);
  return out;
}

/**
 * The examples of a JSONL file: BOS (when the tokenizer adds one and the text does not start with it), then each
 * segment tokenized on its own; a prompt/response pair ends with EOS, learned. Longer than maxTokens: cut.
 */
export function readSftExamples(path: string, tokenizer: Tokenizer, template: ChatTemplate, maxTokens: number): SftExample[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const bosText = tokenizer.bosId === null ? '' : tokenizer.tokenText(tokenizer.bosId);
  const examples: SftExample[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${path}:${i + 1}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (e) {
      throw new SftDataError(`${where}: not JSON (${(e as Error).message})`);
    }
    const segs = segments(record, template, where);
    const tokens: number[] = [], learn: number[] = [];
    if (tokenizer.addBos && tokenizer.bosId !== null && !(bosText && segs[0].text.startsWith(bosText))) {
      tokens.push(tokenizer.bosId);
      learn.push(0);
    }
    for (const s of segs) {
      const ids = tokenizer.encode(s.text, { addSpecial: false, parseSpecial: true });
      tokens.push(...ids);
      learn.push(...ids.map(() => (s.learn ? 1 : 0)));
    }
    const isPair = typeof (record as { prompt?: unknown }).prompt === 'string';
    if (isPair && tokenizer.eosId !== null) {
      tokens.push(tokenizer.eosId);
      learn.push(1);
    }
    // the first token is never a target; a response cut away entirely leaves nothing to learn
    if (!learn.slice(1, maxTokens).includes(1)) throw new SftDataError(`${where}: no response token within ${maxTokens} tokens`);
    examples.push({ tokens: Int32Array.from(tokens.slice(0, maxTokens)), learn: Uint8Array.from(learn.slice(0, maxTokens)) });
  });
  if (examples.length === 0) throw new SftDataError(`${path} holds no examples`);
  return examples;
}

/** What trains and how logits are computed: [nSeq · seqLen, vocab] for tokens [nSeq · seqLen]. */
export interface Tuning {
  params: Param[];
  /** `rng`: training randomness (dropout); absent when evaluating */
  logits(tokens: Int32Array, nSeq: number, seqLen: number, rng?: Rng): Var;
}

export function fullTuning(model: TrainModel): Tuning {
  return { params: model.params, logits: (tokens, nSeq, seqLen) => forwardLogits(model, tokens, nSeq, seqLen) };
}

export function loraTuning(model: TrainModel, adapter: LoraAdapter): Tuning {
  return { params: adapter.params, logits: (tokens, nSeq, seqLen, rng) => loraForwardLogits(model, adapter, tokens, nSeq, seqLen, rng) };
}

export function promptTuning(model: TrainModel, tuning: PromptTuning): Tuning {
  return { params: [tuning.prompt], logits: (tokens, nSeq, seqLen) => promptTuningLogits(model, tuning, tokens, nSeq, seqLen) };
}

/**
 * Inputs and targets of a batch, padded to its longest example: tokens [nSeq · seqLen] (padding 0), targets
 * [nSeq · seqLen] = the next token where it is learned, −1 (masked) elsewhere.
 */
export function batchOf(examples: readonly SftExample[]): { tokens: Int32Array; targets: Int32Array; seqLen: number } {
  const seqLen = Math.max(...examples.map((e) => e.tokens.length - 1));
  const tokens = new Int32Array(examples.length * seqLen), targets = new Int32Array(examples.length * seqLen).fill(-1);
  examples.forEach((e, b) => {
    tokens.set(e.tokens.subarray(0, e.tokens.length - 1), b * seqLen);
    for (let s = 0; s + 1 < e.tokens.length; s++) if (e.learn[s + 1]) targets[b * seqLen + s] = e.tokens[s + 1];
  });
  return { tokens, targets, seqLen };
}

export interface SftEval {
  /** mean response-token loss over the examples */
  loss: number;
  /** share of examples whose every response token is the argmax (greedy decoding reproduces the response) */
  accuracy: number;
}

export function evaluateSft(tuning: Tuning, examples: readonly SftExample[], batchSize: number): SftEval {
  let loss = 0, exact = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const batch = examples.slice(i, i + batchSize);
    const mark = floatsMark();
    const { tokens, targets, seqLen } = batchOf(batch);
    const logits = tuning.logits(tokens, batch.length, seqLen);
    const logprobs = tokenLogprobs(logits, targets).value; // [nSeq · seqLen], 0 where masked
    batch.forEach((_, b) => {
      let sum = 0, count = 0, all = true;
      for (let s = 0; s < seqLen; s++) {
        const row = b * seqLen + s;
        if (targets[row] < 0) continue;
        sum -= logprobs[row];
        count++;
        if (argmaxRow(logits, row) !== targets[row]) all = false;
      }
      loss += sum / count;
      if (all) exact++;
    });
    releaseFloats(mark);
  }
  return { loss: loss / examples.length, accuracy: exact / examples.length };
}

function argmaxRow(logits: Var, row: number): number {
  const v = logits.cols, o = row * v;
  let best = 0;
  for (let c = 1; c < v; c++) if (logits.value[o + c] > logits.value[o + best]) best = c;
  return best;
}

export interface SftOptions {
  steps: number;
  lr: number;
  batchSize: number;
  warmup: number;
  weightDecay: number;
  gradClip: number;
  seed: number;
  onStep?: (step: number, loss: number) => void;
}

/** Trains `tuning`'s params on the examples; returns each step's loss. */
export function sft(tuning: Tuning, examples: readonly SftExample[], o: SftOptions): number[] {
  const rng = new Rng(o.seed);
  const optimizer = new AdamW(tuning.params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay });
  const schedule = { lr: o.lr, minLr: o.lr / 10, warmupSteps: o.warmup, totalSteps: o.steps };
  const losses: number[] = [];
  for (let step = 0; step < o.steps; step++) {
    const mark = floatsMark();
    const batch = Array.from({ length: o.batchSize }, () => examples[Math.floor(rng.nextFloat() * examples.length)]);
    const { tokens, targets, seqLen } = batchOf(batch);
    const loss = crossEntropy(tuning.logits(tokens, batch.length, seqLen, rng), targets);
    backward(loss);
    losses.push(loss.value[0]);
    releaseFloats(mark);
    optimizer.step(learningRate(step, schedule), o.gradClip);
    optimizer.zeroGrad();
    o.onStep?.(step + 1, losses[step]);
  }
  return losses;
}
