// The inspector's data: one run of a model on a prompt, recorded as it happens — how the prompt was cut into
// tokens, how each sampling stage reshaped each next-token distribution, where every head of every layer
// attended, and which experts the router chose. The forward pass reports attention and router choices through
// its ForwardObserver; the sampling stages come from explainSampling, which runs the Sampler's own chain.

import { Model } from '../generate/model.js';
import { SingleSequence } from '../generate/generate.js';
import type { ForwardObserver } from '../generate/inference-ops.js';
import { Sampler, explainSampling, type SamplingParams, type SamplingStage } from '../generate/sampler.js';
import { ReferenceBackend } from '../kernels/reference.js';
import { getString } from '../gguf/metadata.js';
import type { Tokenizer } from '../tokenizer/index.js';

export class InspectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InspectError';
  }
}

/** One token of the text: its id, its piece, and the part of the text it covers. */
export interface TraceToken {
  id: number;
  /** the token's bytes as text (bytes that are not whole UTF-8 characters as <0xHH>) */
  piece: string;
  /** [start, end) in the UTF-8 bytes of `InspectTrace.text` (empty for BOS and other control tokens) */
  bytes: [number, number];
  /** [start, end) in the UTF-16 characters of `InspectTrace.text` (a character split over tokens is in each) */
  chars: [number, number];
  generated: boolean;
}

export interface TraceCandidate {
  token: number;
  piece: string;
  logit: number;
  /** probability within the stage's candidate set */
  prob: number;
}

export interface TraceStage {
  stage: SamplingStage;
  /** tokens still candidates after the stage */
  kept: number;
  /** the most likely of them */
  top: TraceCandidate[];
}

/** How the next token at `position` was chosen. */
export interface TraceStep {
  position: number;
  chosen: number;
  stages: TraceStage[];
}

export interface RouterChoice {
  experts: number[];
  /** gate weight of each chosen expert */
  weights: number[];
}

export interface InspectTrace {
  model: {
    name: string; arch: string; layers: number; heads: number; kvHeads: number; dim: number; vocab: number;
    experts: number; expertsUsed: number;
  };
  prompt: string;
  /** the prompt and the generated tokens, detokenized; token spans point into it */
  text: string;
  sampling: SamplingParams;
  tokens: TraceToken[];
  promptTokens: number;
  steps: TraceStep[];
  /** [layer][head][query position][key position ≤ query position]: softmax attention weights */
  attention: number[][][][];
  /** [position][layer]: the router's choice (empty for dense models) */
  experts: RouterChoice[][];
}

export interface TraceOptions {
  /** tokens to generate (ends early at an end-of-generation token) */
  maxTokens: number;
  sampling?: Partial<SamplingParams>;
  /** candidates shown per sampling stage (default 10) */
  topK?: number;
}

/** Attention weights kept at most: layers × heads × T(T+1)/2 values (about 40 MB of JSON). */
const MAX_ATTENTION_VALUES = 8_000_000;
export const MAX_TRACE_TOKENS = 1024;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8 = new TextEncoder();

function pieceText(tokenizer: Tokenizer, id: number): string {
  const bytes = tokenizer.decodeToken(id, { special: true });
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return [...bytes].map((b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).join('');
  }
}

/** 4 significant digits: enough for bars and heatmaps, a third of the JSON of full floats. */
const round = (x: number) => +x.toPrecision(4);

/**
 * Each token's span in the detokenized text: tokens cover their pieces' bytes in order (control tokens have none).
 * The text may be shorter than the pieces by SentencePiece's prefix space, which detokenizing drops from the
 * front; models that also clean up spaces inside the text get spans clamped to it. Char spans round outwards, so
 * the tokens of a character split into bytes all cover that character.
 */
export function tokenSpans(tokenizer: Tokenizer, ids: readonly number[]): { text: string; spans: { bytes: [number, number]; chars: [number, number] }[] } {
  const text = tokenizer.decode(ids, { skipSpecial: true });
  // [bytes + 1]: the UTF-16 index of the character holding byte b
  const textBytes = utf8.encode(text).length;
  const charAt = new Int32Array(textBytes + 1);
  let b = 0, c = 0;
  for (const ch of text) {
    const n = utf8.encode(ch).length;
    for (let i = 0; i < n; i++) charAt[b + i] = c;
    b += n;
    c += ch.length;
  }
  charAt[textBytes] = text.length;
  const pieces = ids.map((id) => tokenizer.decodeToken(id).length);
  let dropped = Math.max(0, pieces.reduce((a, n) => a + n, 0) - textBytes);
  let end = 0;
  const spans = pieces.map((n) => {
    const drop = Math.min(dropped, n);
    dropped -= drop;
    const start = end;
    end = Math.min(textBytes, start + n - drop);
    const charEnd = end === start ? charAt[start] : charAt[end - 1] + (text.codePointAt(charAt[end - 1])! > 0xffff ? 2 : 1);
    return { bytes: [start, end] as [number, number], chars: [charAt[start], charEnd] as [number, number] };
  });
  return { text, spans };
}

