// Choosing a backend by name: `wasm` (WebAssembly SIMD with worker threads, the default) or `reference`
// (plain TypeScript). KILN_BACKEND overrides the default, e.g. to run a test suite against the reference.

import type { Backend } from './backend.js';
import { ReferenceBackend } from './reference.js';
import { WasmBackend } from './wasm.js';

export const BACKEND_NAMES = ['wasm', 'reference'] as const;

export class UnknownBackendError extends Error {
  constructor(name: string) {
    super(`unknown backend "${name}" (known: ${BACKEND_NAMES.join(', ')})`);
    this.name = 'UnknownBackendError';
  }
}

/** A backend by name (default: $KILN_BACKEND, else wasm); `threads` applies to wasm. */
export function createBackend(name = process.env.KILN_BACKEND || 'wasm', threads?: number): Backend {
  if (name === 'wasm') return new WasmBackend({ threads });
  if (name === 'reference') return new ReferenceBackend();
  throw new UnknownBackendError(name);
}
