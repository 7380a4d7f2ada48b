// Loads a model's tensors straight into WebAssembly memory: each tensor is read (from a GGUF file or a safetensors
// shard) into an arena at a 64-byte aligned address, in its stored block format, and WeightTensor.data is a view of
// those bytes (no other copy exists). Tensors are placed in file order (layer by layer); when an arena cannot take
// the next tensor a new one is started, so models larger than one 4 GiB wasm32 memory load as several arenas.

import { GGUFModelFile, loadGGUF, MissingTensorError, type TensorReader } from '../gguf/model-file.js';
import { GGUFError, type GGUFHeader, type GGUFTensorInfo } from '../gguf/types.js';
import type { WeightTensor } from '../tensor/tensor.js';
import { ALIGN, SPARE, type Arena } from './arena.js';

/** Bytes kept free in every arena for the scratch of ops (activations of a long prefill). */
export const SCRATCH_RESERVE = 512 * 1024 * 1024;

export interface ArenaHost {
  readonly memories: readonly Arena[];
  newArena(): Arena;
}

/** A GGUF file whose tensor bytes live in WebAssembly memories. */
export class ArenaModelFile extends GGUFModelFile {
  constructor(path: string, header: GGUFModelFile['header'], private readonly placed: Map<string, { info: GGUFTensorInfo; arena: Arena; address: number }>) {
    super(path, header, new Uint8Array(0));
  }

  override tensor(name: string): WeightTensor {
    const p = this.placed.get(name);
    if (!p) throw new MissingTensorError(name, this.path);
    const data = p.arena.bytes().subarray(p.address, p.address + p.info.nBytes);
    return { name, type: p.info.type, dims: p.info.dims, data };
  }

  /** How many memories hold this file's weights. */
  get arenaCount(): number {
    return new Set([...this.placed.values()].map((p) => p.arena)).size;
  }
}

/** Places every tensor of `header` in the host's arenas (starting with its newest), opening new ones as needed. */
export function placeInArenas(path: string, header: GGUFHeader, read: TensorReader, host: ArenaHost, reserve = SCRATCH_RESERVE): ArenaModelFile {
  const placed = new Map<string, { info: GGUFTensorInfo; arena: Arena; address: number }>();
  let arena = host.memories[host.memories.length - 1];
  for (const info of [...header.tensors].sort((a, b) => a.offset - b.offset)) {
    if (info.nBytes + ALIGN + SPARE > arena.free(reserve)) {
      arena = host.newArena();
      if (info.nBytes + ALIGN + SPARE > arena.free(reserve)) throw new GGUFError('BAD_TENSOR_DATA', `tensor "${info.name}" (${info.nBytes} bytes) is larger than one WebAssembly memory`);
    }
    const address = arena.allocWeights(info.nBytes);
    read(info, arena.bytes(), address);
    placed.set(info.name, { info, arena, address });
  }
  return new ArenaModelFile(path, header, placed);
}

/** Reads every tensor of the GGUF file `path` into the host's arenas. */
export function loadIntoArenas(path: string, host: ArenaHost, reserve = SCRATCH_RESERVE): ArenaModelFile {
  return loadGGUF(path, (p, header, read) => placeInArenas(p, header, read, host, reserve)) as ArenaModelFile;
}
