// The tensor module: ggml types, weight tensors, half-precision conversions and the block codecs.

export * from './ggml-type.js';
export type { WeightTensor } from './tensor.js';
export * from './float16.js';
export { TensorDataError } from './bytes.js';
export * from './codec.js';
export * as layout from './quants/layout.js';
export { roundHalfEven } from './quants/block32.js';
