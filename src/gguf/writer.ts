// Writes GGUF files (layout in ./types.ts) the way llama.cpp lays them out: header, metadata in map order,
// tensor infos whose offsets are assigned in order, zero padding to `general.alignment`, then the data section
// where every tensor is followed by zero bytes up to the next multiple of the alignment.
// Everything the writer emits is checked the way the reader checks it, so a written file always reads back.

import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { isKnownType, type GGMLType } from '../tensor/ggml-type.js';
import { tensorSize } from './reader.js';
import {
  GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_ARRAY_NESTING, GGUF_MAX_DIMS, GGUFError, GGUFValueType,
  type GGUFScalar, type GGUFValue,
} from './types.js';

export interface GGUFTensorInput {
  name: string;
  /** ggml `ne`, fastest-varying dimension first */
  dims: readonly number[];
  type: GGMLType;
  /** the tensor's bytes in its stored (block) format */
  data: Uint8Array;
}

export interface GGUFWriteInput {
  /** 2 or 3 (the default); both share one layout */
  version?: number;
  metadata: ReadonlyMap<string, GGUFValue>;
  tensors: readonly GGUFTensorInput[];
  /** when given and not the default 32, `general.alignment` is added to the metadata (it must agree if present) */
  alignment?: number;
}

export interface WriteGGUFOptions {
  /** called after every chunk written */
  onProgress?: (bytesWritten: number, totalBytes: number) => void;
}

// ---- metadata value constructors ----

export const metaU8 = (value: number): GGUFValue => ({ type: GGUFValueType.UINT8, value });
export const metaI8 = (value: number): GGUFValue => ({ type: GGUFValueType.INT8, value });
export const metaU16 = (value: number): GGUFValue => ({ type: GGUFValueType.UINT16, value });
export const metaI16 = (value: number): GGUFValue => ({ type: GGUFValueType.INT16, value });
export const metaU32 = (value: number): GGUFValue => ({ type: GGUFValueType.UINT32, value });
export const metaI32 = (value: number): GGUFValue => ({ type: GGUFValueType.INT32, value });
export const metaU64 = (value: number | bigint): GGUFValue => ({ type: GGUFValueType.UINT64, value: BigInt(value) });
export const metaI64 = (value: number | bigint): GGUFValue => ({ type: GGUFValueType.INT64, value: BigInt(value) });
export const metaF32 = (value: number): GGUFValue => ({ type: GGUFValueType.FLOAT32, value });
export const metaF64 = (value: number): GGUFValue => ({ type: GGUFValueType.FLOAT64, value });
export const metaBool = (value: boolean): GGUFValue => ({ type: GGUFValueType.BOOL, value });
export const metaString = (value: string): GGUFValue => ({ type: GGUFValueType.STRING, value });
/** An array of scalars of `itemType`, or (itemType ARRAY) an array of arrays built with metaArray. */
export const metaArray = (itemType: GGUFValueType, values: GGUFScalar[] | GGUFValue[]): GGUFValue =>
  ({ type: GGUFValueType.ARRAY, itemType, value: values });

// ---- header encoding ----

const utf8 = new TextEncoder();

/** A growable little-endian byte buffer. */
class ByteWriter {
  private bytes = new Uint8Array(1 << 16);
  private view = new DataView(this.bytes.buffer);
  length = 0;

  /** Makes room for `n` more bytes; returns where they start (call it before touching `view`, which it may replace). */
  private grow(n: number): number {
    const at = this.length;
    if (at + n > this.bytes.length) {
      const bigger = new Uint8Array(Math.max(2 * this.bytes.length, at + n));
      bigger.set(this.bytes.subarray(0, at));
      this.bytes = bigger;
      this.view = new DataView(bigger.buffer);
    }
    this.length += n;
    return at;
  }

  u8(v: number): void { const i = this.grow(1); this.view.setUint8(i, v); }
  i8(v: number): void { const i = this.grow(1); this.view.setInt8(i, v); }
  u16(v: number): void { const i = this.grow(2); this.view.setUint16(i, v, true); }
  i16(v: number): void { const i = this.grow(2); this.view.setInt16(i, v, true); }
  u32(v: number): void { const i = this.grow(4); this.view.setUint32(i, v, true); }
  i32(v: number): void { const i = this.grow(4); this.view.setInt32(i, v, true); }
  f32(v: number): void { const i = this.grow(4); this.view.setFloat32(i, v, true); }
  f64(v: number): void { const i = this.grow(8); this.view.setFloat64(i, v, true); }
  u64(v: bigint): void { const i = this.grow(8); this.view.setBigUint64(i, v, true); }
  i64(v: bigint): void { const i = this.grow(8); this.view.setBigInt64(i, v, true); }
  raw(b: Uint8Array): void { const at = this.grow(b.length); this.bytes.set(b, at); }
  /** u64 byte length + UTF-8 bytes */
  string(s: string, what: string): void {
    // a lone UTF-16 surrogate has no UTF-8 form (TextEncoder would silently write U+FFFD instead)
    if (/\p{Surrogate}/u.test(s)) throw new GGUFError('BAD_STRING', `${what} contains a lone UTF-16 surrogate`);
    const b = utf8.encode(s);
    this.u64(BigInt(b.length));
    this.raw(b);
  }
  zeros(n: number): void { const at = this.grow(n); this.bytes.fill(0, at, at + n); }
  result(): Uint8Array { return this.bytes.subarray(0, this.length); }
}

