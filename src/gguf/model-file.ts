// A GGUF file opened for use: its header plus the bytes of every tensor, kept in their stored (block) format.

import { readHeader, parseGGUF, readFully } from './reader.js';
import { platform, type FileSource } from '../platform/index.js';
import { sourceName } from '../platform/platform.js';
import { type GGUFHeader, type GGUFTensorInfo } from './types.js';
import type { WeightTensor } from '../tensor/tensor.js';

export class MissingTensorError extends Error {
  constructor(readonly tensorName: string, readonly file: string) {
    super(`tensor "${tensorName}" is missing from ${file}`);
    this.name = 'MissingTensorError';
  }
}

export class GGUFModelFile {
  private readonly byName: Map<string, GGUFTensorInfo>;

  constructor(
    readonly path: string,
    readonly header: GGUFHeader,
    /** the data section: tensor i lives at [info.offset, info.offset + info.nBytes) */
    readonly data: Uint8Array,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  get metadata() { return this.header.metadata; }
  get tensorInfos(): readonly GGUFTensorInfo[] { return this.header.tensors; }

  has(name: string): boolean { return this.byName.has(name); }

  /** The tensor named `name`, its bytes a view into the data section (no copy). */
  tensor(name: string): WeightTensor {
    const info = this.byName.get(name);
    if (!info) throw new MissingTensorError(name, this.path);
    return { name, type: info.type, dims: info.dims, data: this.data.subarray(info.offset, info.offset + info.nBytes) };
  }

  optionalTensor(name: string): WeightTensor | undefined {
    return this.has(name) ? this.tensor(name) : undefined;
  }
}

/** Reads one tensor's bytes into `into` at `at` (from a GGUF's data section, or a safetensors shard). */
export type TensorReader = (info: GGUFTensorInfo, into: Uint8Array, at: number) => void;

/** Puts a model's tensors somewhere and wraps them: by default one array in memory; a backend may use its own. */
export type TensorPlacer = (path: string, header: GGUFHeader, read: TensorReader) => GGUFModelFile;

/** Places every tensor at its offset of one array in memory. */
export const placeInMemory: TensorPlacer = (path, header, read) => {
  const data = new Uint8Array(header.tensors.reduce((end, t) => Math.max(end, t.offset + t.nBytes), 0));
  for (const info of header.tensors) read(info, data, info.offset);
  return new GGUFModelFile(path, header, data);
};

/** Opens a GGUF file (a path, or a Blob in a page) and reads its tensor data into memory (or where `place` puts it). */
export function loadGGUF(source: FileSource, place: TensorPlacer = placeInMemory): GGUFModelFile {
  const file = platform.openFile(source);
  try {
    const header = readHeader(file);
    return place(sourceName(source), header, (info, into, at) => readFully(file, into, at, info.nBytes, header.dataOffset + info.offset));
  } finally {
    file.close();
  }
}

/** Wraps a GGUF file already in memory. */
export function ggufFromBytes(bytes: Uint8Array, name = '<memory>'): GGUFModelFile {
  const header = parseGGUF(bytes);
  return new GGUFModelFile(name, header, bytes.subarray(header.dataOffset));
}
