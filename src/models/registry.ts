// Architectures kiln can run, by `general.architecture`.

import type { Architecture } from './architecture.js';
import { llama } from './llama.js';
import { qwen2 } from './qwen2.js';
import { gpt2 } from './gpt2.js';
import { bert } from './bert.js';
import { gemma2 } from './gemma2.js';
import { phi3 } from './phi3.js';
import { deepseek2 } from './deepseek2.js';

export const ARCHITECTURES: readonly Architecture[] = [llama, qwen2, gpt2, bert, gemma2, phi3, deepseek2];

/** every `general.architecture` name kiln runs */
export const SUPPORTED_ARCHITECTURES: readonly string[] = ARCHITECTURES.flatMap((a) => a.names);

export class UnsupportedArchitectureError extends Error {
  constructor(readonly arch: string) {
    super(`architecture "${arch}" is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`);
    this.name = 'UnsupportedArchitectureError';
  }
}

export function findArchitecture(arch: string): Architecture {
  const found = ARCHITECTURES.find((a) => a.names.includes(arch));
  if (!found) throw new UnsupportedArchitectureError(arch);
  return found;
}
