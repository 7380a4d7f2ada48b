// A GGUF file opened for use: its header plus the bytes of every tensor, kept in their stored (block) format.

import { openSync, readSync, closeSync } from 'node:fs';
import { readGGUFHeader, parseGGUF } from './reader.js';
import { GGUFError, type GGUFHeader, type GGUFTensorInfo } from './types.js';
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

/** Opens a GGUF file and reads its tensor data into memory. */
export function loadGGUF(path: string): GGUFModelFile {
  const header = readGGUFHeader(path);
  const length = header.fileSize - header.dataOffset;
  const data = new Uint8Array(Math.max(0, length));
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, data, done, Math.min(length - done, 1 << 30), header.dataOffset + done);
      if (n === 0) throw new GGUFError('TRUNCATED', `${path} ended while reading tensor data`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return new GGUFModelFile(path, header, data);
}

/** Wraps a GGUF file already in memory. */
export function ggufFromBytes(bytes: Uint8Array, name = '<memory>'): GGUFModelFile {
  const header = parseGGUF(bytes);
  return new GGUFModelFile(name, header, bytes.subarray(header.dataOffset));
}
