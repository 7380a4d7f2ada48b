// Matrix multiplication for training, where it dominates the time: out[n, m] (+)= a[n, k] · b[k, m].
// The bulk runs in the WebAssembly SIMD kernel of ./gemm-wasm.ts on a shared memory. Activations and parameters
// are allocated there (`allocFloats`); other operands are copied in (O(n·k + k·m + n·m) against the product's
// O(n·k·m)). Chunks of rows are claimed by this thread and `threads − 1` workers that run the same kernel on the
// same memory. Rows and columns beyond the kernel's tile multiples are finished in plain TypeScript.

import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { TILE_COLS, TILE_ROWS, gemmModuleBytes } from './gemm-wasm.js';

const PAGE = 65536;
const MAX_PAGES = 32768; // 2 GiB
/** below this much work a product runs on one thread (waking the workers costs more) */
const MIN_THREADED_FLOPS = 1 << 20;

type Gemm = (c: number, a: number, b: number, i0: number, i1: number, k: number, m: number, j1: number, aRow: number, aCol: number, add: number) => void;

// Control words shared with the workers: the job's generation (workers wait on it), its arguments, the claim word
// (generation · 2^12 + next unclaimed chunk) and the count of chunks done.
const GEN = 0, ARGS = 1, N_ARGS = 11, CLAIM = ARGS + N_ARGS, DONE = CLAIM + 1;
/** generations wrap below this so that generation · 2^12 stays a positive int32 */
const GEN_LIMIT = 1 << 18;
/** a job's rows are cut into at most this many chunks, claimed one at a time by whichever thread is free */
const MAX_CHUNKS = 16;

/**
 * Claims chunks of job `gen` one at a time and runs each on its rows [lo, hi); returns when none is left. A thread
 * that arrives after the job was taken (or finished) claims nothing, so a worker that is not scheduled in time
 * (a busy machine) only means the others do more.
 */
function workChunks(ctrl: Int32Array, gen: number, rows: number, nChunks: number, tile: number, claimAt: number, doneAt: number,
  run: (lo: number, hi: number) => void): void {
  const tiles = rows / tile;
  for (;;) {
    const word = Atomics.load(ctrl, claimAt), chunk = word & 0xfff;
    if (word >>> 12 !== gen || chunk >= nChunks) return;
    if (Atomics.compareExchange(ctrl, claimAt, word, word + 1) !== word) continue;
    run(Math.floor((tiles * chunk) / nChunks) * tile, Math.floor((tiles * (chunk + 1)) / nChunks) * tile);
    Atomics.add(ctrl, doneAt, 1);
    Atomics.notify(ctrl, doneAt);
  }
}

