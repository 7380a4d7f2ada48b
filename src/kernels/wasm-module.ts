// Finds and compiles the WebAssembly kernels built by wasm/build.mjs (build/kernels-simd.wasm and
// build/kernels-relaxed.wasm) and decides whether this runtime can use the relaxed-SIMD build.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { platform } from '../platform/index.js';

export class KernelBuildMissingError extends Error {
  constructor(path: string) {
    super(`WebAssembly kernels not built: ${path} is missing (run \`npm run build:wasm\`)`);
    this.name = 'KernelBuildMissingError';
  }
}

/** The directory holding package.json above this module (src/kernels or dist/src/kernels). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new KernelBuildMissingError('build/ (no package root found)');
    dir = up;
  }
  return dir;
}

export interface KernelModule {
  module: WebAssembly.Module;
  /** true for the build using relaxed-SIMD integer dot products */
  relaxed: boolean;
}

/** WebAssembly memory pages of 64 KiB; a wasm32 memory holds at most 65536 of them (4 GiB). */
export const PAGE = 65536;
export const MAX_PAGES = 65536;
/** Pages the kernels reserve at the start of a memory (static data, the f16 and gelu tables: see reserved_end). */
export const RESERVED_PAGES = 9;

export function newSharedMemory(pages: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
}

let cache: { simd?: KernelModule; relaxed?: KernelModule | null } = {};

/**
 * Whether the relaxed build validates here and computes what the plain SIMD build computes on Q4_0 and Q8_0 block
 * products at extreme values (a runtime might lower relaxed dot products differently; the result must be exact).
 */
function relaxedWorks(relaxed: WebAssembly.Module, simd: WebAssembly.Module): boolean {
  const memory = newSharedMemory(RESERVED_PAGES + 1);
  const bytes = new Uint8Array(memory.buffer);
  // past the kernels' reserved area (static data, tables): a Q4_0 and a Q8_0 weight block (d = 1.0),
  // 32 activations, their quantized row and two outputs
  const base = RESERVED_PAGES * PAGE;
  const q4 = base, q8 = base + 64, x = base + 1024, act = base + 2048, out = base + 3072, product = base + 4096;
  bytes[q4] = 0x00; bytes[q4 + 1] = 0x3c;
  for (let j = 0; j < 16; j++) bytes[q4 + 2 + j] = (j * 37 + 11) & 0xff;
  bytes[q8] = 0x00; bytes[q8 + 1] = 0x3c;
  for (let j = 0; j < 32; j++) bytes[q8 + 2 + j] = (j % 2 ? -127 : 127 - 3 * j) & 0xff;
  const run = (module: WebAssembly.Module) => {
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    exports.init_tables();
    new Float32Array(memory.buffer, x, 32).set(Array.from({ length: 32 }, (_, j) => (j % 3 === 0 ? -1 : 1 - j / 40)));
    const counters = new Int32Array(memory.buffer, 0, 3);
    // one product: row 0 times the weight at w into `to`
    const multiply = (type: number, w: number, wRowBytes: number, actRowBytes: number, to: number) => {
      new Int32Array(memory.buffer, product, 6).set([0, 1, w, 0, to, 0]);
      counters.fill(0);
      exports.matmul(type, wRowBytes, x, act, actRowBytes, 32, 1, 1, product, 1, 1, 0, 4, 0);
    };
    multiply(2, q4, 18, 40, out);
    multiply(8, q8, 34, 68, out + 4);
    return Array.from(new Float32Array(memory.buffer, out, 2));
  };
  try {
    const [a, b] = [run(relaxed), run(simd)];
    return a[0] === b[0] && a[1] === b[1];
  } catch {
    return false;
  }
}

/** The kernels to use: the relaxed-SIMD build where it validates and computes exactly, else plain SIMD128. */
export function kernelModule(preferRelaxed = true): KernelModule {
  if (!cache.simd) cache.simd = { module: new WebAssembly.Module(platform.kernelBinary('kernels-simd.wasm')), relaxed: false };
  if (!preferRelaxed) return cache.simd;
  if (cache.relaxed === undefined) {
    const bytes = platform.kernelBinary('kernels-relaxed.wasm');
    const module = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : undefined;
    cache.relaxed = module && relaxedWorks(module, cache.simd.module) ? { module, relaxed: true } : null;
  }
  return cache.relaxed ?? cache.simd;
}

