// The WebAssembly backend: matrix products, attention, the activations (swiglu, gelu, geglu), soft-cap and (for
// batches) layernorm, rmsnorm, rope and scale run as kernels (wasm/kernels/, SIMD128) over shared memories, all but
// rmsnorm and scale split across a pool of threads where the work is large enough; add stays in TypeScript, shared
// with the reference backend (training's memory adds with a kernel, wasm-training.ts). Weights loaded through
// `placeTensors` live in the memories already (no copy per op); any other weight is copied in once, on first use.

import { platform } from '../platform/index.js';
import type { AttentionCacheView, AttentionShape, Backend, RopeParams } from './backend.js';
import { halfTimesFloat, ReferenceBackend } from './reference.js';
import type { RopeAngles } from './rope.js';
import { Arena, ArenaFullError, COUNTER, arenaOf } from './arena.js';
import { sharedPool, type ThreadPool } from './thread-pool.js';
import { kernelModule, type KernelModule } from './wasm-module.js';
import { placeInArenas } from './wasm-weights.js';
import { geluHalfTable } from './formulas.js';
import type { GGUFModelFile, TensorReader } from '../gguf/model-file.js';
import type { GGUFHeader } from '../gguf/types.js';
import { expertSlice, type WeightTensor } from '../tensor/tensor.js';
import { GGMLType, typeInfo } from '../tensor/ggml-type.js';
import { fp16ToFp32, fp32ToFp16 } from '../tensor/float16.js';

/** How the kernels for a weight type take their activations (quantized inside the matmul job; layouts in wasm/kernels/quantize.ts). */
interface ActivationFormat {
  rowBytes(nIn: number): number;
  /** kernels need nIn to be a multiple of this */
  multiple: number;
  /** scratch bytes per thread for many tokens (widened weight rows; the least is 512) */
  threadScratch?(nIn: number): number;
}

// Q8_0 with f32 scales and block sums for Q4_0, Q5_0 weights (for several tokens each thread packs eight weight rows:
// 288 bytes per block, then 256 bytes of sums); Q8_0 and IQ4_NL weights: with signs split off (one token) or as int16
// (several; each thread widens eight weight rows to int16: 544 bytes per block, then 128 bytes of sums), both 68 bytes
// per block
const Q8_0_SUMS_ACT: ActivationFormat = { rowBytes: (n) => (n / 32) * 40, multiple: 32, threadScratch: (n) => (n / 32) * 288 + 256 };
const Q8_0_SPLIT_ACT: ActivationFormat = { rowBytes: (n) => (n / 32) * 68, multiple: 32, threadScratch: (n) => (n / 32) * 544 + 128 };
const Q8_1_ACT: ActivationFormat = { rowBytes: (n) => (n / 32) * 36, multiple: 32 };
const Q8_K_ACT: ActivationFormat = { rowBytes: (n) => (n / 256) * 292, multiple: 256 };
// Q4_K weights: for several tokens each thread packs eight weight rows (2624 bytes per super-block, then 256 bytes of sums)
const Q8_K_PACKED_ACT: ActivationFormat = { ...Q8_K_ACT, threadScratch: (n) => (n / 256) * 2624 + 256 };
// Q6_K weights likewise (1424 bytes per super-block, then 16 and four rows unpacked, 4·368)
const Q8_K_PACKED6_ACT: ActivationFormat = { ...Q8_K_ACT, threadScratch: (n) => (n / 256) * 1424 + 1488 };
// F16 weights meet unrounded f32 activations (as the reference does, after llama.cpp's F16×F32 path); BF16 ones
// bf16-rounded. For many tokens each thread widens two weight rows to f32.
const FLOAT_ACT: ActivationFormat = { rowBytes: (n) => 4 * n, multiple: 8, threadScratch: (n) => 8 * n };