function badValue(what: string, expected: string, value: unknown): GGUFError {
  const got = typeof value === 'bigint' ? `${value}n` : typeof value === 'object' ? 'an object' : JSON.stringify(value);
  return new GGUFError('BAD_VALUE_TYPE', `${what}: expected ${expected}, got ${got}`);
}

function intIn(value: GGUFScalar, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw badValue(what, `an integer in [${min}, ${max}]`, value);
  return value;
}

function bigIntIn(value: GGUFScalar, min: bigint, max: bigint, what: string): bigint {
  const v = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value;
  if (typeof v !== 'bigint' || v < min || v > max) throw badValue(what, `an integer in [${min}, ${max}]`, value);
  return v;
}

function float(value: GGUFScalar, what: string): number {
  if (typeof value !== 'number') throw badValue(what, 'a number', value);
  return value;
}

function writeScalar(w: ByteWriter, type: GGUFValueType, value: GGUFScalar, what: string): void {
  switch (type) {
    case GGUFValueType.UINT8: return w.u8(intIn(value, 0, 0xff, what));
    case GGUFValueType.INT8: return w.i8(intIn(value, -0x80, 0x7f, what));
    case GGUFValueType.UINT16: return w.u16(intIn(value, 0, 0xffff, what));
    case GGUFValueType.INT16: return w.i16(intIn(value, -0x8000, 0x7fff, what));
    case GGUFValueType.UINT32: return w.u32(intIn(value, 0, 0xffffffff, what));
    case GGUFValueType.INT32: return w.i32(intIn(value, -0x80000000, 0x7fffffff, what));
    case GGUFValueType.FLOAT32: return w.f32(float(value, what));
    case GGUFValueType.FLOAT64: return w.f64(float(value, what));
    case GGUFValueType.UINT64: return w.u64(bigIntIn(value, 0n, 2n ** 64n - 1n, what));
    case GGUFValueType.INT64: return w.i64(bigIntIn(value, -(2n ** 63n), 2n ** 63n - 1n, what));
    case GGUFValueType.BOOL:
      if (typeof value !== 'boolean') throw badValue(what, 'a boolean', value);
      return w.u8(value ? 1 : 0);
    case GGUFValueType.STRING:
      if (typeof value !== 'string') throw badValue(what, 'a string', value);
      return w.string(value, what);
    default: throw new GGUFError('BAD_VALUE_TYPE', `${what}: unknown metadata value type ${type}`);
  }
}

/** The value's bytes without its type tag: a scalar, or (item type | u64 count | items) for an array. */
function writeValue(w: ByteWriter, v: GGUFValue, what: string, depth = 0): void {
  if (v.type !== GGUFValueType.ARRAY) return writeScalar(w, v.type, v.value, what);
  if (depth >= GGUF_MAX_ARRAY_NESTING) throw new GGUFError('BAD_VALUE_TYPE', `${what}: arrays nested deeper than ${GGUF_MAX_ARRAY_NESTING}`);
  w.u32(v.itemType);
  w.u64(BigInt(v.value.length));
  v.value.forEach((item, i) => {
    if (v.itemType !== GGUFValueType.ARRAY) {
      if (typeof item === 'object') throw badValue(`${what}[${i}]`, 'a scalar', item);
      return writeScalar(w, v.itemType, item, `${what}[${i}]`);
    }
    if (typeof item !== 'object' || item.type !== GGUFValueType.ARRAY) throw badValue(`${what}[${i}]`, 'an array value', item);
    writeValue(w, item, `${what}[${i}]`, depth + 1);
  });
}

/** The metadata as written: `general.alignment` added when a non-default alignment is asked for. */
function withAlignment(metadata: ReadonlyMap<string, GGUFValue>, alignment: number | undefined): ReadonlyMap<string, GGUFValue> {
  if (alignment === undefined) return metadata;
  const present = metadata.get('general.alignment');
  if (present !== undefined) {
    if (present.value !== alignment) {
      throw new GGUFError('BAD_ALIGNMENT', `alignment ${alignment} disagrees with general.alignment ${String(present.value)} in the metadata`);
    }
    return metadata;
  }
  if (alignment === GGUF_DEFAULT_ALIGNMENT) return metadata;
  return new Map([...metadata, ['general.alignment', metaU32(alignment)]]);
}

function alignmentOf(metadata: ReadonlyMap<string, GGUFValue>): number {
  const v = metadata.get('general.alignment');
  if (v === undefined) return GGUF_DEFAULT_ALIGNMENT;
  const a = v.value;
  if (v.type !== GGUFValueType.UINT32 || typeof a !== 'number' || !Number.isInteger(a) || a <= 0 || a > 0xffffffff || (a & (a - 1)) !== 0) {
    throw new GGUFError('BAD_ALIGNMENT', `general.alignment must be a power-of-two u32, got ${String(a)}`);
  }
  return a;
}

