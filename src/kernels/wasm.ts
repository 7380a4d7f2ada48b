// The WebAssembly backend: matrix products, attention, the activations (swiglu, gelu, geglu), soft-cap and (for
// batches) layernorm, rmsnorm and scale run as kernels (wasm/kernels.ts, SIMD128) over shared memories, all but
// rmsnorm and scale split across a pool of threads where the work is large enough; the lightest element-wise ops
// (rope, add) stay in TypeScript, shared with the reference backend. Weights loaded through
// `loadFile` live in the memories already (no copy per op); any other weight is copied in once, on first use.

import { availableParallelism } from 'node:os';
import type { AttentionCacheView, AttentionShape, Backend, RopeParams } from './backend.js';
import { halfTimesFloat, ReferenceBackend } from './reference.js';
import type { RopeAngles } from './rope.js';
import { Arena, ArenaFullError, COUNTER, arenaOf } from './arena.js';
import { sharedPool, type ThreadPool } from './thread-pool.js';
import { kernelModule, type KernelModule } from './wasm-module.js';
import { loadIntoArenas } from './wasm-weights.js';
import { geluHalfTable } from './formulas.js';
import type { GGUFModelFile } from '../gguf/model-file.js';
import type { WeightTensor } from '../tensor/tensor.js';
import { GGMLType, typeInfo } from '../tensor/ggml-type.js';
import { fp16ToFp32, fp32ToFp16 } from '../tensor/float16.js';

/** How the kernels for a weight type take their activations (quantized inside the matmul job; layouts in wasm/kernels.ts). */
interface ActivationFormat {
  rowBytes(nIn: number): number;
  /** kernels need nIn to be a multiple of this */
  multiple: number;
  /** scratch bytes per thread for many tokens (widened weight rows; the least is 512) */
  threadScratch?(nIn: number): number;
}

// Q8_0 with f32 scales and block sums for Q4_0, Q5_0 weights (for several tokens each thread packs four weight rows:
// 144 bytes per block, then 16); Q8_0 and IQ4_NL weights: with signs split off (one token) or as int16 (several; each
// thread widens four weight rows to int16: 272 bytes per block, then 128 bytes of sums), both 68 bytes per block
const Q8_0_SUMS_ACT: ActivationFormat = { rowBytes: (n) => (n / 32) * 40, multiple: 32, threadScratch: (n) => (n / 32) * 144 + 16 };
const Q8_0_SPLIT_ACT: ActivationFormat = { rowBytes: (n) => (n / 32) * 68, multiple: 32, threadScratch: (n) => (n / 32) * 272 + 128 };
const Q8_1_ACT: ActivationFormat = { rowBytes: (n) => (n / 32) * 36, multiple: 32 };
const Q8_K_ACT: ActivationFormat = { rowBytes: (n) => (n / 256) * 292, multiple: 256 };
// Q4_K weights: for several tokens each thread packs four weight rows (1312 bytes per super-block, then 16 + 16)
const Q8_K_PACKED_ACT: ActivationFormat = { ...Q8_K_ACT, threadScratch: (n) => (n / 256) * 1312 + 32 };
// F16 weights meet unrounded f32 activations (as the reference does, after llama.cpp's F16×F32 path); BF16 ones
// bf16-rounded. For many tokens each thread widens two weight rows to f32.
const FLOAT_ACT: ActivationFormat = { rowBytes: (n) => 4 * n, multiple: 8, threadScratch: (n) => 8 * n };

const ACTIVATIONS = new Map<GGMLType, ActivationFormat>([
  [GGMLType.Q4_0, Q8_0_SUMS_ACT], [GGMLType.Q5_0, Q8_0_SUMS_ACT], [GGMLType.Q8_0, Q8_0_SPLIT_ACT], [GGMLType.IQ4_NL, Q8_0_SPLIT_ACT],
  [GGMLType.Q4_1, Q8_1_ACT], [GGMLType.Q5_1, Q8_1_ACT],
  [GGMLType.Q2_K, Q8_K_ACT], [GGMLType.Q3_K, Q8_K_ACT], [GGMLType.Q4_K, Q8_K_PACKED_ACT], [GGMLType.Q5_K, Q8_K_ACT], [GGMLType.Q6_K, Q8_K_ACT],
  [GGMLType.IQ4_XS, Q8_K_ACT],
  [GGMLType.F32, FLOAT_ACT], [GGMLType.F16, FLOAT_ACT], [GGMLType.BF16, FLOAT_ACT],
]);

