// GGUF files that are not models but adapters of one (general.type = adapter): a LoRA adapter (llama.cpp's format)
// or kiln's prompt-tuning adapter. Given where a model is expected, they get an error that says what they are and
// how to use them, instead of one about metadata a model would have.

import { getString, type Metadata } from './metadata.js';

export class AdapterAsModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterAsModelError';
  }
}

/** How an adapter of each adapter.type is applied: the `kiln run` option and the `LLM` option. */
const HOW_TO_APPLY: Record<string, { what: string; flag: string; option: string }> = {
  lora: { what: 'a LoRA adapter', flag: '--lora', option: 'lora: [{ path, scale: 1 }]' },
  prompt_tuning: { what: 'a prompt-tuning adapter', flag: '--prompt-adapter', option: 'promptAdapter: path' },
};

/** Throws an AdapterAsModelError when `meta` describes an adapter rather than a model. */
export function checkIsModel(meta: Metadata, path: string): void {
  if (getString(meta, 'general.type') !== 'adapter') return;
  const type = getString(meta, 'adapter.type') ?? 'unknown';
  const arch = getString(meta, 'general.architecture');
  const how = HOW_TO_APPLY[type];
  const base = `its base model${arch ? ` (a ${arch} model)` : ''}`;
  if (!how) throw new AdapterAsModelError(`${path} is an adapter (adapter.type = ${type}), not a model`);
  throw new AdapterAsModelError(
    `${path} is ${how.what}, not a model: use ${how.flag} ${path} with ${base}, e.g. kiln run BASE.gguf ${how.flag} ${path} (in TypeScript: new LLM({ model: 'BASE.gguf', ${how.option} }))`,
  );
}
