// Architectures kiln can run, by `general.architecture`.

import type { Architecture } from './architecture.js';
import { llama } from './llama.js';
import { qwen2 } from './qwen2.js';

const ARCHITECTURES: readonly Architecture[] = [llama, qwen2];

export class UnsupportedArchitectureError extends Error {
  constructor(readonly arch: string) {
    super(`architecture "${arch}" is not supported (supported: ${ARCHITECTURES.flatMap((a) => a.names).join(', ')})`);
    this.name = 'UnsupportedArchitectureError';
  }
}

export function findArchitecture(arch: string): Architecture {
  const found = ARCHITECTURES.find((a) => a.names.includes(arch));
  if (!found) throw new UnsupportedArchitectureError(arch);
  return found;
}