const ACTIVATIONS = new Map<GGMLType, ActivationFormat>([
  [GGMLType.Q4_0, Q8_0_SUMS_ACT], [GGMLType.Q5_0, Q8_0_SUMS_ACT], [GGMLType.Q8_0, Q8_0_SPLIT_ACT], [GGMLType.IQ4_NL, Q8_0_SPLIT_ACT],
  [GGMLType.Q4_1, Q8_1_ACT], [GGMLType.Q5_1, Q8_1_ACT],
  [GGMLType.Q2_K, Q8_K_ACT], [GGMLType.Q3_K, Q8_K_ACT], [GGMLType.Q4_K, Q8_K_PACKED_ACT], [GGMLType.Q5_K, Q8_K_ACT], [GGMLType.Q6_K, Q8_K_PACKED6_ACT],
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

/** The element-wise kernel's ops (wasm/kernels/elementwise.ts `elementwise`). */
export enum ElementwiseOp { Swiglu = 0, Gelu = 1, Geglu = 2, Softcap = 3, Scale = 4, Add = 5, Zero = 6 }

/**
 * Values from which an op's work is shared by the pool (below, waking the threads would cost more than it saves):
 * by what one value costs (swiglu, soft-cap: an f64 exponential; gelu: four table loads a vector; layernorm: two f64
 * sums in order); scale never (a multiply: copying dominates); zero (training's new gradient buffers) from 256 KiB.
 */
export const POOLED_MIN: Record<ElementwiseOp | 'layernorm' | 'rope', number> = {
  [ElementwiseOp.Swiglu]: 12288, [ElementwiseOp.Softcap]: 12288, [ElementwiseOp.Gelu]: 32768, [ElementwiseOp.Geglu]: 32768,
  [ElementwiseOp.Scale]: Infinity, [ElementwiseOp.Add]: 65536, [ElementwiseOp.Zero]: 65536, layernorm: 16384, rope: 32768,
};

/**
 * Multiply-adds below which a matrix product runs on the calling thread alone: waking the pool and waiting for it
 * costs a few microseconds, more than such a product takes (routers); from about this size on, two threads reading
 * a weight from memory beat one.
 */
const POOLED_MATMUL_MIN = 16384;

/** Multiply-adds (q·k and p·v) below which attention runs on the calling thread alone (waking the pool costs more). */
const POOLED_ATTENTION_MIN = 262144;

/** Queries (rows × heads) an attention job takes together at most, from rows of one sequence that see the same keys. */
const BLOCK_QUERIES = 8;

export interface WasmBackendOptions {
  /** threads in all (default: the machine's cores) */
  threads?: number;
  /** use the relaxed-SIMD build where the runtime supports it (default true) */
  relaxed?: boolean;
  /** scratch bytes one matmul may use; a larger batch is done in parts (default 128 MiB) */
  maxScratchBytes?: number;
}

/**
 * Rows [first, first + tokens) of a matmul call times each of `weights` (one type and shape): 2-D (dims [nIn, nOut],
 * expert 0), or stacked (dims [nIn, nOut, nExpert]) and then their expert `expert`.
 */
interface Product {
  first: number;
  tokens: number;
  weights: WeightTensor[];
  expert: number;
}

/** A product's weight k as a 2-D weight. */
function weightOf(p: Product, k: number): WeightTensor {
  return p.weights[k].dims.length > 2 ? expertSlice(p.weights[k], p.expert) : p.weights[k];
}

/** Where the rows of a matmul call come from and go to: row i reads row from[i] of x and writes row to[i] of each output. */
interface RowMap {
  from: Int32Array;
  to: Int32Array;
}

/** Where a weight's bytes live in WebAssembly memory. */
interface Placement {
  arena: Arena;
  address: number;
}

const threadsOf = (options: WasmBackendOptions) => Math.max(1, Math.floor(options.threads ?? platform.cores()));

export class WasmBackend implements Backend {
  readonly name: string;
  readonly threads: number;
  private readonly maxScratch: number;
  private readonly kernels: KernelModule;
  protected readonly pool: ThreadPool;
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
  /** whether the first memory holds the gelu table (wasm/kernels/common.ts GELU_TABLE), written on the first gelu */
  private geluTableReady = false;

  constructor(options: WasmBackendOptions = {}) {
    this.kernels = kernelModule(options.relaxed ?? true);
    this.threads = threadsOf(options);
    this.maxScratch = options.maxScratchBytes ?? 128 * 1024 * 1024;
    this.name = this.kernels.relaxed ? 'wasm-relaxed-simd' : 'wasm-simd';
    this.pool = sharedPool(this.threads, this.kernels.module);
    this.newArena();
    // when the backend is collected, the pool's workers let go of its memories too
    releaseOnCollect.register(this, { pool: this.pool, indices: this.arenaIndices }, this);
  }

  /**
   * A backend whose kernel threads already run: in a page, workers start only once their maker yields to its event
   * loop, and the constructor's first memory waits for every thread to adopt it.
   */
  static async start(options: WasmBackendOptions = {}): Promise<WasmBackend> {
    await sharedPool(threadsOf(options), kernelModule(options.relaxed ?? true).module).started();
    return new WasmBackend(options);
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

  /** Reads a model's tensors straight into WebAssembly memory. */
  placeTensors(path: string, header: GGUFHeader, read: TensorReader): GGUFModelFile {
    return placeInArenas(path, header, read, this);
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
   * The correction lists of an F16 weight (wasm/kernels/matmul.ts f16_corrections), made on its first decode: single tokens
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

  matmul(out: Float32Array, x: Float32Array, w: WeightTensor, nTokens: number, bias?: Float32Array): void {
    this.multiply(x, nTokens, [{ first: 0, tokens: nTokens, weights: [w], expert: 0 }], [out], undefined, bias && [bias]);
  }

  matmulMany(outs: Float32Array[], x: Float32Array, weights: WeightTensor[], nTokens: number, biases?: Float32Array[]): void {
    this.multiply(x, nTokens, [{ first: 0, tokens: nTokens, weights, expert: 0 }], outs, undefined, biases);
  }

  matmulExperts(outs: Float32Array[], x: Float32Array, nRows: number, weights: WeightTensor[], experts: Int32Array): void {
    const nSlots = experts.length, slotsPerRow = nSlots / nRows, nExpert = weights[0].dims[2];
    // the slots ordered by expert (a counting sort, in slot order within one): each expert's run is one product
    const start = new Int32Array(nExpert + 1);
    for (const e of experts) {
      if (!(e >= 0 && e < nExpert)) throw new RangeError(`expert ${e} is outside 0..${nExpert - 1}`);
      start[e + 1]++;
    }
    for (let e = 0; e < nExpert; e++) start[e + 1] += start[e];
    const products: Product[] = [];
    for (let e = 0; e < nExpert; e++) {
      if (start[e + 1] > start[e]) products.push({ first: start[e], tokens: start[e + 1] - start[e], weights, expert: e });
    }
    const to = new Int32Array(nSlots), from = new Int32Array(nSlots), next = start.slice(0, nExpert);
    let inPlace = slotsPerRow === 1;
    for (let s = 0; s < nSlots; s++) {
      const i = next[experts[s]]++;
      to[i] = s;
      from[i] = Math.floor(s / slotsPerRow);
      inPlace &&= i === s;
    }
    // rows already in that order are read and written in place
    this.multiply(x, nSlots, products, outs, inPlace ? undefined : { from, to });
  }

  /**
   * Runs `products` (all weights of one type and shape) over the rows of x, into outs[k] for weight k (plus biases[k]
   * where given): in as few kernel calls as the weights' memories and the scratch limit allow. Row i of the call reads
   * x row map.from[i] and writes row map.to[i] of each output (without a map: row i).
   */
  private multiply(x: Float32Array, nRows: number, products: Product[], outs: Float32Array[], map?: RowMap, biases?: Float32Array[]): void {
    const w = products[0].weights[0];
    const [nIn, nOut] = w.dims;
    const nWeights = outs.length;
    const format = ACTIVATIONS.get(w.type);
    if (!format || nIn % format.multiple !== 0) {
      for (let i = 0; i < nRows; i++) {
        const p = products.find((q) => i < q.first + q.tokens)!, from = map?.from[i] ?? i, to = map?.to[i] ?? i;
        for (let k = 0; k < nWeights; k++) this.scalar.matmul(outs[k].subarray(to * nOut, (to + 1) * nOut), x.subarray(from * nIn, (from + 1) * nIn), weightOf(p, k), 1, biases?.[k]);
      }
      return;
    }
    // F16 rows that llama.cpp multiplies with f16 activations (see halfTimesFloat)
    if (w.type === GGMLType.F16 && !halfTimesFloat(w.type, nIn)) x = roundToHalfs(x);
    // one call needs every weight in one memory: else each weight (or, at worst, each product) on its own. A stacked
    // weight is placed whole, its experts nOut rows apart
    const expertBytes = nOut * (nIn / typeInfo(w.type).blockSize) * typeInfo(w.type).typeSize;
    const placed = new Map<WeightTensor, Placement>();
    const placements = products.length === 1 && nWeights === 1 && products[0].expert === 0 ? [[this.place(w)]] : products.map((p) => p.weights.map((wk) => {
      let whole = placed.get(wk);
      if (!whole) placed.set(wk, (whole = this.place(wk)));
      return p.expert ? { arena: whole.arena, address: whole.address + p.expert * expertBytes } : whole;
    }));
    const arena = placements[0][0].arena;
    for (const placed of placements) {
      if (placed.every((pl) => pl.arena === arena)) continue;
      if (nWeights > 1) {
        for (let k = 0; k < nWeights; k++) this.multiply(x, nRows, products.map((q) => ({ ...q, weights: [q.weights[k]] })), [outs[k]], map, biases && [biases[k]]);
      } else {
        const rows = (p: Product) => Int32Array.from({ length: p.tokens }, (_, i) => p.first + i);
        for (const p of products) {
          this.multiply(x, p.tokens, [{ ...p, first: 0 }], outs, map ? { from: map.from.subarray(p.first, p.first + p.tokens), to: map.to.subarray(p.first, p.first + p.tokens) } : { from: rows(p), to: rows(p) }, biases);
        }
      }
      return;
    }
    // bound the scratch of a large batch (e.g. logits of every row of a long prompt): calls of at most `step` rows,
    // a product that crosses a boundary split in two
    const step = Math.max(1, Math.floor(this.maxScratch / (4 * nIn + format.rowBytes(nIn) + 4 * nOut * nWeights)));
    if (nRows <= step) return this.multiplyInArena(arena, x, nRows, products, placements, outs, map, biases, format);
    for (let start = 0; start < nRows; start += step) {
      const end = Math.min(nRows, start + step);
      const part: Product[] = [], partPlacements: Placement[][] = [];
      products.forEach((p, i) => {
        const from = Math.max(p.first, start), to = Math.min(p.first + p.tokens, end);
        if (from >= to) return;
        part.push({ ...p, first: from - start, tokens: to - from });
        partPlacements.push(placements[i]);
      });
      if (map) this.multiplyInArena(arena, x, end - start, part, partPlacements, outs, { from: map.from.subarray(start, end), to: map.to.subarray(start, end) }, biases, format);
      else this.multiplyInArena(arena, x.subarray(start * nIn, end * nIn), end - start, part, partPlacements, outs.map((o) => o.subarray(start * nOut, end * nOut)), undefined, biases, format);
    }
  }

  /** One kernel call of `multiply`: products whose weights all live in `arena` at `placements` (see wasm/kernels/matmul.ts matmul). */
  private multiplyInArena(
    arena: Arena, x: Float32Array, nRows: number, products: Product[], placements: Placement[][], outs: Float32Array[],
    map: RowMap | undefined, biases: Float32Array[] | undefined, format: ActivationFormat,
  ): void {
    const w = products[0].weights[0];
    const [nIn, nOut] = w.dims;
    const nWeights = outs.length, nProducts = products.length;
    const { blockSize, typeSize } = typeInfo(w.type);
    const wRowBytes = (nIn / blockSize) * typeSize;
    const actRowBytes = format.rowBytes(nIn);
    // F16 weights' correction lists for single tokens, found before the scratch is taken (making them takes memory)
    const corrections = w.type === GGMLType.F16 ? products.map((p, i) => p.weights.map((wk, k) => (p.tokens === 1 ? this.f16Corrections(wk, placements[i][k]) : 0))) : undefined;
    try {
      // scratch: x [nRows, nIn] f32 | act [nRows, actRowBytes] | out [nWeights, nRows, nOut] f32 | biases [nWeights, nOut]
      // f32 | the product table (per product [first, tokens, then per weight: address, correction lists, output, bias])
      const fields = 2 + 4 * nWeights;
      const xAt = arena.scratch(4 * nRows * nIn);
      const actAt = arena.scratch(nRows * actRowBytes);
      const outAt = arena.scratch(4 * nWeights * nRows * nOut);
      const biasAt = biases ? arena.scratch(4 * nWeights * nOut) : 0;
      const tableAt = arena.scratch(4 * fields * nProducts);
      // per thread: 512 bytes, or the format's widened rows (see the kernel)
      const stride = Math.max(512, Math.ceil((format.threadScratch?.(nIn) ?? 0) / 64) * 64);
      const threadScratch = arena.scratch(stride * this.threads);
      const f32 = arena.floats(), i32 = arena.ints();
      if (!map) f32.set(x.subarray(0, nRows * nIn), xAt / 4);
      else for (let i = 0; i < nRows; i++) f32.set(x.subarray(map.from[i] * nIn, (map.from[i] + 1) * nIn), xAt / 4 + i * nIn);
      if (biases) for (let k = 0; k < nWeights; k++) f32.set(biases[k].subarray(0, nOut), biasAt / 4 + k * nOut);
      // weight k's output for row r at outAt + 4·(k·nRows + r)·nOut
      for (let i = 0, at = tableAt / 4; i < nProducts; i++, at += fields) {
        const p = products[i];
        i32[at] = p.first;
        i32[at + 1] = p.tokens;
        for (let k = 0; k < nWeights; k++) {
          i32[at + 2 + 4 * k] = placements[i][k].address;
          i32[at + 3 + 4 * k] = corrections ? corrections[i][k] : 0;
          i32[at + 4 + 4 * k] = outAt + 4 * (k * nRows + p.first) * nOut;
          i32[at + 5 + 4 * k] = biases ? biasAt + 4 * k * nOut : 0;
        }
      }
      i32[COUNTER / 4] = i32[COUNTER / 4 + 1] = i32[COUNTER / 4 + 2] = 0; // chunks claimed, rows claimed, rows quantized
      // chunks of a multiple of 4 rows (8 for many tokens: the tiles take eight rows), at most a weight's: 8 per thread
      // for many tokens (small enough that threads finish together), 2 when each product has one (a claim moves the
      // counter's cache line between cores, which costs more than unequal shares there, and longer chunks give the
      // decode kernels' streams longer runs of rows)
      const perThread = nRows === nProducts ? 2 : 8;
      const unit = nRows === nProducts ? 4 : 8;
      const chunk = unit * Math.min(Math.ceil(nOut / unit), Math.max(1, Math.ceil((nOut * nWeights * nProducts) / (this.threads * perThread * unit))));
      const args = [w.type, wRowBytes, xAt, actAt, actRowBytes, nIn, nOut, nRows, tableAt, nProducts, nWeights, COUNTER, chunk];
      if (nIn * nOut * nRows * nWeights < POOLED_MATMUL_MIN) {
        arena.exports.matmul(w.type, wRowBytes, xAt, actAt, actRowBytes, nIn, nOut, nRows, tableAt, nProducts, nWeights, COUNTER, chunk, threadScratch);
      } else {
        this.pool.run(arena.exports, arena.index, 'matmul', args, threadScratch, stride);
      }
      for (let k = 0; k < nWeights; k++) {
        const from = outAt / 4 + k * nRows * nOut;
        if (!map) outs[k].set(f32.subarray(from, from + nRows * nOut));
        else for (let i = 0; i < nRows; i++) outs[k].set(f32.subarray(from + i * nOut, from + (i + 1) * nOut), map.to[i] * nOut);
      }
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
    const rows: Int32Array[] = [];
    for (let t = 0; t < nTokens; t++) rows.push(cache.slotsFor(t));
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
    const group = nHeads / nKvHeads;
    // blocks: runs of consecutive rows of one sequence whose spans' union is at most the block's rows longer than the
    // longest of them (a prompt's causal or bidirectional rows, overlapping windows): their queries, up to about
    // BLOCK_QUERIES, meet each key together
    const rowsPerBlock = Math.max(1, Math.min(nTokens, Math.floor(BLOCK_QUERIES / group) || 1));
    const blocks: number[] = []; // [first row, rows] pairs
    let maxLength = 0, maxRows = 0;
    for (let t = 0; t < nTokens;) {
      const { buffer } = rows[t];
      let lo = rows[t].byteOffset, hi = lo + 4 * rows[t].length, longest = rows[t].length, r = 1;
      for (; r < rowsPerBlock && t + r < nTokens && rows[t + r].buffer === buffer; r++) {
        const next = rows[t + r];
        const lo2 = Math.min(lo, next.byteOffset), hi2 = Math.max(hi, next.byteOffset + 4 * next.length), longest2 = Math.max(longest, next.length);
        if ((hi2 - lo2) / 4 > longest2 + rowsPerBlock) break;
        [lo, hi, longest] = [lo2, hi2, longest2];
      }
      blocks.push(t, r);
      maxLength = Math.max(maxLength, (hi - lo) / 4);
      maxRows = Math.max(maxRows, r);
      t += r;
    }
    const nBlocks = blocks.length / 2;
    // little work (decode over a short context) is done by the calling thread alone
    const threads = nTokens * nHeads * maxLength * (headDim + valueDim) < POOLED_ATTENTION_MIN ? 1 : this.threads;
    // fewer (block, kv head) pairs than threads (decode with one kv head: MLA): the query heads of a pair are split too
    const parts = Math.min(group, Math.ceil(threads / (nBlocks * nKvHeads)));
    const headsPerJob = Math.ceil(group / parts);
    const maxQueries = maxRows * headsPerJob;
    // rows or jobs sharing cache rows: widen each listed row once for all of them; else each job widens its own
    let total = 0;
    for (const slots of rows) total += slots.length;
    const widenOnce = 2 * nList <= total || parts > 1;
    const padded = (maxLength + 3) & ~3;
    try {
      const listAt = arena.scratch(4 * nList);
      const wideKeysAt = widenOnce ? arena.scratch(4 * nList * nKvHeads * headDim) : 0;
      const wideValuesAt = widenOnce ? arena.scratch(4 * nList * nKvHeads * valueDim) : 0;
      const spansAt = arena.scratch(8 * nTokens);
      const blocksAt = arena.scratch(4 * blocks.length);
      const qAt = arena.scratch(4 * nTokens * nHeads * headDim);
      const outAt = arena.scratch(4 * nTokens * nHeads * valueDim);
      // per thread: the job's queries, their scores, and without the shared widening the job's keys and values
      const stride = Math.ceil((4 * (maxQueries * (headDim + padded) + (widenOnce ? 0 : padded * (headDim + valueDim)))) / 64) * 64;
      const threadScratch = arena.scratch(stride * threads);
      const f32 = arena.floats(), i32 = arena.ints();
      for (const [source, range] of ranges) i32.set(new Int32Array(source, 4 * range.start, range.end - range.start), listAt / 4 + range.at);
      // per row: [first entry of list, entries]
      for (let t = 0; t < nTokens; t++) {
        const slots = rows[t], range = ranges.get(slots.buffer)!;
        i32[spansAt / 4 + 2 * t] = range.at + slots.byteOffset / 4 - range.start;
        i32[spansAt / 4 + 2 * t + 1] = slots.length;
      }
      i32.set(blocks, blocksAt / 4);
      f32.set(q.subarray(0, nTokens * nHeads * headDim), qAt / 4);
      i32[COUNTER / 4] = i32[COUNTER / 4 + 1] = i32[COUNTER / 4 + 2] = 0; // jobs claimed, list entries claimed, list entries widened
      const cap = s.softcap ?? 0;
      const args = [qAt, outAt, cache.keys.byteOffset, cache.values.byteOffset, cache.keyStride, cache.valueStride, listAt, nList,
        wideKeysAt, wideValuesAt, spansAt, blocksAt, nBlocks, nHeads, nKvHeads, headDim, valueDim, headsPerJob, maxQueries, maxLength,
        s.scale, cap ? Math.fround(1 / cap) : 0, cap, COUNTER];
      if (threads === 1) (arena.exports.attention as (...a: number[]) => void)(...args, threadScratch);
      else this.pool.run(arena.exports, arena.index, 'attention', args, threadScratch, stride);
      out.set(f32.subarray(outAt / 4, outAt / 4 + nTokens * nHeads * valueDim));
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
    const n = nTokens * nHeads * headDim;
    if (n < LIGHT_KERNEL_MIN) return this.scalar.rope(x, nTokens, nHeads, headDim, angles, params);
    this.elementwise(x, [x.subarray(0, n)], ([xAt], arena) => this.ropeRows(arena, xAt, xAt, nTokens, nHeads, headDim, angles, params, false, false));
  }

  /**
   * The rope kernel (wasm/kernels/rope.ts) from rows at xAt into rows at outAt of `arena`, with the angles copied into
   * its scratch (the caller releases it): by −θ with `inverse`, added to out with `accumulate`.
   */
  protected ropeRows(arena: Arena, xAt: number, outAt: number, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles,
    p: RopeParams, inverse: boolean, accumulate: boolean): void {
    const count = (nTokens * p.nDims) / 2;
    const cosAt = arena.scratch(8 * count), sinAt = arena.scratch(8 * count);
    const f64 = new Float64Array(arena.bytes().buffer);
    f64.set(angles.cos.subarray(0, count), cosAt / 8);
    f64.set(angles.sin.subarray(0, count), sinAt / 8);
    const args = [xAt, outAt, nTokens, nHeads, headDim, cosAt, sinAt, p.nDims, p.neox ? 1 : 0, p.offset ?? 0, inverse ? 1 : 0, accumulate ? 1 : 0];
    this.claimed(arena, 'rope', args, nTokens, Math.ceil(POOLED_MIN.rope / (nHeads * headDim)), 1);
  }

  /**
   * Runs a pooled kernel whose work is `n` units (values, rows) claimed in chunks from the counter: on the calling
   * thread (one chunk) below `pooledMin` units, else on the pool in about 8 chunks per thread, each a multiple of
   * `minChunk`.
   */
  private claimed(arena: Arena, kernel: 'elementwise' | 'layernorm' | 'rope', args: number[], n: number, pooledMin: number, minChunk: number): void {
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
