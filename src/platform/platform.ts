// What differs between Node and a web page, behind one small interface: reading a model file in slices, hashing
// prefix-cache keys, the kernels' WebAssembly build, the core count. Everything above it is shared. node.ts is
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

/** Where a model comes from: a path, or (in a page) the File the user chose. */
export type FileSource = string | Blob;

export interface Platform {
  openFile(source: FileSource): RandomAccessFile;
  /** SHA-256 of the concatenated parts, base64 (synchronous: the block manager hashes inside a step) */
  sha256(parts: readonly Uint8Array[]): string;
  /** the kernels' WebAssembly build by file name (kernels-simd.wasm, kernels-relaxed.wasm) */
  kernelBinary(name: string): Uint8Array;
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
