// Reads a GGUF header (metadata and tensor infos) from a file or a byte array, checking every number
// against the bytes that are actually there before allocating anything from it.

import { platform, type FileSource, type RandomAccessFile } from '../platform/index.js';
import { GGMLType, isKnownType, typeInfo, typeName } from '../tensor/ggml-type.js';
import {
  GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_ARRAY_NESTING, GGUF_MAX_DIMS, GGUFError, GGUFValueType,
  type GGUFHeader, type GGUFScalar, type GGUFTensorInfo, type GGUFValue,
} from './types.js';

/** Where header bytes come from: a whole in-memory file, or a file read in chunks on demand. */
interface ByteSource {
  readonly size: number;
  read(position: number, length: number): Uint8Array;
}

class MemorySource implements ByteSource {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number { return this.bytes.length; }
  read(position: number, length: number): Uint8Array { return this.bytes.subarray(position, position + length); }
}

class FileBytes implements ByteSource {
  constructor(private readonly file: RandomAccessFile) {}
  get size(): number { return this.file.size; }
  read(position: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    readFully(this.file, out, 0, length, position);
    return out;
  }
}

/** Reads `length` bytes at `position` of `file` into `into` at `at`, refusing a file that ends first. */
export function readFully(file: RandomAccessFile, into: Uint8Array, at: number, length: number, position: number): void {
  for (let done = 0; done < length;) {
    const n = file.read(into, at + done, length - done, position + done);
    if (n === 0) throw new GGUFError('TRUNCATED', `${file.name} ended at offset ${position + done} while being read`);
    done += n;
  }
}

const CHUNK = 1 << 20;
// ignoreBOM keeps a leading U+FEFF (a real vocab token) instead of silently dropping it
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Sequential little-endian reader over a ByteSource, buffering a chunk at a time. */
class Cursor {
  private buffer: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buffer.buffer);
  private bufferStart = 0;
  position = 0;

  constructor(private readonly source: ByteSource) {}

  get remaining(): number { return this.source.size - this.position; }

  /** Makes `n` bytes at the current position available in the buffer; returns their index in it. */
  private take(n: number, what: string): number {
    if (n > this.remaining) {
      throw new GGUFError('TRUNCATED', `file truncated: ${what} needs ${n} bytes at offset ${this.position}, only ${this.remaining} left`);
    }
    let index = this.position - this.bufferStart;
    if (index < 0 || index + n > this.buffer.length) {
      this.buffer = this.source.read(this.position, Math.min(Math.max(n, CHUNK), this.remaining));
      this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
      this.bufferStart = this.position;
      index = 0;
    }
    this.position += n;
    return index;
  }

  u8(what: string): number { return this.buffer[this.take(1, what)]; }
  i8(what: string): number { const i = this.take(1, what); return this.view.getInt8(i); }
  u16(what: string): number { const i = this.take(2, what); return this.view.getUint16(i, true); }
  i16(what: string): number { const i = this.take(2, what); return this.view.getInt16(i, true); }
  u32(what: string): number { const i = this.take(4, what); return this.view.getUint32(i, true); }
  i32(what: string): number { const i = this.take(4, what); return this.view.getInt32(i, true); }
  f32(what: string): number { const i = this.take(4, what); return this.view.getFloat32(i, true); }
  f64(what: string): number { const i = this.take(8, what); return this.view.getFloat64(i, true); }
  u64(what: string): bigint { const i = this.take(8, what); return this.view.getBigUint64(i, true); }
  i64(what: string): bigint { const i = this.take(8, what); return this.view.getBigInt64(i, true); }

  /** A u64 that must be a count or offset small enough to be a JS number. */
  size(what: string): number {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GGUFError('ABSURD_COUNT', `${what} is ${v}, far beyond any real file`);
    return Number(v);
  }

  bytes(n: number, what: string): Uint8Array {
    const i = this.take(n, what);
    return this.buffer.subarray(i, i + n);
  }

  string(what: string): string {
    const length = this.size(`${what} length`);
    if (length > this.remaining) {
      throw new GGUFError('TRUNCATED', `file truncated: ${what} claims ${length} bytes at offset ${this.position}, only ${this.remaining} left`);
    }
    try {
      return textDecoder.decode(this.bytes(length, what));
    } catch {
      throw new GGUFError('BAD_STRING', `${what} at offset ${this.position - length} is not valid UTF-8`);
    }
  }
}

