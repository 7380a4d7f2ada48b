// The safetensors format (https://github.com/huggingface/safetensors):
//   u64 header length N | N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"?}
//   | the data section; a tensor's bytes are [8 + N + begin, 8 + N + end), row-major, outermost dimension first.
// Every number in the header is checked against the file before it is used: dtype known, shape entries safe
// integers whose product times the dtype size equals end − begin, offsets inside the data section, no overlaps.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { GGMLType } from '../tensor/ggml-type.js';

export type HFErrorCode =
  | 'IO' | 'TRUNCATED' | 'BAD_HEADER' | 'BAD_DTYPE' | 'BAD_SHAPE' | 'TENSOR_OUT_OF_BOUNDS' | 'OVERLAPPING_TENSORS'
  | 'MISSING_SHARD' | 'MISSING_FILE' | 'BAD_CONFIG' | 'CONFIG_MISMATCH' | 'UNKNOWN_ARCHITECTURE' | 'UNKNOWN_TENSOR'
  | 'BAD_TOKENIZER' | 'MISSING_TENSOR';

/** A problem in a Hugging Face folder: `file` is the file, `field` the header entry or config key at fault. */
export class HFError extends Error {
  constructor(readonly code: HFErrorCode, readonly file: string, readonly field: string, message: string) {
    super(`${file}: ${field ? `"${field}" ` : ''}${message}`);
    this.name = 'HFError';
  }
}

/** safetensors dtypes kiln reads, as the ggml type that stores the same bytes */
export const DTYPES: Record<string, GGMLType> = { F32: GGMLType.F32, F16: GGMLType.F16, BF16: GGMLType.BF16 };
const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
/** the header's length is capped (as the safetensors crate caps it at 100 MB) before it is read */
const MAX_HEADER_BYTES = 100_000_000;
const MAX_DIMS = 4;

export interface SafetensorsTensor {
  /** the name in the checkpoint (Hugging Face's) */
  name: string;
  type: GGMLType;
  /** row-major shape, outermost first (as PyTorch) */
  shape: number[];
  /** absolute byte range in the file */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
}

function readExactly(fd: number, path: string, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let done = 0; done < length;) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new HFError('TRUNCATED', path, '', `ended at byte ${position + done} while ${length} bytes at ${position} were read`);
    done += n;
  }
  return out;
}

/** Reads and checks the header of the safetensors file at `path` (no tensor data is read). */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new HFError('IO', path, '', `cannot be opened: ${(e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new HFError('TRUNCATED', path, 'header length', `has ${size} bytes, fewer than the 8 of the header length`);
    const length = new DataView(readExactly(fd, path, 0, 8).buffer).getBigUint64(0, true);
    if (length > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
      throw new HFError(length > BigInt(MAX_HEADER_BYTES) ? 'BAD_HEADER' : 'TRUNCATED', path, 'header length',
        `is ${length} bytes, but the file has ${size - 8} after it${length > BigInt(MAX_HEADER_BYTES) ? ` (the limit is ${MAX_HEADER_BYTES})` : ''}`);
    }
    return parseSafetensorsHeader(path, readExactly(fd, path, 8, Number(length)), size);
  } finally {
    closeSync(fd);
  }
}

/** Checks a header's JSON bytes against a file of `fileSize` bytes. */
export function parseSafetensorsHeader(path: string, json: Uint8Array, fileSize: number): SafetensorsHeader {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new HFError('BAD_HEADER', path, 'header', `is not UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new HFError('BAD_HEADER', path, 'header', 'is not a JSON object');
  const dataStart = 8 + json.length;
  const dataBytes = fileSize - dataStart;
  const tensors: SafetensorsTensor[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(doc as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(path, entry);
      continue;
    }
    const t = tensorEntry(path, name, entry);
    if (t.end > dataBytes) {
      throw new HFError('TENSOR_OUT_OF_BOUNDS', path, name, `data_offsets [${t.begin}, ${t.end}) lie beyond the ${dataBytes} bytes of the data section`);
    }
    tensors.push({ ...t, begin: dataStart + t.begin, end: dataStart + t.end });
  }
  const byOffset = [...tensors].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byOffset.length; i++) {
    const [prev, cur] = [byOffset[i - 1], byOffset[i]];
    if (prev.end > cur.begin) throw new HFError('OVERLAPPING_TENSORS', path, cur.name, `overlaps "${prev.name}" at data offset ${cur.begin - dataStart}`);
  }
  return { path, tensors, metadata };
}

function checkMetadata(path: string, entry: unknown): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry) || Object.values(entry).some((v) => typeof v !== 'string')) {
    throw new HFError('BAD_HEADER', path, '__metadata__', 'must map strings to strings');
  }
  return entry as Record<string, string>;
}

/** One header entry, its offsets relative to the data section. */
function tensorEntry(path: string, name: string, entry: unknown): SafetensorsTensor {
  if (typeof entry !== 'object' || entry === null) throw new HFError('BAD_HEADER', path, name, 'is not an object with dtype, shape and data_offsets');
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in DTYPES)) {
    throw new HFError('BAD_DTYPE', path, name, `has dtype ${JSON.stringify(dtype)}; kiln reads ${Object.keys(DTYPES).join(', ')}`);
  }
  if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new HFError('BAD_SHAPE', path, name, `shape ${JSON.stringify(shape)} is not a list of at most ${MAX_DIMS} non-negative integers`);
  }
  const count = (shape as number[]).reduce((a, d) => a * d, 1);
  const bytes = count * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(bytes)) throw new HFError('BAD_SHAPE', path, name, `shape [${shape.join(', ')}] is absurdly large`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
    throw new HFError('BAD_HEADER', path, name, `data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 ≤ begin ≤ end`);
  }
  const [begin, end] = offsets as number[];
  if (end - begin !== bytes) {
    throw new HFError('BAD_SHAPE', path, name, `data_offsets span ${end - begin} bytes, but ${dtype} [${shape.join(', ')}] takes ${bytes}`);
  }
  return { name, type: DTYPES[dtype], shape: shape as number[], begin, end };
}

export interface SafetensorsInput {
  name: string;
  /** F32, F16 or BF16 */
  type: GGMLType;
  shape: readonly number[];
  data: Uint8Array;
}

/** A safetensors file holding `tensors` in the given order (the header padded with spaces to 8 bytes, as the crate does). */
export function safetensorsBytes(tensors: readonly SafetensorsInput[], metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const dtype = Object.keys(DTYPES).find((d) => DTYPES[d] === t.type);
    if (dtype === undefined) throw new RangeError(`tensor "${t.name}": safetensors cannot hold ggml type ${t.type}`);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let at = 8 + jsonBytes.length;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}
