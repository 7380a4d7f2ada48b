// What differs between Node and a web page, behind one small interface: reading a model file in slices, hashing
// prefix-cache keys, the kernels' WebAssembly build, starting kernel threads, the core count. Everything above it is shared. node.ts is
// the implementation by default; the browser bundle (web/build.mjs) puts browser.ts in its place.

/** A file opened for reading at any offset: a path on disk (Node) or a Blob the user chose (browser). */
export interface RandomAccessFile {
  /** the path or file name, for messages */
  readonly name: string;
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `into` at `at`; returns how many (0 at the end of the file). */
  read(into: Uint8Array, at: number, length: number, position: number): number;
  close(): void;
}

/** A kernel thread of the pool (src/kernels/thread-pool.ts) running wasm/pool-worker.mjs. */
export interface KernelThread {
  /** a message to the thread: first the pool's setup, then memories to adopt */
  post(message: unknown): void;
  /** resolves once the thread runs without its maker yielding to its event loop; rejects if it cannot start */
  readonly started: Promise<void>;
}

/** Where a model comes from: a path, or (in a page) the File the user chose. */
export type FileSource = string | Blob;

export interface Platform {
  openFile(source: FileSource): RandomAccessFile;
  /** SHA-256 of the concatenated parts, base64 (synchronous: the block manager hashes inside a step) */
  sha256(parts: readonly Uint8Array[]): string;
  /** the kernels' WebAssembly build by file name (kernels-simd.wasm, kernels-relaxed.wasm) */
  kernelBinary(name: string): Uint8Array;
  /** a new kernel thread (worker_threads in Node, a Web Worker in a page) that never keeps the process alive */
  startKernelThread(): KernelThread;
  /** threads worth running by default */
  cores(): number;
}

export class PlatformError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlatformError';
  }
}

/** The name of a file source, for messages. */
export function sourceName(source: FileSource): string {
  return typeof source === 'string' ? source : (source as Blob & { name?: string }).name ?? '<blob>';
}