/** a copy of x with every value rounded to f16 */
function roundToHalfs(x: Float32Array): Float32Array {
  return Float32Array.from(x, (v) => fp16ToFp32(fp32ToFp16(v)));
}

function releaseArenas({ pool, indices }: { pool: ThreadPool; indices: number[] }): void {
  for (const index of indices.splice(0)) pool.release(index);
}

const releaseOnCollect = new FinalizationRegistry(releaseArenas);

/**
 * The light ops (rmsnorm, layernorm, scale) of fewer values stay in TypeScript: copying them into WebAssembly memory
 * costs more than it saves.
 */
const LIGHT_KERNEL_MIN = 2048;

/** The element-wise kernel's ops (wasm/kernels.ts `elementwise`). */
enum ElementwiseOp { Swiglu = 0, Gelu = 1, Geglu = 2, Softcap = 3, Scale = 4 }

/**
 * Values from which an op's work is shared by the pool (below, waking the threads would cost more than it saves):
 * by what one value costs (swiglu, soft-cap: an f64 exponential; gelu: four table loads a vector; layernorm: two f64
 * sums in order); scale never (a multiply: copying dominates).
 */
const POOLED_MIN: Record<ElementwiseOp | 'layernorm', number> = {
  [ElementwiseOp.Swiglu]: 12288, [ElementwiseOp.Softcap]: 12288, [ElementwiseOp.Gelu]: 32768, [ElementwiseOp.Geglu]: 32768,
  [ElementwiseOp.Scale]: Infinity, layernorm: 16384,
};

/**
 * Multiply-adds below which a matrix product runs on the calling thread alone: waking the pool and waiting for it
 * costs tens of microseconds, more than such a product takes (MLA's per-head products, small experts, routers).
 */
const POOLED_MATMUL_MIN = 65536;

export interface WasmBackendOptions {
  /** threads in all (default: the machine's cores) */
  threads?: number;
  /** use the relaxed-SIMD build where the runtime supports it (default true) */
  relaxed?: boolean;
  /** scratch bytes one matmul may use; a larger batch is done in parts (default 128 MiB) */
  maxScratchBytes?: number;
}

/** Where a weight's bytes live in WebAssembly memory. */
interface Placement {
  arena: Arena;
  address: number;
}

export class WasmBackend implements Backend {
  readonly name: string;
  readonly threads: number;
  private readonly maxScratch: number;
  private readonly kernels: KernelModule;
  private readonly pool: ThreadPool;
  private readonly arenas: Arena[] = [];
  /** the pool indices of this backend's arenas (shared with the collection callback, which must not hold `this`) */
  private readonly arenaIndices: number[] = [];
  /** weights from outside the memories, copied in once: by their bytes' buffer and range (not by tensor object) */
  private readonly copies = new WeakMap<ArrayBufferLike, Map<string, Placement>>();
  /**
   * F16 weights' correction lists for the rebased decode kernel (address, or 0 for none), by arena and weight
   * address: callers may describe the same bytes with new tensor objects (an expert's slice, per call)
   */
  private readonly correctionTables = new WeakMap<Arena, Map<number, number>>();
  private readonly scalar = new ReferenceBackend();
  /** whether the first memory holds the gelu table (wasm/kernels.ts GELU_TABLE), written on the first gelu */
  private geluTableReady = false;

