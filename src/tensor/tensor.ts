// A weight tensor as stored in a model file: ggml dims (fastest first) and its raw bytes in block format.

import { typeInfo, type GGMLType } from './ggml-type.js';

export interface WeightTensor {
  readonly name: string;
  readonly type: GGMLType;
  /** ggml `ne`: a matrix of n_out rows of n_in values has dims [n_in, n_out] */
  readonly dims: readonly number[];
  /** the stored bytes (row-major blocks), usually a view into the file's data section */
  readonly data: Uint8Array;
}

/** Rows [first, first + count) of a 2-D weight (dims [nIn, nOut]) as a weight of its own (no copy). */
export function rowSlice(w: WeightTensor, first: number, count: number, name: string): WeightTensor {
  const { blockSize, typeSize } = typeInfo(w.type);
  const rowBytes = (w.dims[0] / blockSize) * typeSize;
  return { name, type: w.type, dims: [w.dims[0], count], data: w.data.subarray(first * rowBytes, (first + count) * rowBytes) };
}

/** Expert e of a stacked [nIn, nOut, nExpert] tensor as a 2-D weight (no copy). */
export function expertSlice(w: WeightTensor, e: number): WeightTensor {
  const [nIn, nOut, nExpert] = w.dims;
  if (!Number.isInteger(e) || e < 0 || e >= nExpert) throw new RangeError(`expert ${e} of ${w.name} is outside 0..${nExpert - 1}`);
  return rowSlice({ ...w, dims: [nIn, nOut * nExpert] }, e * nOut, nOut, `${w.name}[${e}]`);
}