/** Smallest number of bytes a value of this type can take (used to bound counts read from the file). */
function minValueBytes(type: GGUFValueType): number {
  switch (type) {
    case GGUFValueType.UINT8: case GGUFValueType.INT8: case GGUFValueType.BOOL: return 1;
    case GGUFValueType.UINT16: case GGUFValueType.INT16: return 2;
    case GGUFValueType.UINT32: case GGUFValueType.INT32: case GGUFValueType.FLOAT32: return 4;
    case GGUFValueType.UINT64: case GGUFValueType.INT64: case GGUFValueType.FLOAT64: return 8;
    case GGUFValueType.STRING: return 8;
    case GGUFValueType.ARRAY: return 4 + 8;
    default: throw new GGUFError('BAD_VALUE_TYPE', `unknown metadata value type ${type}`);
  }
}

function readScalar(cursor: Cursor, type: GGUFValueType, what: string): GGUFScalar {
  switch (type) {
    case GGUFValueType.UINT8: return cursor.u8(what);
    case GGUFValueType.INT8: return cursor.i8(what);
    case GGUFValueType.UINT16: return cursor.u16(what);
    case GGUFValueType.INT16: return cursor.i16(what);
    case GGUFValueType.UINT32: return cursor.u32(what);
    case GGUFValueType.INT32: return cursor.i32(what);
    case GGUFValueType.FLOAT32: return cursor.f32(what);
    case GGUFValueType.FLOAT64: return cursor.f64(what);
    case GGUFValueType.UINT64: return cursor.u64(what);
    case GGUFValueType.INT64: return cursor.i64(what);
    case GGUFValueType.BOOL: {
      const b = cursor.u8(what);
      if (b > 1) throw new GGUFError('BAD_VALUE_TYPE', `${what}: bool byte ${b} is neither 0 nor 1`);
      return b === 1;
    }
    case GGUFValueType.STRING: return cursor.string(what);
    default: throw new GGUFError('BAD_VALUE_TYPE', `${what}: unknown metadata value type ${type}`);
  }
}

function readValue(cursor: Cursor, type: GGUFValueType, what: string, depth = 0): GGUFValue {
  if (type !== GGUFValueType.ARRAY) {
    return { type, value: readScalar(cursor, type, what) } as GGUFValue;
  }
  if (depth >= GGUF_MAX_ARRAY_NESTING) throw new GGUFError('BAD_VALUE_TYPE', `${what}: arrays nested deeper than ${GGUF_MAX_ARRAY_NESTING}`);
  const itemType = cursor.u32(`${what} item type`) as GGUFValueType;
  const count = cursor.size(`${what} count`);
  const need = count * minValueBytes(itemType);
  if (need > cursor.remaining) {
    throw new GGUFError('ABSURD_COUNT', `${what}: array of ${count} items needs at least ${need} bytes, only ${cursor.remaining} left`);
  }
  if (itemType === GGUFValueType.ARRAY) {
    const items: GGUFValue[] = [];
    // each element of an array of arrays is itself (item type, count, items)
    for (let i = 0; i < count; i++) items.push(readValue(cursor, GGUFValueType.ARRAY, `${what}[${i}]`, depth + 1));
    return { type, itemType, value: items };
  }
  const items: GGUFScalar[] = new Array(count);
  for (let i = 0; i < count; i++) items[i] = readScalar(cursor, itemType, what);
  return { type, itemType, value: items };
}

function readTensorInfo(cursor: Cursor, index: number): Omit<GGUFTensorInfo, 'nBytes' | 'nElements'> {
  const name = cursor.string(`tensor ${index} name`);
  const nDims = cursor.u32(`tensor "${name}" n_dims`);
  if (nDims < 1 || nDims > GGUF_MAX_DIMS) throw new GGUFError('BAD_DIMS', `tensor "${name}" has ${nDims} dimensions (1..${GGUF_MAX_DIMS} allowed)`);
  const dims: number[] = [];
  for (let d = 0; d < nDims; d++) dims.push(cursor.size(`tensor "${name}" ne[${d}]`));
  const typeId = cursor.u32(`tensor "${name}" type`);
  if (!isKnownType(typeId)) {
    throw new GGUFError('UNKNOWN_TENSOR_TYPE', `tensor "${name}" has unknown or unsupported ggml type ${typeId}`);
  }
  const offset = cursor.size(`tensor "${name}" offset`);
  return { name, dims, type: typeId, offset };
}

