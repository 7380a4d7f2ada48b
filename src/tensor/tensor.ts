// A weight tensor as stored in a model file: ggml dims (fastest first) and its raw bytes in block format.

import type { GGMLType } from './ggml-type.js';

export interface WeightTensor {
  readonly name: string;
  readonly type: GGMLType;
  /** ggml `ne`: a matrix of n_out rows of n_in values has dims [n_in, n_out] */
  readonly dims: readonly number[];
  /** the stored bytes (row-major blocks), usually a view into the file's data section */
  readonly data: Uint8Array;
}
