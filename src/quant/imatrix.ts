// Importance matrices (llama-imatrix output) as llama-quantize reads them: per weight matrix, the mean squared
// activation of each input column. Two file formats:
//   legacy .dat: i32 n_entries, then per entry: i32 name_len | name | i32 ncall | i32 nval | f32 values[nval]
//                (sums over ncall calls: divided by ncall here); optionally i32 last_call | i32 len | dataset name.
//   GGUF:        per matrix NAME, tensors NAME.in_sum2 (F32 [n, n_mat]) and NAME.counts (F32 [1, n_mat]);
//                value = in_sum2 / count, or 1 where a matrix never saw input; metadata imatrix.chunk_count,
//                imatrix.datasets.

import { readFileSync } from 'node:fs';
import { ggufFromBytes } from '../gguf/model-file.js';
import { getArray, getNumber } from '../gguf/metadata.js';
import { GGMLType } from '../tensor/ggml-type.js';
import { f32 } from './float32-math.js';

export class ImatrixError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImatrixError';
  }
}

export interface Imatrix {
  /** weight tensor name → column importances (ne[0] values, times the number of experts for 3-D tensors) */
  entries: Map<string, Float32Array>;
  /** calibration data set name(s), when recorded */
  dataset?: string;
  /** chunks the statistics were collected over (0 when unknown) */
  chunkCount: number;
}

export function readImatrix(path: string): Imatrix {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ImatrixError(`cannot read imatrix ${path}: ${(e as Error).message}`);
  }
  const isGGUF = bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46;
  const imatrix = isGGUF ? parseGGUFImatrix(bytes, path) : parseLegacyImatrix(bytes, path);
  for (const [name, values] of imatrix.entries) {
    if (!values.every(Number.isFinite)) throw new ImatrixError(`imatrix ${path}: entry ${name} contains non-finite values`);
  }
  return imatrix;
}

function parseLegacyImatrix(bytes: Uint8Array, path: string): Imatrix {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const need = (n: number, what: string) => {
    if (n < 0 || pos + n > bytes.length) throw new ImatrixError(`imatrix ${path} is truncated or malformed (${what} at byte ${pos})`);
  };
  const i32 = (what: string) => { need(4, what); const v = view.getInt32(pos, true); pos += 4; return v; };
  const text = (n: number, what: string) => { need(n, what); const s = new TextDecoder().decode(bytes.subarray(pos, pos + n)); pos += n; return s; };

  const nEntries = i32('entry count');
  if (nEntries < 1) throw new ImatrixError(`imatrix ${path}: no entries (or not an imatrix file)`);
  const entries = new Map<string, Float32Array>();
  for (let e = 0; e < nEntries; e++) {
    const name = text(i32('name length'), 'name');
    const ncall = i32('call count');
    const nval = i32('value count');
    if (nval < 1) throw new ImatrixError(`imatrix ${path}: entry ${name} has ${nval} values`);
    need(4 * nval, `values of ${name}`);
    const values = new Float32Array(nval);
    for (let i = 0; i < nval; i++) values[i] = view.getFloat32(pos + 4 * i, true);
    pos += 4 * nval;
    if (ncall > 0) for (let i = 0; i < nval; i++) values[i] = f32(values[i] / ncall);
    entries.set(name, values);
  }
  let chunkCount = 0;
  let dataset: string | undefined;
  if (pos < bytes.length) {
    chunkCount = i32('chunk count');
    dataset = text(i32('dataset name length'), 'dataset name');
  }
  return { entries, dataset, chunkCount };
}

function parseGGUFImatrix(bytes: Uint8Array, path: string): Imatrix {
  const file = ggufFromBytes(bytes, path);
  const entries = new Map<string, Float32Array>();
  for (const info of file.tensorInfos) {
    if (!info.name.endsWith('.in_sum2')) continue;
    const name = info.name.slice(0, -'.in_sum2'.length);
    const sums = file.tensor(info.name);
    const counts = file.optionalTensor(`${name}.counts`);
    if (!counts) throw new ImatrixError(`imatrix ${path}: ${name}.in_sum2 has no ${name}.counts`);
    if (sums.type !== GGMLType.F32 || counts.type !== GGMLType.F32) throw new ImatrixError(`imatrix ${path}: ${name} is not F32`);
    const n = sums.dims[0], nMat = sums.dims[1] ?? 1;
    const countValues = floats(counts.data);
    if (countValues.length !== nMat) throw new ImatrixError(`imatrix ${path}: ${name}.counts has ${countValues.length} values for ${nMat} matrices`);
    const sumValues = floats(sums.data);
    const values = new Float32Array(n * nMat);
    for (let m = 0; m < nMat; m++) {
      const count = countValues[m];
      for (let i = 0; i < n; i++) values[m * n + i] = count > 0 ? f32(sumValues[m * n + i] / count) : 1;
    }
    entries.set(name, values);
  }
  if (entries.size === 0) throw new ImatrixError(`imatrix ${path}: no *.in_sum2 tensors`);
  const datasets = getArray<string>(file.metadata, 'imatrix.datasets');
  return { entries, dataset: datasets?.join(', '), chunkCount: getNumber(file.metadata, 'imatrix.chunk_count') ?? 0 };
}

/** Little-endian float32 values of a byte range (copied into a new buffer, so any alignment works). */
function floats(data: Uint8Array): Float32Array {
  return new Float32Array(new Uint8Array(data).buffer);
}