/** Size of a tensor in values and bytes, refusing shapes that overflow or do not fit the type's blocks. */
export function tensorSize(name: string, dims: readonly number[], type: GGMLType): { nElements: number; nBytes: number } {
  let nElements = 1;
  for (const d of dims) {
    nElements *= d;
    if (!Number.isSafeInteger(nElements)) throw new GGUFError('BAD_DIMS', `tensor "${name}" shape [${dims.join(', ')}] overflows`);
  }
  const { blockSize, typeSize } = typeInfo(type);
  if (dims[0] % blockSize !== 0) {
    throw new GGUFError('BAD_DIMS', `tensor "${name}": row length ${dims[0]} is not a multiple of ${typeName(type)}'s block size ${blockSize}`);
  }
  const nBytes = (nElements / blockSize) * typeSize;
  if (!Number.isSafeInteger(nBytes)) throw new GGUFError('BAD_DIMS', `tensor "${name}" shape [${dims.join(', ')}] needs more bytes than can be addressed`);
  return { nElements, nBytes };
}

function parse(source: ByteSource): GGUFHeader {
  const cursor = new Cursor(source);
  const magic = cursor.u32('magic');
  if (magic !== GGUF_MAGIC) {
    throw new GGUFError('BAD_MAGIC', `not a GGUF file: magic is 0x${magic.toString(16).padStart(8, '0')}, expected "GGUF"`);
  }
  const version = cursor.u32('version');
  if (version !== 2 && version !== 3) throw new GGUFError('UNSUPPORTED_VERSION', `GGUF version ${version} is not supported (2 and 3 are)`);
  const tensorCount = cursor.size('tensor count');
  const kvCount = cursor.size('metadata count');
  // every key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes, every tensor info 8 + 4 + 8 + 4 + 8
  if (kvCount * 13 > cursor.remaining) throw new GGUFError('ABSURD_COUNT', `metadata count ${kvCount} cannot fit in the ${cursor.remaining} bytes left`);
  if (tensorCount * 32 > cursor.remaining) throw new GGUFError('ABSURD_COUNT', `tensor count ${tensorCount} cannot fit in the ${cursor.remaining} bytes left`);

  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = cursor.string(`metadata key ${i}`);
    if (metadata.has(key)) throw new GGUFError('DUPLICATE_NAME', `metadata key "${key}" appears twice`);
    const type = cursor.u32(`metadata "${key}" type`) as GGUFValueType;
    minValueBytes(type);
    metadata.set(key, readValue(cursor, type, `metadata "${key}"`));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignValue = metadata.get('general.alignment');
  if (alignValue !== undefined) {
    const a = alignValue.value;
    if (alignValue.type !== GGUFValueType.UINT32 || typeof a !== 'number' || a === 0 || (a & (a - 1)) !== 0) {
      throw new GGUFError('BAD_ALIGNMENT', `general.alignment must be a power-of-two u32, got ${String(a)}`);
    }
    alignment = a;
  }

  const names = new Set<string>();
  const infos: GGUFTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const info = readTensorInfo(cursor, i);
    if (names.has(info.name)) throw new GGUFError('DUPLICATE_NAME', `tensor "${info.name}" appears twice`);
    names.add(info.name);
    if (info.offset % alignment !== 0) {
      throw new GGUFError('MISALIGNED_TENSOR', `tensor "${info.name}" offset ${info.offset} is not a multiple of the alignment ${alignment}`);
    }
    infos.push({ ...info, ...tensorSize(info.name, info.dims, info.type) });
  }

  const dataOffset = Math.ceil(cursor.position / alignment) * alignment;
  const dataBytes = source.size - dataOffset;
  for (const t of infos) {
    if (t.offset + t.nBytes > dataBytes) {
      throw new GGUFError('TENSOR_OUT_OF_BOUNDS',
        `tensor "${t.name}" data [${t.offset}, ${t.offset + t.nBytes}) lies beyond the ${Math.max(0, dataBytes)} bytes of the data section`);
    }
  }
  const byOffset = [...infos].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1], cur = byOffset[i];
    if (prev.offset + prev.nBytes > cur.offset) {
      throw new GGUFError('OVERLAPPING_TENSORS', `tensors "${prev.name}" and "${cur.name}" overlap at data offset ${cur.offset}`);
    }
  }
  return { version, metadata, tensors: infos, alignment, dataOffset, fileSize: source.size };
}

/** Parses the header of a GGUF file held in memory. */
export function parseGGUF(bytes: Uint8Array): GGUFHeader {
  return parse(new MemorySource(bytes));
}

/** Reads the header of a GGUF file (a path, or a Blob in a page) without reading its tensor data. */
export function readGGUFHeader(source: FileSource): GGUFHeader {
  const file = platform.openFile(source);
  try {
    return readHeader(file);
  } finally {
    file.close();
  }
}

/** Reads the header of a file already open. */
export function readHeader(file: RandomAccessFile): GGUFHeader {
  return parse(new FileBytes(file));
}