const alignUp = (n: number, alignment: number): number => Math.ceil(n / alignment) * alignment;

interface Layout {
  /** magic through tensor infos, plus the padding that aligns the data section */
  header: Uint8Array;
  /** offset of each tensor's data within the data section */
  offsets: number[];
  alignment: number;
  fileSize: number;
}

function checkTensor(t: GGUFTensorInput, names: Set<string>): number {
  if (names.has(t.name)) throw new GGUFError('DUPLICATE_NAME', `tensor "${t.name}" appears twice`);
  names.add(t.name);
  if (t.dims.length < 1 || t.dims.length > GGUF_MAX_DIMS || !t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new GGUFError('BAD_DIMS', `tensor "${t.name}" shape [${t.dims.join(', ')}] needs 1..${GGUF_MAX_DIMS} non-negative integer sizes`);
  }
  if (!isKnownType(t.type)) throw new GGUFError('UNKNOWN_TENSOR_TYPE', `tensor "${t.name}" has unknown ggml type ${t.type}`);
  const { nBytes } = tensorSize(t.name, t.dims, t.type);
  if (t.data.length !== nBytes) {
    throw new GGUFError('BAD_TENSOR_DATA', `tensor "${t.name}" has ${t.data.length} bytes of data, its shape and type need ${nBytes}`);
  }
  return nBytes;
}

/** Encodes the header and assigns every tensor its aligned offset. */
function layOut(input: GGUFWriteInput): Layout {
  const version = input.version ?? 3;
  if (version !== 2 && version !== 3) throw new GGUFError('UNSUPPORTED_VERSION', `cannot write GGUF version ${version} (2 and 3 are supported)`);
  const metadata = withAlignment(input.metadata, input.alignment);
  const alignment = alignmentOf(metadata);

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(version);
  w.u64(BigInt(input.tensors.length));
  w.u64(BigInt(metadata.size));
  for (const [key, value] of metadata) {
    w.string(key, `metadata key "${key}"`);
    w.u32(value.type);
    writeValue(w, value, `metadata "${key}"`);
  }
  const names = new Set<string>();
  const offsets: number[] = [];
  let dataSize = 0;
  for (const t of input.tensors) {
    const nBytes = checkTensor(t, names);
    w.string(t.name, `tensor name "${t.name}"`);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(BigInt(d));
    w.u32(t.type);
    w.u64(BigInt(dataSize));
    offsets.push(dataSize);
    dataSize = alignUp(dataSize + nBytes, alignment);
  }
  // a file without tensors has no data section and ends right after the header (as vocab-only files do)
  if (input.tensors.length > 0) w.zeros(alignUp(w.length, alignment) - w.length);
  const header = w.result();
  return { header, offsets, alignment, fileSize: header.length + dataSize };
}

/** The whole GGUF file as one byte array. */
export function serializeGGUF(input: GGUFWriteInput): Uint8Array {
  const layout = layOut(input);
  const out = new Uint8Array(layout.fileSize); // zero-filled: the padding needs no writing
  out.set(layout.header);
  input.tensors.forEach((t, i) => out.set(t.data, layout.header.length + layout.offsets[i]));
  return out;
}

const WRITE_CHUNK = 1 << 24;

/**
 * Writes the GGUF file to `path + ".tmp"` piece by piece (the tensors are never copied into one buffer),
 * then renames it to `path`, so that `path` is either the old file or the complete new one.
 */
export async function writeGGUF(path: string, input: GGUFWriteInput, options: WriteGGUFOptions = {}): Promise<void> {
  const layout = layOut(input);
  const tmp = `${path}.tmp`;
  let file: FileHandle;
  try {
    file = await open(tmp, 'w');
  } catch (e) {
    throw new GGUFError('IO', `cannot write ${tmp}: ${(e as Error).message}`);
  }
  let written = 0;
  const put = async (bytes: Uint8Array): Promise<void> => {
    for (let done = 0; done < bytes.length;) {
      const { bytesWritten } = await file.write(bytes, done, Math.min(WRITE_CHUNK, bytes.length - done));
      done += bytesWritten;
      written += bytesWritten;
      options.onProgress?.(written, layout.fileSize);
    }
  };
  const zeros = new Uint8Array(Math.min(layout.alignment, WRITE_CHUNK));
  const putZeros = async (n: number): Promise<void> => {
    for (let left = n; left > 0; left -= zeros.length) await put(zeros.subarray(0, Math.min(left, zeros.length)));
  };
  try {
    await put(layout.header);
    for (const t of input.tensors) {
      await put(t.data);
      await putZeros(alignUp(t.data.length, layout.alignment) - t.data.length);
    }
    await file.sync();
    await file.close();
    await rename(tmp, path);
  } catch (e) {
    await file.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e instanceof GGUFError ? e : new GGUFError('IO', `cannot write ${path}: ${(e as Error).message}`);
  }
}
