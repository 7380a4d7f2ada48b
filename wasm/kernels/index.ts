// kiln's CPU kernels in AssemblyScript, compiled to WebAssembly SIMD128 (and a relaxed-SIMD variant) over a shared,
// imported memory. Every function takes byte addresses into that memory; the TypeScript side (src/kernels/wasm.ts)
// places weights, activations and outputs there and splits the work across threads.
//
// Matrix products follow ggml: activations are quantized once per matmul to the weight type's vec_dot_type
// (Q8_0, Q8_1, Q8_K, or rounded to f16/bf16), then every weight row is dotted with every activation row using
// integer block sums (exact), scaled and accumulated in f32.
//
// Activation layouts written by the quantize_* functions, one row per token:
//   Q8_0 (values split from scales; see quantizeQ8Blocks) / Q8_1 / Q8_K: the reference quantizer's values exactly;
//   F16 / F32: f32 values; BF16: f32 values rounded to bf16 first; each group of 8 stored as the even elements
//   then the odd ones, the order in which the 16-bit weight kernels widen them.
//
// This file is the module's entry (wasm/build.mjs compiles it); the kernels live one family per file beside it:
// common, simd, quantize, dot-legacy, dot-kquants, dot-float, tiles, matmul, attention, elementwise, norm; training's
// f32 products (gemm), causal attention forward/backward (attention-train), the loss (loss) and the optimizer step
// (optim); rope serves both.

export { gelu_table, init_tables, reserved_end } from './common';
export { quantize_row } from './quantize';
export { f16_corrections, matmul } from './matmul';
export { attention } from './attention';
export { elementwise, swiglu_backward } from './elementwise';
export { gemm, transpose, zero } from './gemm';
export { attention_forward, attention_backward } from './attention-train';
export { rmsnorm, rmsnorm_backward, layernorm } from './norm';
export { rope } from './rope';
export { adamw, sum_squares } from './optim';
export { cross_entropy_forward, cross_entropy_backward } from './loss';
