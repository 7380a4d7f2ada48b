// An arena: one shared WebAssembly memory (at most 4 GiB) holding weights that stay put and, above them, the
// scratch of the op in progress (activations, quantized activations, outputs), reset after every op.
// Layout: first page: [0, 64) job counter, then the kernels' static data (rewritten whenever an instance is
// created) | [64 KiB, 320 KiB) the kernels' f16 table | [320 KiB, 576 KiB) their gelu table (filled by the backend
// where it runs gelu) | [576 KiB, weightsTop) weights, 64-byte aligned | [weightsTop, …) scratch.

import { MAX_PAGES, PAGE, RESERVED_PAGES, newSharedMemory, type KernelExports } from './wasm-module.js';

/** Byte address of the atomic work counter that pooled kernels claim rows from. */
export const COUNTER = 0;
/** Where weights start: after the kernels' reserved area. */
export const WEIGHTS_START = RESERVED_PAGES * PAGE;
export const ALIGN = 64;
/** Spare bytes after the weights: SIMD kernels read a little past a row's end, and decode kernels touch 384 bytes ahead. */
export const SPARE = 512;

export class ArenaFullError extends Error {
  constructor(bytes: number) {
    super(`a WebAssembly memory cannot hold ${bytes} more bytes (4 GiB limit)`);
    this.name = 'ArenaFullError';
  }
}

/** Which arena a buffer belongs to: every SharedArrayBuffer handed out by an arena's `bytes()` is registered. */
const owners = new WeakMap<ArrayBufferLike, Arena>();

export function arenaOf(view: ArrayBufferView): Arena | undefined {
  return owners.get(view.buffer);
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export class Arena {
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
  private weightsTop = WEIGHTS_START;
  private scratchTop = WEIGHTS_START;

  /** this memory's index in the thread pool (set when the pool adopts it) */
  index = -1;

  constructor(module: WebAssembly.Module) {
    this.memory = newSharedMemory(1);
    this.exports = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as KernelExports;
    this.memory.grow(WEIGHTS_START / PAGE - 1);
    if (this.exports.reserved_end() !== WEIGHTS_START) throw new Error('the kernels reserve a different area than the arena expects');
    this.exports.init_tables();
  }

  /** Bytes still free for weights, keeping `reserve` for scratch. */
  free(reserve: number): number {
    return MAX_PAGES * PAGE - this.weightsTop - reserve;
  }

  /** A view of the whole memory as it is now (views stay valid when it grows; new bytes need a new view). */
  bytes(): Uint8Array {
    const buffer = this.memory.buffer;
    if (!owners.has(buffer)) owners.set(buffer, this);
    return new Uint8Array(buffer);
  }

  /** The whole memory as f32 and i32 values (element i at byte 4·i), made again only after the memory grows. */
  floats(): Float32Array<ArrayBufferLike> {
    return this.views().f32;
  }

  ints(): Int32Array<ArrayBufferLike> {
    return this.views().i32;
  }

  private cached: { buffer?: ArrayBufferLike; f32: Float32Array<ArrayBufferLike>; i32: Int32Array<ArrayBufferLike> } = { f32: new Float32Array(0), i32: new Int32Array(0) };

  private views(): { f32: Float32Array<ArrayBufferLike>; i32: Int32Array<ArrayBufferLike> } {
    const buffer = this.memory.buffer;
    if (this.cached.buffer !== buffer) this.cached = { buffer, f32: new Float32Array(buffer), i32: new Int32Array(buffer) };
    if (!owners.has(buffer)) owners.set(buffer, this);
    return this.cached;
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    if (have / PAGE + pages > MAX_PAGES) throw new ArenaFullError(end - have);
    this.memory.grow(pages);
  }

  /** Reserves `bytes` for weights (permanently); returns the address. Only between ops. */
  allocWeights(bytes: number): number {
    const at = alignUp(this.weightsTop, ALIGN);
    this.ensure(at + bytes + SPARE);
    this.weightsTop = at + bytes + SPARE;
    this.scratchTop = this.weightsTop;
    return at;
  }

  /** Where the weights end now: a mark that `releaseWeights` frees back to (training's activations come and go). */
  weightsMark(): number {
    return this.weightsTop;
  }

  /** Frees the weights reserved after `mark` (and the scratch). Only between ops. */
  releaseWeights(mark: number): void {
    this.weightsTop = this.scratchTop = mark;
  }

  /** Reserves `bytes` of scratch for the op in progress; released by `releaseScratch`. */
  scratch(bytes: number): number {
    const at = alignUp(this.scratchTop, ALIGN);
    this.ensure(at + bytes + ALIGN);
    this.scratchTop = at + bytes;
    return at;
  }

  releaseScratch(): void {
    this.scratchTop = this.weightsTop;
  }
}
