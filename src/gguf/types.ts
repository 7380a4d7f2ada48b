// The GGUF container format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
//   header:  magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//   metadata: metadata_kv_count × (string key | u32 value_type | value)
//   tensor infos: (string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset)
//   padding to `general.alignment` (default 32), then the tensor data section.
// Strings are u64 length + UTF-8 bytes. Version 1 used u32 counts and is not supported.

import type { GGMLType } from '../tensor/ggml-type.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS */
export const GGUF_MAX_DIMS = 4;
/** deepest nesting of arrays inside a metadata value that kiln reads or writes */
export const GGUF_MAX_ARRAY_NESTING = 8;

export enum GGUFValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** A scalar metadata value; 64-bit integers are bigint so that no bit is lost. */
export type GGUFScalar = number | bigint | boolean | string;

/** A metadata value together with its GGUF type, so that a file can be written back unchanged. */
export type GGUFValue =
  | { type: Exclude<GGUFValueType, GGUFValueType.ARRAY>; value: GGUFScalar }
  | { type: GGUFValueType.ARRAY; itemType: GGUFValueType; value: GGUFValue[] | GGUFScalar[] };

export interface GGUFTensorInfo {
  name: string;
  /** ggml `ne`: sizes with the fastest-varying dimension first (a weight matrix is [n_in, n_out]) */
  dims: number[];
  type: GGMLType;
  /** offset of the tensor's data from the start of the data section */
  offset: number;
  /** number of values */
  nElements: number;
  /** bytes of data */
  nBytes: number;
}

export interface GGUFHeader {
  version: number;
  /** metadata in file order */
  metadata: Map<string, GGUFValue>;
  tensors: GGUFTensorInfo[];
  alignment: number;
  /** absolute file offset of the tensor data section */
  dataOffset: number;
  fileSize: number;
}

export type GGUFErrorCode =
  | 'BAD_MAGIC'
  | 'UNSUPPORTED_VERSION'
  | 'TRUNCATED'
  | 'ABSURD_COUNT'
  | 'BAD_STRING'
  | 'BAD_VALUE_TYPE'
  | 'BAD_ALIGNMENT'
  | 'BAD_DIMS'
  | 'UNKNOWN_TENSOR_TYPE'
  | 'DUPLICATE_NAME'
  | 'MISALIGNED_TENSOR'
  | 'TENSOR_OUT_OF_BOUNDS'
  | 'OVERLAPPING_TENSORS'
  | 'BAD_TENSOR_DATA'
  | 'IO';

/** Every problem found in a GGUF file is reported as this error; `code` says which. */
export class GGUFError extends Error {
  constructor(readonly code: GGUFErrorCode, message: string) {
    super(message);
    this.name = 'GGUFError';
  }
}
