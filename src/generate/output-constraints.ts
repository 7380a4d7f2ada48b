// A completion's output constraints as plain data — logit bias and a GBNF grammar — and the logits processors the
// engine makes of them for each completion. Plain data crosses to the engine's worker thread; processors (functions
// with state) cannot.

import { LogitBias, type LogitsProcessor } from './logits-processor.js';
import { grammarVocabulary } from '../grammar/vocab-mask.js';
import type { Tokenizer } from '../tokenizer/index.js';

export interface OutputConstraints {
  /** [token id, bias] pairs */
  logitBias?: [number, number][];
  /** GBNF text the output must be a sentence of */
  grammar?: string;
}

/** Bias first, then the grammar's mask; the grammar ends within `budget`, the tokens the completion may generate. */
export function outputProcessors(constraints: OutputConstraints | undefined, tokenizer: Tokenizer, budget: number): LogitsProcessor[] {
  if (!constraints) return [];
  return [
    ...(constraints.logitBias ? [new LogitBias(new Map(constraints.logitBias), tokenizer.vocabSize)] : []),
    ...(constraints.grammar ? [grammarVocabulary(tokenizer, constraints.grammar).processor(budget)] : []),
  ];
}