  constructor(options: WasmBackendOptions = {}) {
    this.kernels = kernelModule(options.relaxed ?? true);
    this.threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
    this.maxScratch = options.maxScratchBytes ?? 128 * 1024 * 1024;
    this.name = this.kernels.relaxed ? 'wasm-relaxed-simd' : 'wasm-simd';
    this.pool = sharedPool(this.threads, this.kernels.module);
    this.newArena();
    // when the backend is collected, the pool's workers let go of its memories too
    releaseOnCollect.register(this, { pool: this.pool, indices: this.arenaIndices }, this);
  }

  /** A fresh memory, known to every thread. */
  newArena(): Arena {
    const arena = new Arena(this.kernels.module);
    arena.index = this.pool.adopt(arena.memory);
    this.arenas.push(arena);
    this.arenaIndices.push(arena.index);
    return arena;
  }

  /** All memories, in creation order (the first also holds the scratch of attention). */
  get memories(): readonly Arena[] {
    return this.arenas;
  }

  /** Opens a GGUF file with its tensors read straight into WebAssembly memory. */
  loadFile(path: string): GGUFModelFile {
    return loadIntoArenas(path, this);
  }

  /** Releases this backend's memories in the worker threads; the backend is unusable afterwards. */
  close(): void {
    releaseOnCollect.unregister(this);
    releaseArenas({ pool: this.pool, indices: this.arenaIndices });
    this.arenas.length = 0;
  }

  private place(w: WeightTensor): Placement {
    const arena = arenaOf(w.data);
    if (arena) return { arena, address: w.data.byteOffset };
    let copies = this.copies.get(w.data.buffer);
    if (!copies) this.copies.set(w.data.buffer, (copies = new Map()));
    const range = `${w.data.byteOffset}+${w.data.byteLength}`;
    let copy = copies.get(range);
    if (!copy) {
      const home = this.arenas[this.arenas.length - 1];
      const address = home.allocWeights(w.data.byteLength);
      home.bytes().set(w.data, address);
      copy = { arena: home, address };
      copies.set(range, copy);
    }
    return copy;
  }

  /**
   * The correction lists of an F16 weight (wasm/kernels.ts f16_corrections), made on its first decode: single tokens
   * read F16 rows with an integer exponent rebase instead of a multiply, and the lists take back what that adds for
   * zeros and subnormals. 0 (the exact, slower kernel) where the lists would be long (more than one value in 16:
   * mostly zeros), where rows are too long for the lists' 21-bit slots, or where the weight's memory is full.
   */
  private f16Corrections(w: WeightTensor, { arena, address }: Placement): number {
    let tables = this.correctionTables.get(arena);
    if (!tables) this.correctionTables.set(arena, (tables = new Map()));
    let table = tables.get(address);
    if (table !== undefined) return table;
    const [nIn, nOut] = w.dims;
    table = 0;
    if (nIn < 2 ** 21) {
      const count = arena.exports.f16_corrections(address, nOut, nIn, 0, false);
      if (count <= (nIn * nOut) / 16) {
        try {
          table = arena.allocWeights(4 * (nOut + 1 + count));
        } catch (error) {
          if (!(error instanceof ArenaFullError)) throw error;
        }
        if (table !== 0) arena.exports.f16_corrections(address, nOut, nIn, table, true);
      }
    }
    tables.set(address, table);
    return table;
  }

  matmul(out: Float32Array, x: Float32Array, w: WeightTensor, nTokens: number): void {
    const [nIn, nOut] = w.dims;
    const format = ACTIVATIONS.get(w.type);
    if (!format || nIn % format.multiple !== 0) return this.scalar.matmul(out, x, w, nTokens);
    // F16 rows that llama.cpp multiplies with f16 activations (see halfTimesFloat)
    if (w.type === GGMLType.F16 && !halfTimesFloat(w.type, nIn)) x = roundToHalfs(x.subarray(0, nTokens * nIn));
    // bound the scratch of a large batch (e.g. logits of every row of a long prompt)
    const perToken = 4 * nIn + format.rowBytes(nIn) + 4 * nOut;
    const step = Math.max(1, Math.floor(this.maxScratch / perToken));
    for (let t = 0; t < nTokens; t += step) {
      const n = Math.min(step, nTokens - t);
      this.matmulTokens(out.subarray(t * nOut, (t + n) * nOut), x.subarray(t * nIn, (t + n) * nIn), w, n, format);
    }
  }

