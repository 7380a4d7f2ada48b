// Request fields that shape the output rather than sample it: logit_bias (both endpoints), and turning them into
// the engine's per-completion logits processors. Kept apart from params.ts's field-by-field reading so that the
// generation endpoints' handlers only call `logitsProcessorsFor`.

import { LogitBias, type LogitsProcessor } from '../generate/logits-processor.js';
import { invalidRequest } from './errors.js';

/** OpenAI's bound on a logit_bias value */
const MAX_BIAS = 100;

/** logit_bias: {"token id": bias in [−100, 100]}; null or {} means none. */
export function readLogitBias(value: unknown): Map<number, number> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidRequest('logit_bias must be an object of {"token id": bias}', 'logit_bias');
  const bias = new Map<number, number>();
  for (const [key, v] of Object.entries(value)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(id)) throw invalidRequest(`logit_bias keys must be token ids, got "${key}"`, 'logit_bias');
    if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_BIAS) {
      throw invalidRequest(`logit_bias values must be numbers in [-${MAX_BIAS}, ${MAX_BIAS}], got ${JSON.stringify(v)} for token ${key}`, 'logit_bias');
    }
    bias.set(id, v);
  }
  return bias.size > 0 ? bias : undefined;
}

/** What shapes a request's output, as read from its fields. */
export interface OutputConstraints {
  logitBias: Map<number, number> | undefined;
}

/** The factory of each completion's processors (bias first), or undefined when there are none. */
export function logitsProcessorsFor(constraints: OutputConstraints, vocabSize: number): (() => LogitsProcessor[]) | undefined {
  const { logitBias } = constraints;
  if (logitBias) {
    const outside = [...logitBias.keys()].find((id) => id >= vocabSize);
    if (outside !== undefined) throw invalidRequest(`logit_bias token ${outside} is outside the vocabulary (size ${vocabSize})`, 'logit_bias');
  }
  const processors: (() => LogitsProcessor)[] = [];
  if (logitBias) processors.push(() => new LogitBias(logitBias, vocabSize));
  return processors.length > 0 ? () => processors.map((make) => make()) : undefined;
}