/** The functions exported by wasm/kernels/index.ts (addresses are byte offsets into the shared memory). */
export interface KernelExports {
  /** one activation row in the layout the kernels for weight type `type` read */
  quantize_row(type: number, x: number, out: number, n: number): void;
  /** products: per product i32 [first row, rows, then per weight: address, F16 correction lists or 0, output, bias or 0] */
  matmul(type: number, wRowBytes: number, x: number, act: number, actRowBytes: number, nIn: number, nOut: number,
    nTokens: number, products: number, nProducts: number, nWeights: number, counter: number, chunk: number,
    scratch: number): void;
  /** F16 rows' correction lists for the rebased decode kernel; returns the entry count */
  f16_corrections(w: number, nRows: number, nIn: number, table: number, fill: boolean): number;
  attention(q: number, out: number, keys: number, values: number, keyStride: number, valueStride: number, list: number,
    nList: number, wideKeys: number, wideValues: number, spans: number, blocks: number, nBlocks: number, nHeads: number,
    nKvHeads: number, headDim: number, valueDim: number, headsPerJob: number, maxQueries: number, maxLength: number,
    scale: number, capInverse: number, cap: number, counter: number, scratch: number): void;
  /** out = op(x, y) for the element-wise ops numbered in wasm/kernels/elementwise.ts (ElementwiseOp in wasm.ts) */
  elementwise(op: number, x: number, y: number, out: number, n: number, a: number, b: number, counter: number, chunk: number, scratch: number): void;
  rmsnorm(x: number, weight: number, out: number, nTokens: number, dim: number, eps: number): void;
  layernorm(x: number, weight: number, bias: number, out: number, nTokens: number, dim: number, eps: number, counter: number, chunk: number, scratch: number): void;
  /** training (wasm/kernels/gemm.ts, attention-train.ts): C[m, n] (+)= A·B with A [m, k] or, `transposed`, [k, m] */
  gemm(c: number, a: number, b: number, m: number, n: number, k: number, transposed: boolean, accumulate: boolean, counter: number, scratch: number): void;
  transpose(out: number, x: number, rows: number, cols: number): void;
  zero(at: number, bytes: number): void;
  attention_forward(q: number, k: number, v: number, out: number, probs: number, nSeq: number, seqLen: number, nHeads: number,
    nKvHeads: number, headDim: number, scale: number, counter: number, scratch: number): void;
  attention_backward(g: number, q: number, k: number, v: number, probs: number, dq: number, dk: number, dv: number, nSeq: number,
    seqLen: number, nHeads: number, nKvHeads: number, headDim: number, scale: number, counter: number, scratch: number): void;
  rmsnorm_backward(g: number, x: number, weight: number, dx: number, partials: number, nTokens: number, dim: number, eps: number, counter: number, chunk: number, scratch: number): void;
  swiglu_backward(g: number, gate: number, up: number, dgate: number, dup: number, n: number, counter: number, chunk: number, scratch: number): void;
  /** rotary embedding of rows of x into out (inference in place; training's backward by −θ, accumulated): wasm/kernels/rope.ts */
  rope(x: number, out: number, nTokens: number, nHeads: number, headDim: number, cos: number, sin: number, nDims: number, neox: boolean,
    offset: number, inverse: boolean, accumulate: boolean, counter: number, chunk: number, scratch: number): void;
  /** the optimizer step over a chunk table i32 [grad, value, m, v, count, decayed] (wasm/kernels/optim.ts) */
  sum_squares(table: number, nChunks: number, partials: number, counter: number, scratch: number): void;
  adamw(table: number, nChunks: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, c1: number, c2: number,
    scale: number, counter: number, scratch: number): void;
  /** training's softmax cross-entropy, forward and backward (wasm/kernels/loss.ts) */
  cross_entropy_forward(logits: number, targets: number, rows: number, cols: number, probs: number, counter: number, chunk: number, scratch: number): void;
  cross_entropy_backward(dlogits: number, probs: number, targets: number, rows: number, cols: number, k: number, counter: number, chunk: number, scratch: number): void;
  /** the address of the gelu table the backend fills (65536 f32) */
  gelu_table(): number;
  reserved_end(): number;
  init_tables(): void;
}
