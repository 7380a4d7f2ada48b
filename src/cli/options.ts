// What the `kiln` commands share on their command lines: the usage error, value parsers for commander, and the
// options that mean the same in every command (-t/--threads, -o/--output, -c/--ctx, MODEL). commander itself
// parses, checks, suggests misspelt names and writes the help.

import { availableParallelism } from 'node:os';
import { InvalidArgumentError, Option } from '@commander-js/extra-typings';

/** A command line that names things which do not go together, or lacks one (exit status 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A commander value parser: an integer from `min` to `max`. */
export function integer(min = -Infinity, max = Infinity): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer');
    if (n < min || n > max) throw new InvalidArgumentError(max === Infinity ? `expected an integer of at least ${min}` : `expected an integer from ${min} to ${max}`);
    return n;
  };
}

/** A commander value parser: a finite number. */
export function decimal(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

/** A commander value parser for repeatable options: the values in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A comma-separated list: "q, v,o" → ["q", "v", "o"]. */
export function commaList(value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter(Boolean);
}

/** -t/--threads N, the same in every command that computes: default every core (at most `max`). */
export function threadsOption(max = Infinity) {
  return new Option('-t, --threads <n>', 'compute threads').argParser(integer(1, max)).default(Math.min(availableParallelism(), max), 'every core');
}

/** -o/--output FILE, the same in every command that writes a file. */
export function outputOption(description: string) {
  return new Option('-o, --output <file>', description);
}

/** -c/--ctx N: the context (tokens per sequence or chunk); the default comes from the model (src/cli/context.ts). */
export function ctxOption(description = 'context length in tokens (default: the model\'s trained context)') {
  return new Option('-c, --ctx <n>', description).argParser(integer(1));
}

/**
 * An option that was renamed: still recognised, so that its user learns the new spelling instead of a suggestion.
 * `flags` as commander writes them ("--model <file>"), `instead` what to write now.
 */
export function renamedOption<const F extends string>(flags: F, instead: string) {
  const name = flags.split(/[ ,]/)[0];
  return new Option(flags).hideHelp().argParser((): never => {
    throw new UsageError(`${name} was renamed: ${instead}`);
  });
}

export const MODEL_DESCRIPTION = 'a GGUF model file or a Hugging Face folder (config.json, *.safetensors, tokenizer)';
export const DEFAULT_MODEL_DESCRIPTION = 'a GGUF model file or a Hugging Face folder (default: models/kiln-brown.gguf, a small demonstration model)';
