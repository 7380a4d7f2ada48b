// Options shared by the commands that load a model and sample from it, each group added to a command by one call.
// GROUP_TYPES: a group's function states its flags as a type of their own (commander's inferred type is restated),
// so that declaration files need not spell out commander's nested inferred type, which is very slow to emit.

import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import type { SamplingParams } from '../../generate/sampler.js';
import type { LoadOptions } from '../../generate/model.js';
import { createBackend } from '../../kernels/select.js';
import { collect, decimal, integer, threadsOption } from '../options.js';

/** The sampling flags as commander parses them. */
export type SamplingFlags = {
  temp?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
};

export function withSampling<A extends unknown[], O extends OptionValues, G extends OptionValues>(command: Command<A, O, G>): Command<A, O & SamplingFlags, G> {
  return command
    .optionsGroup('Sampling:')
    .addOption(new Option('--temp <t>', 'temperature (0 = greedy; default 0.8)').argParser(decimal))
    .addOption(new Option('--top-k <k>', 'keep the k most likely tokens (0 = off; default 40)').argParser(integer(0)))
    .addOption(new Option('--top-p <p>', 'keep the smallest set with probability ≥ p (1 = off; default 0.95)').argParser(decimal))
    .addOption(new Option('--min-p <p>', 'drop tokens below p × the top probability (0 = off; default 0.05)').argParser(decimal))
    .addOption(new Option('--repeat-penalty <r>', 'penalty for tokens in the last --repeat-last-n (1 = off)').argParser(decimal))
    .addOption(new Option('--repeat-last-n <n>', 'window of the repeat penalty (default 64)').argParser(integer(-1)))
    .addOption(new Option('--presence-penalty <p>', 'subtract p from tokens already generated').argParser(decimal))
    .addOption(new Option('--frequency-penalty <f>', 'subtract f × count from tokens already generated').argParser(decimal))
    .addOption(new Option('--seed <s>', 'random seed (same seed → same text)').argParser(integer()))
    .optionsGroup('Options:') as unknown as Command<A, O & SamplingFlags, G>; // restated: see GROUP_TYPES
}

export function samplingParams(flags: SamplingFlags): Partial<SamplingParams> {
  const params: Partial<SamplingParams> = {
    temperature: flags.temp, top_k: flags.topK, top_p: flags.topP, min_p: flags.minP,
    repeat_penalty: flags.repeatPenalty, repeat_last_n: flags.repeatLastN,
    presence_penalty: flags.presencePenalty, frequency_penalty: flags.frequencyPenalty, seed: flags.seed,
  };
  return Object.fromEntries(Object.entries(params).filter(([, value]) => value !== undefined));
}

/** How a command loads its model: compute threads and LoRA adapters. */
export type ModelFlags = {
  threads: number;
  lora?: string[];
  loraScale: number;
};

/** The prompt-tuning adapter to load with the model. */
export type PromptAdapterFlags = {
  promptAdapter?: string;
};

export function withModelLoading<A extends unknown[], O extends OptionValues, G extends OptionValues>(command: Command<A, O, G>): Command<A, O & ModelFlags, G> {
  return command
    .optionsGroup('Model:')
    .addOption(threadsOption())
    .addOption(new Option('--lora <file>', 'apply a LoRA adapter GGUF (repeatable)').argParser(collect))
    .addOption(new Option('--lora-scale <s>', 'scale s of the adapters: y = W·x + s·(alpha/r)·B·A·x').argParser(decimal).default(1))
    .optionsGroup('Options:') as unknown as Command<A, O & ModelFlags, G>;
}

/** --prompt-adapter FILE, for the commands that generate through the engine (which puts the virtual tokens first). */
export function withPromptAdapter<A extends unknown[], O extends OptionValues, G extends OptionValues>(command: Command<A, O, G>): Command<A, O & PromptAdapterFlags, G> {
  return command
    .optionsGroup('Model:')
    .addOption(new Option('--prompt-adapter <file>', 'a prompt-tuning adapter (kiln finetune --prompt-tokens) for its base MODEL'))
    .optionsGroup('Options:') as unknown as Command<A, O & PromptAdapterFlags, G>;
}

export function loadOptions(flags: ModelFlags & PromptAdapterFlags): LoadOptions {
  return {
    backend: createBackend(undefined, flags.threads),
    lora: (flags.lora ?? []).map((path) => ({ path, scale: flags.loraScale })),
    promptAdapter: flags.promptAdapter,
  };
}