/** The model on the reference backend (which reports attention weights), sharing the weights already loaded. */
export function inspectableModel(model: Model): Model {
  return model.backend instanceof ReferenceBackend ? model : new Model(model.file, new ReferenceBackend());
}

/** Records what happens in one run; positions are absolute (the sequence's), set per fed batch. */
class Recorder implements ForwardObserver {
  /** [layer][head][position] → weights over positions 0..position */
  readonly attention: number[][][][];
  readonly experts: RouterChoice[][] = [];
  start = 0;

  constructor(layers: number, private readonly heads: number) {
    this.attention = Array.from({ length: layers }, () => Array.from({ length: heads }, () => []));
  }

  attentionWeights(layer: number, row: number, weights: Float32Array, stride: number): void {
    const position = this.start + row;
    for (let h = 0; h < this.heads; h++) {
      const w = Array.from(weights.subarray(h * stride, h * stride + position + 1), round);
      if (w.some((x) => !Number.isFinite(x))) throw new InspectError('the backend did not report attention weights');
      this.attention[layer][h][position] = w;
    }
  }

  expertChoice(layer: number, row: number, experts: number[], weights: number[]): void {
    (this.experts[this.start + row] ??= [])[layer] = { experts: [...experts], weights: weights.map(round) };
  }
}

/**
 * Runs `model` on `prompt` and records the run: the prompt is fed as one batch, then each generated token is
 * sampled by a Sampler (the sampling stages of its logits explained beside it) and fed back, the last one too,
 * so that attention covers every position.
 */
export function traceGeneration(model: Model, prompt: string, options: TraceOptions): InspectTrace {
  const { maxTokens, topK = 10 } = options;
  if (typeof prompt !== 'string' || prompt.length === 0) throw new InspectError('the prompt must be a non-empty string');
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) throw new InspectError(`tokens to generate must be an integer ≥ 0, got ${maxTokens}`);
  if (!Number.isSafeInteger(topK) || topK < 1 || topK > 100) throw new InspectError(`candidates per stage must be an integer in [1, 100], got ${topK}`);
  const run = inspectableModel(model);
  const hp = run.hparams;
  const { tokenizer } = run;
  const promptIds = tokenizer.encode(prompt, { addSpecial: true, parseSpecial: false });
  const total = promptIds.length + maxTokens;
  if (total > Math.min(MAX_TRACE_TOKENS, hp.contextLength)) {
    throw new InspectError(`prompt (${promptIds.length} tokens) + ${maxTokens} generated exceed ${Math.min(MAX_TRACE_TOKENS, hp.contextLength)} positions`);
  }
  if (hp.blockCount * hp.headCount * total * (total + 1) / 2 > MAX_ATTENTION_VALUES) {
    throw new InspectError(`${total} positions × ${hp.blockCount} layers × ${hp.headCount} heads is too many attention weights to record; shorten the prompt or generate fewer tokens`);
  }

  const sampler = new Sampler(options.sampling ?? {}, run.vocabSize);
  const sequence = new SingleSequence(run, total);
  const recorder = new Recorder(hp.blockCount, hp.headCount);
  const ids = [...promptIds];
  const steps: TraceStep[] = [];
  let logits = sequence.feed(promptIds, false, recorder);
  for (let i = 0; i < maxTokens; i++) {
    const stages = explainSampling(logits, sampler.params, ids, topK).map(({ stage, kept, top }) => ({
      stage, kept,
      top: top.map((c) => ({ token: c.token, piece: pieceText(tokenizer, c.token), logit: round(c.logit), prob: round(c.prob) })),
    }));
    const token = sampler.sample(logits, ids);
    sampler.accept(token);
    steps.push({ position: ids.length, chosen: token, stages });
    ids.push(token);
    recorder.start = sequence.length;
    logits = sequence.feed([token], false, recorder);
    if (tokenizer.isEog(token)) break;
  }

  const { text, spans } = tokenSpans(tokenizer, ids);
  return {
    model: {
      name: getString(run.file.metadata, 'general.name') ?? hp.arch, arch: hp.arch, layers: hp.blockCount, heads: hp.headCount,
      kvHeads: hp.headCountKv, dim: hp.embeddingLength, vocab: run.vocabSize, experts: hp.expertCount, expertsUsed: hp.expertUsedCount,
    },
    prompt,
    text,
    sampling: sampler.params,
    tokens: ids.map((id, i) => ({ id, piece: pieceText(tokenizer, id), ...spans[i], generated: i >= promptIds.length })),
    promptTokens: promptIds.length,
    steps,
    attention: recorder.attention,
    experts: recorder.experts,
  };
}
