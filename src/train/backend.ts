// The backend training computes on (src/kernels/backend.ts TrainingBackend): the WebAssembly kernels on the thread
// pool inference uses, or the reference backend where KILN_BACKEND=reference. Its memory holds training's tensors:
// `allocFloats` gives them, a training step takes a mark and releases its activations back to it.

import type { TrainingBackend } from '../kernels/backend.js';
import { ReferenceTrainingBackend } from '../kernels/reference-training.js';
import { WasmTrainingBackend } from '../kernels/wasm-training.js';

/** Threads training may use at most. */
export const MAX_TRAINING_THREADS = 16;

/** one backend per thread count (tensors made under one stay valid after a change: the others copy them in) */
const backends = new Map<number, TrainingBackend>();
let current: TrainingBackend | undefined;

/** The backend training ops run on (one thread until `setTrainingThreads`). */
export function trainingBackend(): TrainingBackend {
  return (current ??= backendFor(1));
}

function backendFor(threads: number): TrainingBackend {
  let backend = backends.get(threads);
  if (!backend) {
    backend = process.env.KILN_BACKEND === 'reference' ? new ReferenceTrainingBackend() : new WasmTrainingBackend({ threads });
    backends.set(threads, backend);
  }
  return backend;
}

/** Number of threads training's kernels use (this one plus pool workers). */
export function setTrainingThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_TRAINING_THREADS) throw new RangeError(`threads must be an integer in 1..${MAX_TRAINING_THREADS}, got ${n}`);
  current = backendFor(n);
}

/** `n` floats (zeroed unless `zero` is false) in the training backend's memory, valid until `releaseFloats` to an earlier mark. */
export function allocFloats(n: number, zero = true): Float32Array {
  return trainingBackend().allocFloats(n, zero);
}

/** The allocation mark to release back to. */
export function floatsMark(): number {
  return trainingBackend().floatsMark();
}

export function releaseFloats(mark: number): void {
  trainingBackend().releaseFloats(mark);
}