// A worker: instantiate the kernel on the shared memory, then help with every new job.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control } = workerData;
const ctrl = new Int32Array(control);
const gemm = new WebAssembly.Instance(module, { env: { memory } }).exports.gemm;
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, ${GEN}, seen);
  seen = Atomics.load(ctrl, ${GEN});
  const [c, a, b, rows, k, m, j1, aRow, aCol, add, nChunks] = ctrl.subarray(${ARGS}, ${ARGS + N_ARGS});
  workChunks(ctrl, seen, rows, nChunks, ${TILE_ROWS}, ${CLAIM}, ${DONE}, (lo, hi) => gemm(c, a, b, lo, hi, k, m, j1, aRow, aCol, add));
}
${workChunks.toString()}
`;

/** The kernel with fused multiply-adds where this V8 compiles relaxed SIMD, else with separate multiply and add. */
function compileKernel(): WebAssembly.Module {
  setFlagsFromString('--experimental-wasm-relaxed-simd'); // on by default from V8 11.4 (Node 21); Node 20 needs it
  try {
    return new WebAssembly.Module(gemmModuleBytes(MAX_PAGES, true));
  } catch {
    return new WebAssembly.Module(gemmModuleBytes(MAX_PAGES, false));
  }
}

class Kernel {
  readonly memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
  private readonly module = compileKernel();
  private readonly gemm: Gemm;
  private readonly zero: (at: number, bytes: number) => void;
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * (DONE + 1)));
  private workers: Worker[] = [];
  private generation = 0;
  /** every `memory.buffer` handed out (growing the memory makes a new one over the same bytes) */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /** bump allocator: bytes [0, top) are in use */
  top = 0;

  constructor() {
    const { exports } = new WebAssembly.Instance(this.module, { env: { memory: this.memory } });
    this.gemm = exports.gemm as Gemm;
    this.zero = exports.zero as (at: number, bytes: number) => void;
  }

  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > MAX_MATMUL_THREADS) throw new RangeError(`threads must be an integer in 1..${MAX_MATMUL_THREADS}, got ${n}`);
    for (const w of this.workers) void w.terminate();
    this.workers = [];
    this.control.fill(0);
    this.generation = 0;
    for (let index = 1; index < n; index++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: this.module, memory: this.memory, control: this.control.buffer },
      });
      worker.unref();
      this.workers.push(worker);
    }
  }

  /** `n` floats of the shared memory (16-byte aligned, zeroed unless `zero` is false), grown to fit */
  alloc(n: number, zero = true): Float32Array {
    const at = this.top;
    const end = at + Math.ceil(n / 4) * 16;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.min(MAX_PAGES - have / PAGE, Math.max(Math.ceil((end - have) / PAGE), have / PAGE));
      if (have + pages * PAGE < end) throw new RangeError(`training memory exhausted: ${end} bytes needed, at most ${MAX_PAGES * PAGE}`);
      this.memory.grow(pages);
    }
    this.top = end;
    const buffer = this.memory.buffer;
    this.buffers.add(buffer);
    const view = new Float32Array(buffer, at, n);
    if (zero) this.zero(at, 4 * n);
    return view;
  }

  owns(x: Float32Array): boolean {
    return this.buffers.has(x.buffer);
  }

  /** `x` itself when it lives in the shared memory, else a copy of its first `n` floats there */
  inMemory(x: Float32Array, n: number): Float32Array {
    if (this.owns(x)) return x;
    const copy = this.alloc(n, false);
    copy.set(x.subarray(0, n));
    return copy;
  }

  /** runs the kernel on rows [0, rows), columns [0, j1) split across the threads; operands at byte addresses c, a, b */
  run(c: number, a: number, b: number, rows: number, k: number, m: number, j1: number, aRow: number, aCol: number, add: number): void {
    if (this.workers.length === 0 || 2 * rows * k * j1 < MIN_THREADED_FLOPS) return this.gemm(c, a, b, 0, rows, k, m, j1, aRow, aCol, add);
    const ctrl = this.control;
    const nChunks = Math.min(MAX_CHUNKS, rows / TILE_ROWS);
    const gen = (this.generation = (this.generation % (GEN_LIMIT - 1)) + 1);
    ctrl.set([c, a, b, rows, k, m, j1, aRow, aCol, add, nChunks], ARGS);
    Atomics.store(ctrl, CLAIM, gen << 12);
    Atomics.store(ctrl, DONE, 0);
    Atomics.store(ctrl, GEN, gen);
    Atomics.notify(ctrl, GEN);
    workChunks(ctrl, gen, rows, nChunks, TILE_ROWS, CLAIM, DONE, (lo, hi) => this.gemm(c, a, b, lo, hi, k, m, j1, aRow, aCol, add));
    // wait for the chunks workers are still running
    for (let done = Atomics.load(ctrl, DONE); done < nChunks; done = Atomics.load(ctrl, DONE)) Atomics.wait(ctrl, DONE, done);
  }
}

/** Threads the matmuls may use at most. */
export const MAX_MATMUL_THREADS = 16;

let kernel: Kernel | undefined;
const theKernel = (): Kernel => (kernel ??= new Kernel());

/** Number of threads the matmuls use (this one plus workers). */
export function setMatmulThreads(n: number): void {
  theKernel().setThreads(n);
}

/**
 * `n` floats (zeroed unless `zero` is false) in the memory the kernel works on, so products of them need no copies.
 * They stay valid until `releaseFloats(mark)` with a mark taken before them (a training step takes one mark and
 * releases its activations).
 */
export function allocFloats(n: number, zero = true): Float32Array {
  return theKernel().alloc(n, zero);
}

/** The allocation mark to release back to. */
export function floatsMark(): number {
  return theKernel().top;
}

export function releaseFloats(mark: number): void {
  theKernel().top = mark;
}

/** C[i, j] += Σ_p A[i, p] · B[p, j] for rows [i0, i1) and columns [j0, j1), A[i, p] = a[i·aRow + p·aCol]: the edges */
function gemmEdge(c: Float32Array, a: Float32Array, b: Float32Array, k: number, m: number, aRow: number, aCol: number,
  i0: number, i1: number, j0: number, j1: number): void {
  if (j0 >= j1) return;
  for (let i = i0; i < i1; i++) {
    const ci = i * m;
    for (let p = 0; p < k; p++) {
      const av = a[i * aRow + p * aCol], bp = p * m;
      for (let j = j0; j < j1; j++) c[ci + j] += av * b[bp + j];
    }
  }
}

/**
 * out[n, m] = A · b[k, m], or out += A · b when `accumulate` (row-major). A is a [n, k], or with `transposeA`
 * the transpose of a [k, n].
 */
export function matmul(out: Float32Array, a: Float32Array, b: Float32Array, n: number, k: number, m: number,
  accumulate = false, transposeA = false): void {
  const aRow = transposeA ? 1 : k, aCol = transposeA ? n : 1;
  const nTiled = n - (n % TILE_ROWS), mTiled = m - (m % TILE_COLS);
  const kernelDoes = nTiled > 0 && mTiled > 0 && k > 0;
  if (!accumulate) {
    // the kernel overwrites its block; the edges start from zero
    if (!kernelDoes) out.fill(0, 0, n * m);
    else {
      if (mTiled < m) for (let i = 0; i < nTiled; i++) out.fill(0, i * m + mTiled, (i + 1) * m);
      if (nTiled < n) out.fill(0, nTiled * m, n * m);
    }
  }
  if (n === 0 || m === 0 || k === 0) return;
  if (kernelDoes) {
    const kern = theKernel();
    const mark = kern.top;
    const wa = kern.inMemory(a, n * k), wb = kern.inMemory(b, k * m);
    const wc = accumulate ? kern.inMemory(out, nTiled * m) : kern.owns(out) ? out : kern.alloc(nTiled * m, false);
    kern.run(wc.byteOffset, wa.byteOffset, wb.byteOffset, nTiled, k, m, mTiled, aRow, aCol, accumulate ? 1 : 0);
    if (wc !== out) {
      for (let i = 0; i < nTiled; i++) out.set(wc.subarray(i * m, i * m + mTiled), i * m);
    }
    kern.top = mark;
  }
  gemmEdge(out, a, b, k, m, aRow, aCol, 0, nTiled, mTiled, m);
  gemmEdge(out, a, b, k, m, aRow, aCol, nTiled, n, 0, m);
}

/** out[cols, rows] = xᵀ for x [rows, cols] */
export function transpose(out: Float32Array, x: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  }
}