  private matmulTokens(out: Float32Array, x: Float32Array, w: WeightTensor, nTokens: number, format: ActivationFormat): void {
    const [nIn, nOut] = w.dims;
    const placement = this.place(w);
    const { arena, address } = placement;
    const corrections = w.type === GGMLType.F16 && nTokens === 1 ? this.f16Corrections(w, placement) : 0;
    const k = arena.exports;
    const { blockSize, typeSize } = typeInfo(w.type);
    const wRowBytes = (nIn / blockSize) * typeSize;
    const actRowBytes = format.rowBytes(nIn);
    try {
      // scratch: x [nTokens, nIn] f32 | act [nTokens, actRowBytes] | out [nTokens, nOut] f32
      const xAt = arena.scratch(4 * nTokens * nIn);
      const actAt = arena.scratch(nTokens * actRowBytes);
      const outAt = arena.scratch(4 * nTokens * nOut);
      // per thread: 512 bytes, or the format's widened rows (see the kernel)
      const stride = Math.max(512, Math.ceil((format.threadScratch?.(nIn) ?? 0) / 64) * 64);
      const threadScratch = arena.scratch(stride * this.threads);
      const buffer = arena.bytes().buffer;
      new Float32Array(buffer, xAt, nTokens * nIn).set(x.subarray(0, nTokens * nIn));
      new Int32Array(buffer, COUNTER, 3).fill(0); // rows claimed, tokens claimed, tokens quantized
      // 32 chunks per thread: small enough that threads finish together, long enough that the 4-row kernels' four
      // streams (a quarter of a chunk each) read runs of consecutive rows
      const chunk = 4 * Math.max(1, Math.ceil(nOut / (this.threads * 32)));
      const args = [w.type, address, wRowBytes, xAt, actAt, actRowBytes, outAt, nIn, nOut, nTokens, corrections, COUNTER, chunk] as const;
      if (nIn * nOut * nTokens < POOLED_MATMUL_MIN) k.matmul(...args, threadScratch);
      else this.pool.run(k, arena.index, 'matmul', [...args], threadScratch, stride);
      out.set(new Float32Array(buffer, outAt, nTokens * nOut));
    } finally {
      arena.releaseScratch();
    }
  }

  /** KV cache storage in a memory of its own, released to the pool once the cache is collected. */
  allocateHalfs(count: number): Uint16Array {
    const arena = new Arena(this.kernels.module);
    arena.index = this.pool.adopt(arena.memory);
    const at = arena.allocWeights(2 * count);
    const buffer = arena.bytes().buffer;
    releaseOnCollect.register(buffer, { pool: this.pool, indices: [arena.index] });
    return new Uint16Array(buffer, at, count);
  }

