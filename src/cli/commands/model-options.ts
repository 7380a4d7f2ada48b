// Options shared by the commands that load a model and sample from it.

import { optInt, optList, optNumber, type OptionSpec, type ParsedArgs } from '../args.js';
import type { SamplingParams } from '../../generate/sampler.js';
import type { LoadOptions } from '../../generate/model.js';
import { createBackend } from '../../kernels/select.js';

export const SAMPLING_OPTIONS: OptionSpec[] = [
  { name: 'temp', description: 'temperature (0 = greedy; default 0.8)' },
  { name: 'top-k', description: 'keep the k most likely tokens (0 = off; default 40)' },
  { name: 'top-p', description: 'keep the smallest set with probability ≥ p (1 = off; default 0.95)' },
  { name: 'min-p', description: 'drop tokens below p × the top probability (0 = off; default 0.05)' },
  { name: 'repeat-penalty', description: 'penalty for tokens in the last --repeat-last-n (1 = off)' },
  { name: 'repeat-last-n', description: 'window of the repeat penalty (default 64)' },
  { name: 'presence-penalty', description: 'subtract p from tokens already generated' },
  { name: 'frequency-penalty', description: 'subtract f × count from tokens already generated' },
  { name: 'seed', description: 'random seed (same seed → same text)' },
];

export function samplingFromArgs(args: ParsedArgs): Partial<SamplingParams> {
  const params: Partial<SamplingParams> = {};
  const set = <K extends keyof SamplingParams>(key: K, value: SamplingParams[K] | undefined) => {
    if (value !== undefined) params[key] = value;
  };
  set('temperature', optNumber(args, 'temp'));
  set('top_k', optInt(args, 'top-k'));
  set('top_p', optNumber(args, 'top-p'));
  set('min_p', optNumber(args, 'min-p'));
  set('repeat_penalty', optNumber(args, 'repeat-penalty'));
  set('repeat_last_n', optInt(args, 'repeat-last-n'));
  set('presence_penalty', optNumber(args, 'presence-penalty'));
  set('frequency_penalty', optNumber(args, 'frequency-penalty'));
  set('seed', optInt(args, 'seed'));
  return params;
}

/** How a command loads its model: compute threads and LoRA adapters. */
export const MODEL_LOAD_OPTIONS: OptionSpec[] = [
  { name: 'threads', short: 't', description: 'compute threads (default: number of cores)' },
  { name: 'lora', multiple: true, description: 'apply a LoRA adapter GGUF (repeatable)' },
  { name: 'lora-scale', description: 'scale s of the adapters: y = W·x + s·(alpha/r)·B·A·x (default 1)' },
];

export function modelLoadOptions(args: ParsedArgs): LoadOptions {
  const threads = optInt(args, 'threads');
  const scale = optNumber(args, 'lora-scale') ?? 1;
  return {
    backend: threads === undefined ? undefined : createBackend(undefined, threads),
    lora: optList(args, 'lora').map((path) => ({ path, scale })),
  };
}
