// One context policy for every command that runs or sizes a model (run, chat, serve, eval, perplexity,
// quant-report, imatrix, bench, estimate): without -c the context is the one the model was trained for, capped where
// memory or time needs it; a -c beyond it runs (rope extrapolates) with one warning; and what a context cuts short
// is said before it happens, never done silently.

import { basename } from 'node:path';

/** What a command knows of its model's context. */
export interface TrainedContext {
  /** the model's name in messages (a file's base name) */
  name: string;
  /** positions the model was trained for; undefined when unknown (a bare parameter count) */
  trained: number | undefined;
}

export function trainedContext(path: string, trained: number | undefined): TrainedContext {
  return { name: basename(path), trained };
}

function warn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

/** Warns when `positions` (what `what` asks for) go past the trained context. */
export function warnBeyondTrained(model: TrainedContext, positions: number, what: string): void {
  if (model.trained !== undefined && positions > model.trained) {
    warn(`${what} goes past the ${model.trained} positions ${model.name} was trained for; expect worse output beyond them`);
  }
}

/**
 * The context a command runs with: `requested` (the user's `flag`), else the trained context capped at `cap`
 * (or `cap` itself when the trained context is unknown).
 */
export function chooseContext(model: TrainedContext, requested: number | undefined, options: { cap?: number; flag?: string } = {}): number {
  const { cap = Infinity, flag = '-c' } = options;
  if (requested !== undefined) {
    warnBeyondTrained(model, requested, `${flag} ${requested}`);
    return requested;
  }
  const ctx = Math.min(model.trained ?? cap, cap);
  if (!Number.isFinite(ctx)) throw new RangeError(`${model.name}: no trained context and no cap to default to`);
  return ctx;
}

/** Says, before generating, when a prompt of `promptTokens` and `maxTokens` more do not fit a context of `ctx`. */
export function warnIfCut(ctx: number, promptTokens: number, maxTokens: number, model: TrainedContext): void {
  const needed = promptTokens + maxTokens;
  if (needed <= ctx) return;
  const beyond = model.trained !== undefined && needed > model.trained ? ` (past the ${model.trained} ${model.name} was trained for)` : '';
  warn(`the prompt (${promptTokens} tokens) and ${maxTokens} more need ${needed} positions, the context holds ${ctx}: ` +
    `generation stops after ${Math.max(0, ctx - promptTokens)} tokens; -c ${needed} makes room${beyond}`);
}