  attention(out: Float32Array, q: Float32Array, nTokens: number, cache: AttentionCacheView, s: AttentionShape): void {
    const { nHeads, nKvHeads, headDim } = s;
    const valueDim = s.valueDim ?? headDim;
    // the kernel reads the cache where it lies (storage from allocateHalfs) and widens rows 4 or 8 values at a time
    const arena = arenaOf(cache.keys);
    if (!arena || arenaOf(cache.values) !== arena || headDim % 4 !== 0 || valueDim % 4 !== 0) return this.scalar.attention(out, q, nTokens, cache, s);
    const rows = Array.from({ length: nTokens }, (_, t) => cache.slotsFor(t));
    // the list of cache rows to read: rows whose slot lists are views of one array (a sequence's) share one range of it
    const ranges = new Map<ArrayBufferLike, { start: number; end: number; at: number }>();
    for (const slots of rows) {
      const start = slots.byteOffset / 4, end = start + slots.length;
      const range = ranges.get(slots.buffer);
      if (!range) {
        ranges.set(slots.buffer, { start, end, at: 0 });
      } else {
        range.start = Math.min(range.start, start);
        range.end = Math.max(range.end, end);
      }
    }
    let nList = 0;
    for (const range of ranges.values()) {
      range.at = nList;
      nList += range.end - range.start;
    }
    const maxLength = rows.reduce((m, slots) => Math.max(m, slots.length), 0);
    const group = nHeads / nKvHeads;
    // fewer (row, kv head) pairs than threads (decode with one kv head: MLA): the query heads of a pair are split too
    const parts = Math.min(group, Math.ceil(this.threads / (nTokens * nKvHeads)));
    const headsPerJob = Math.ceil(group / parts);
    // rows or jobs sharing cache rows: widen each listed row once for all of them; else each job widens its own
    const total = rows.reduce((n, slots) => n + slots.length, 0);
    const widenOnce = 2 * nList <= total || parts > 1;
    const padded = (maxLength + 3) & ~3;
    try {
      const listAt = arena.scratch(4 * nList);
      const wideKeysAt = widenOnce ? arena.scratch(4 * nList * nKvHeads * headDim) : 0;
      const wideValuesAt = widenOnce ? arena.scratch(4 * nList * nKvHeads * valueDim) : 0;
      const spansAt = arena.scratch(8 * nTokens);
      const qAt = arena.scratch(4 * nTokens * nHeads * headDim);
      const outAt = arena.scratch(4 * nTokens * nHeads * valueDim);
      // per thread: q of the job's heads, their scores, and without the shared widening the job's keys and values
      const stride = Math.ceil((4 * (headsPerJob * (headDim + padded) + (widenOnce ? 0 : padded * (headDim + valueDim)))) / 64) * 64;
      const threadScratch = arena.scratch(stride * this.threads);
      const buffer = arena.bytes().buffer;
      const list = new Int32Array(buffer, listAt, nList);
      for (const [source, range] of ranges) list.set(new Int32Array(source, 4 * range.start, range.end - range.start), range.at);
      // per row: [first entry of list, entries]
      const spans = new Int32Array(buffer, spansAt, 2 * nTokens);
      rows.forEach((slots, t) => {
        const range = ranges.get(slots.buffer)!;
        spans[2 * t] = range.at + slots.byteOffset / 4 - range.start;
        spans[2 * t + 1] = slots.length;
      });
      new Float32Array(buffer, qAt, nTokens * nHeads * headDim).set(q.subarray(0, nTokens * nHeads * headDim));
      new Int32Array(buffer, COUNTER, 3).fill(0); // jobs claimed, list entries claimed, list entries widened
      const cap = s.softcap ?? 0;
      const args = [qAt, outAt, cache.keys.byteOffset, cache.values.byteOffset, cache.keyStride, cache.valueStride, listAt, nList,
        wideKeysAt, wideValuesAt, spansAt, nTokens, nHeads, nKvHeads, headDim, valueDim, headsPerJob, maxLength, s.scale,
        cap ? Math.fround(1 / cap) : 0, cap, COUNTER];
      this.pool.run(arena.exports, arena.index, 'attention', args, threadScratch, stride);
      out.set(new Float32Array(buffer, outAt, nTokens * nHeads * valueDim));
    } finally {
      arena.releaseScratch();
    }
  }

  embedding(out: Float32Array, w: WeightTensor, tokens: Int32Array): void {
    this.scalar.embedding(out, w, tokens);
  }

  /**
   * An element-wise kernel over copies of `inputs` in scratch: `run` gets their addresses and writes its result over
   * the first one, which is copied to `out`.
   */
  private elementwise(out: Float32Array, inputs: Float32Array[], run: (at: number[], arena: Arena) => void): void {
    const arena = this.arenas[0];
    try {
      const at = inputs.map((v) => arena.scratch(4 * v.length));
      const buffer = arena.bytes().buffer;
      inputs.forEach((v, i) => new Float32Array(buffer, at[i], v.length).set(v));
      run(at, arena);
      out.set(new Float32Array(buffer, at[0], inputs[0].length));
    } finally {
      arena.releaseScratch();
    }
  }

  rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, nTokens: number, dim: number, eps: number): void {
    const n = nTokens * dim;
    if (n < LIGHT_KERNEL_MIN) return this.scalar.rmsnorm(out, x, weight, nTokens, dim, eps);
    this.elementwise(out, [x.subarray(0, n), weight.subarray(0, dim)], ([xAt, weightAt], arena) => arena.exports.rmsnorm(xAt, weightAt, xAt, nTokens, dim, eps));
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles, params: RopeParams): void {
    this.scalar.rope(x, nTokens, nHeads, headDim, angles, params);
  }

  /**
   * Runs a pooled kernel whose work is `n` units (values, rows) claimed in chunks from the counter: on the calling
   * thread (one chunk) below `pooledMin` units, else on the pool in about 8 chunks per thread, each a multiple of
   * `minChunk`.
   */
  private claimed(arena: Arena, kernel: 'elementwise' | 'layernorm', args: number[], n: number, pooledMin: number, minChunk: number): void {
    new Int32Array(arena.bytes().buffer, COUNTER, 1)[0] = 0;
    if (n < pooledMin || this.threads === 1) return (arena.exports[kernel] as (...a: number[]) => void)(...args, COUNTER, n, 0);
    this.pool.run(arena.exports, arena.index, kernel, [...args, COUNTER, minChunk * Math.ceil(n / (this.threads * 8 * minChunk))], 0, 0);
  }

  /** Element-wise op `op` of x (and y) into out, over n values: a = 1/c and b = c for the soft-cap, a the factor for scale. */
  private elementwiseOp(op: ElementwiseOp, out: Float32Array, x: Float32Array, n: number, y?: Float32Array, a = 0, b = 0): void {
    const inputs = y ? [x.subarray(0, n), y.subarray(0, n)] : [x.subarray(0, n)];
    this.elementwise(out, inputs, ([xAt, yAt], arena) => this.claimed(arena, 'elementwise', [op, xAt, yAt ?? 0, xAt, n, a, b], n, POOLED_MIN[op], 256));
  }

  swiglu(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    this.elementwiseOp(ElementwiseOp.Swiglu, out, gate, n, up);
  }

  layernorm(out: Float32Array, x: Float32Array, weight: Float32Array, bias: Float32Array, nTokens: number, dim: number, eps: number): void {
    const n = nTokens * dim;
    if (n < LIGHT_KERNEL_MIN) return this.scalar.layernorm(out, x, weight, bias, nTokens, dim, eps);
    this.elementwise(out, [x.subarray(0, n), weight.subarray(0, dim), bias.subarray(0, dim)], ([xAt, weightAt, biasAt], arena) =>
      // chunks of whole row pairs (the kernel sums two rows at a time)
      this.claimed(arena, 'layernorm', [xAt, weightAt, biasAt, xAt, nTokens, dim, eps], nTokens, Math.ceil(POOLED_MIN.layernorm / dim), 2));
  }

  gelu(out: Float32Array, gate: Float32Array, n: number, up?: Float32Array): void {
    const arena = this.arenas[0];
    if (!this.geluTableReady) {
      new Float32Array(arena.bytes().buffer, arena.exports.gelu_table(), 65536).set(geluHalfTable());
      this.geluTableReady = true;
    }
    this.elementwiseOp(up ? ElementwiseOp.Geglu : ElementwiseOp.Gelu, out, gate, n, up);
  }

  softcap(x: Float32Array, n: number, cap: number): void {
    this.elementwiseOp(ElementwiseOp.Softcap, x, x, n, undefined, Math.fround(1 / cap), cap);
  }

  scale(x: Float32Array, n: number, s: number): void {
    if (n < LIGHT_KERNEL_MIN) return this.scalar.scale(x, n, s);
    this.elementwiseOp(ElementwiseOp.Scale, x, x, n, undefined, s);
  }

  addInPlace(a: Float32Array, b: Float32Array, n: number): void {
    this.scalar.addInPlace(a, b, n);
  }

  addBias(x: Float32Array, bias: Float32Array, nTokens: number, dim: number): void {
    this.scalar.addBias(x, bias, nTokens, dim);
  }
}
