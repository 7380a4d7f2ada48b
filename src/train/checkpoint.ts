// Training checkpoints: everything needed to continue a run bit-identically. Layout:
//   "KILNCKPT" | u32 header bytes | header JSON (UTF-8, space-padded to a multiple of 4) |
//   f32 data: for each parameter in header order, its value, then AdamW's m, then v.
// Written to a temporary file and renamed over the old checkpoint, so a crash never leaves a torn one.

import { closeSync, fstatSync, openSync, readSync, renameSync, writeFileSync } from 'node:fs';
import type { RngState } from '../generate/rng.js';
import type { ModelShape } from './llama-model.js';
import type { AdamWState } from './optim.js';

const MAGIC = 'KILNCKPT';

export interface LossPoint {
  step: number;
  loss: number;
}

export interface Checkpoint {
  shape: ModelShape;
  /** optimizer steps done */
  step: number;
  /** the data sampler's generator */
  rng: RngState;
  history: { train: LossPoint[]; val: LossPoint[] };
  params: { name: string; dims: readonly number[]; value: Float32Array }[];
  optimizer: AdamWState;
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

interface Header {
  shape: ModelShape;
  step: number;
  rng: RngState;
  history: Checkpoint['history'];
  params: { name: string; dims: number[] }[];
  adamSteps: number;
}

export function writeCheckpoint(path: string, c: Checkpoint): void {
  const header: Header = {
    shape: c.shape, step: c.step, rng: c.rng, history: c.history,
    params: c.params.map((p) => ({ name: p.name, dims: [...p.dims] })), adamSteps: c.optimizer.t,
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((4 - (Buffer.byteLength(json) % 4)) % 4);
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(Buffer.byteLength(json), 8);
  const arrays = c.params.flatMap((p, i) => [p.value, c.optimizer.m[i], c.optimizer.v[i]]);
  const parts = [head, Buffer.from(json), ...arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))];
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, Buffer.concat(parts));
  renameSync(tmp, path);
}

export function readCheckpoint(path: string): Checkpoint {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(12);
    if (size < 12 || readSync(fd, head, 0, 12, 0) !== 12 || head.toString('latin1', 0, 8) !== MAGIC) {
      throw new CheckpointError(`${path} is not a kiln training checkpoint`);
    }
    const headerBytes = head.readUInt32LE(8);
    if (headerBytes > size - 12) throw new CheckpointError(`${path}: header of ${headerBytes} bytes overruns the file`);
    const json = Buffer.alloc(headerBytes);
    readSync(fd, json, 0, headerBytes, 12);
    let header: Header;
    try {
      header = JSON.parse(json.toString('utf8')) as Header;
    } catch (e) {
      throw new CheckpointError(`${path}: bad header (${(e as Error).message})`);
    }
    // the data must be exactly three f32 arrays per parameter
    const counts = header.params.map((p) => p.dims.reduce((a, b) => a * b, 1));
    const floats = 3 * counts.reduce((a, b) => a + b, 0);
    if (!Number.isSafeInteger(floats) || 12 + headerBytes + 4 * floats !== size) {
      throw new CheckpointError(`${path}: ${size} bytes, but its header describes ${12 + headerBytes + 4 * floats}`);
    }
    let offset = 12 + headerBytes;
    const next = (n: number): Float32Array => {
      const a = new Float32Array(n);
      readSync(fd, new Uint8Array(a.buffer), 0, 4 * n, offset);
      offset += 4 * n;
      return a;
    };
    const params: Checkpoint['params'] = [];
    const optimizer: AdamWState = { t: header.adamSteps, m: [], v: [] };
    header.params.forEach((p, i) => {
      params.push({ name: p.name, dims: p.dims, value: next(counts[i]) });
      optimizer.m.push(next(counts[i]));
      optimizer.v.push(next(counts[i]));
    });
    return { shape: header.shape, step: header.step, rng: header.rng, history: header.history, params, optimizer };
  } finally {
    closeSync(fd);
  }
}
