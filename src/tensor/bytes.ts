// Little-endian scalar reads and writes on block bytes, without allocating (the host is little-endian, as are GGUF files).

import { FP16_TO_FP32, fp32ToFp16 } from './float16.js';

const scratchF32 = new Float32Array(1);
const scratchBytes = new Uint8Array(scratchF32.buffer);

/** Thrown when a row or tensor's bytes do not fit the shape and type asked of them. */
export class TensorDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TensorDataError';
  }
}

export function readInt8(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 24) >> 24;
}

export function readInt16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] | (bytes[at + 1] << 8)) << 16) >> 16;
}

export function readUint32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

export function readF16(bytes: Uint8Array, at: number): number {
  return FP16_TO_FP32[bytes[at] | (bytes[at + 1] << 8)];
}

export function readF32(bytes: Uint8Array, at: number): number {
  scratchBytes[0] = bytes[at];
  scratchBytes[1] = bytes[at + 1];
  scratchBytes[2] = bytes[at + 2];
  scratchBytes[3] = bytes[at + 3];
  return scratchF32[0];
}

export function writeUint16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >> 8) & 0xff;
}

export function writeF16(bytes: Uint8Array, at: number, value: number): void {
  writeUint16(bytes, at, fp32ToFp16(value));
}

export function writeF32(bytes: Uint8Array, at: number, value: number): void {
  scratchF32[0] = value;
  bytes[at] = scratchBytes[0];
  bytes[at + 1] = scratchBytes[1];
  bytes[at + 2] = scratchBytes[2];
  bytes[at + 3] = scratchBytes[3];
}

// Typed views over whole buffers, made once per buffer, so that hot loops read block data in place.
const int8Views = new WeakMap<ArrayBufferLike, Int8Array>();
const float32Views = new WeakMap<ArrayBufferLike, Float32Array>();

function wholeBufferView<T>(cache: WeakMap<ArrayBufferLike, T>, buffer: ArrayBufferLike, make: (buffer: ArrayBufferLike) => T): T {
  let view = cache.get(buffer);
  if (!view) {
    view = make(buffer);
    cache.set(buffer, view);
  }
  return view;
}

/** The bytes of `bytes`' whole buffer as int8: bytes[i] is element bytes.byteOffset + i. */
export function int8Alias(bytes: Uint8Array): Int8Array {
  return wholeBufferView(int8Views, bytes.buffer, (buffer) => new Int8Array(buffer));
}

/**
 * The whole buffer as little-endian float32, where bytes[at] starts element (bytes.byteOffset + at) / 4;
 * undefined when that is not 4-byte aligned.
 */
export function float32Alias(bytes: Uint8Array, at: number): Float32Array | undefined {
  if ((bytes.byteOffset + at) % 4 !== 0) return undefined;
  return wholeBufferView(float32Views, bytes.buffer, (buffer) => new Float32Array(buffer, 0, buffer.byteLength >>> 2));
}
