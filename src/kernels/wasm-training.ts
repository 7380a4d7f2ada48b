// The WebAssembly backend's training kernels (backend.ts TrainingBackend), on the same module, memories and thread
// pool as inference: training's tensors are allocated in the backend's first memory (below its scratch, released
// back to a mark after each step), so products and attention read and write them in place; an operand from elsewhere
// is copied into scratch for the op. Kernels: wasm/kernels/gemm.ts, attention-train.ts, elementwise.ts, rope.ts,
// loss.ts, optim.ts.

import { OPTIMIZER_CHUNK, type AdamWStep, type AttentionShape, type OptimizerTensor, type RopeParams, type TrainingBackend } from './backend.js';
import type { RopeAngles } from './rope.js';
import { COUNTER, arenaOf, type Arena } from './arena.js';
import type { PooledKernel } from './thread-pool.js';
import { ReferenceTrainingBackend } from './reference-training.js';
import { ElementwiseOp, POOLED_MIN, WasmBackend } from './wasm.js';

/** Multiply-adds below which a product runs on the calling thread alone (waking the pool costs more). */
const POOLED_GEMM_MIN = 1 << 17;
/** Rows of rmsnorm's backward a thread claims at a time (fixed: dweight's sums must not depend on the threads). */
const RMSNORM_CHUNK = 32;
/** Values below which an element-wise op (swiglu, rmsnorm backward) runs on the calling thread alone. */
const POOLED_ELEMENTWISE_MIN = 12288;
/** Values below which an add (a load, an add, a store) runs on the calling thread alone. */
const POOLED_ADD_MIN = 65536;
/** Logits (rows × vocabulary) below which the loss runs on the calling thread alone (an f64 exponential each). */
const POOLED_LOSS_MIN = 12288;
/** Optimizer values below which the step runs on the calling thread alone. */
const POOLED_OPTIMIZER_MIN = 65536;

export class WasmTrainingBackend extends WasmBackend implements TrainingBackend {
  private readonly reference = new ReferenceTrainingBackend();

  /** the memory training's tensors live in */
  private get arena(): Arena {
    return this.memories[0];
  }

  allocFloats(n: number, zero = true): Float32Array {
    const arena = this.arena, at = arena.allocWeights(4 * n);
    if (zero && n >= POOLED_MIN[ElementwiseOp.Zero]) this.runKernel('elementwise', [ElementwiseOp.Zero, 0, 0, at, n, 0, 0], [this.chunk(n, 1024)], true);
    else if (zero) arena.exports.zero(at, 4 * n);
    return arena.floats().subarray(at / 4, at / 4 + n);
  }

  floatsMark(): number {
    return this.arena.weightsMark();
  }

  releaseFloats(mark: number): void {
    this.arena.releaseWeights(mark);
  }

  /** x's byte address in the training memory: where it is, or a copy of its first n values in scratch */
  private address(x: Float32Array | Float64Array | Int32Array, n = x.length): number {
    if (arenaOf(x) === this.arena) return x.byteOffset;
    const bytes = n * x.BYTES_PER_ELEMENT, at = this.arena.scratch(bytes);
    new Uint8Array(this.arena.bytes().buffer, at, bytes).set(new Uint8Array(x.buffer, x.byteOffset, bytes));
    return at;
  }

  /** runs `body` with addresses of `outputs` in the training memory, copying back those that were not there */
  private withOutputs(outputs: [Float32Array, number][], body: (at: number[]) => void): void {
    const arena = this.arena;
    try {
      const at = outputs.map(([x, n]) => this.address(x, n));
      body(at);
      const f32 = arena.floats();
      outputs.forEach(([x, n], i) => { if (arenaOf(x) !== arena) x.set(f32.subarray(at[i] / 4, at[i] / 4 + n)); });
    } finally {
      arena.releaseScratch();
    }
  }

  /**
   * kernel `name`(...args, counter, ...after, scratch) on the pool, or on this thread alone when `pooled` is false;
   * the counter starts at 0, each thread gets `scratchStride` zeroed bytes of scratch. Returns the scratch's address.
   */
  private runKernel(name: PooledKernel, args: number[], after: number[], pooled: boolean, scratchStride = 0): number {
    const arena = this.arena;
    arena.ints()[COUNTER / 4] = 0;
    const scratch = scratchStride > 0 ? arena.scratch(scratchStride * this.threads) : 0;
    if (scratch) arena.exports.zero(scratch, scratchStride * this.threads);
    if (pooled && this.threads > 1) this.pool.run(arena.exports, arena.index, name, [...args, COUNTER, ...after], scratch, scratchStride);
    else (arena.exports[name] as (...a: number[]) => void)(...args, COUNTER, ...after, scratch);
    return scratch;
  }

  /** a chunk of about 1/8 of a thread's share of n units, a multiple of `multiple` */
  private chunk(n: number, multiple: number): number {
    return multiple * Math.max(1, Math.ceil(n / (this.threads * 8 * multiple)));
  }

  /** whether every view lies in the training memory (element-wise ops then run in place, without copies) */
  private inMemory(...views: Float32Array[]): boolean {
    return views.every((v) => arenaOf(v) === this.arena);
  }

  override rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, nTokens: number, dim: number, eps: number): void {
    if (!this.inMemory(out, x, weight)) return super.rmsnorm(out, x, weight, nTokens, dim, eps);
    this.arena.exports.rmsnorm(x.byteOffset, weight.byteOffset, out.byteOffset, nTokens, dim, eps);
  }

  override swiglu(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    if (!this.inMemory(out, gate, up)) return super.swiglu(out, gate, up, n);
    this.runKernel('elementwise', [ElementwiseOp.Swiglu, gate.byteOffset, up.byteOffset, out.byteOffset, n, 0, 0], [this.chunk(n, 256)], n >= POOLED_ELEMENTWISE_MIN);
  }

  override addInPlace(a: Float32Array, b: Float32Array, n: number): void {
    if (!this.inMemory(a, b)) return super.addInPlace(a, b, n);
    this.runKernel('elementwise', [ElementwiseOp.Add, a.byteOffset, b.byteOffset, a.byteOffset, n, 0, 0], [this.chunk(n, 256)], n >= POOLED_ADD_MIN);
  }

  override rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles, params: RopeParams): void {
    if (!this.inMemory(x)) return super.rope(x, nTokens, nHeads, headDim, angles, params);
    this.withOutputs([], () => this.ropeRows(this.arena, x.byteOffset, x.byteOffset, nTokens, nHeads, headDim, angles, params, false, false));
  }

  ropeBackward(dx: Float32Array, g: Float32Array, nTokens: number, nHeads: number, headDim: number, angles: RopeAngles, params: RopeParams): void {
    const n = nTokens * nHeads * headDim;
    this.withOutputs([[dx, n]], ([dxAt]) => this.ropeRows(this.arena, this.address(g, n), dxAt, nTokens, nHeads, headDim, angles, params, true, true));
  }

  /** the optimizer kernels' chunk table in scratch, i32 [grad, value, m, v, count, decayed] per chunk (wasm/kernels/optim.ts) */
  private chunkTable(tensors: OptimizerTensor[]): { table: number; nChunks: number; values: number } {
    const rows: number[] = [];
    let values = 0;
    for (const t of tensors) {
      for (let start = 0; start < t.grad.length; start += OPTIMIZER_CHUNK) {
        rows.push(t.grad.byteOffset + 4 * start, t.value.byteOffset + 4 * start, t.m.byteOffset + 4 * start, t.v.byteOffset + 4 * start,
          Math.min(OPTIMIZER_CHUNK, t.grad.length - start), t.decayed ? 1 : 0);
      }
      values += t.grad.length;
    }
    const table = this.arena.scratch(4 * rows.length);
    this.arena.ints().set(rows, table / 4);
    return { table, nChunks: rows.length / 6, values };
  }

  sumSquares(tensors: OptimizerTensor[]): number {
    if (!tensors.every((t) => this.inMemory(t.grad))) return this.reference.sumSquares(tensors);
    let total = 0;
    this.withOutputs([], () => {
      const { table, nChunks, values } = this.chunkTable(tensors);
      const partials = this.arena.scratch(8 * nChunks);
      this.runKernel('sum_squares', [table, nChunks, partials], [], values >= POOLED_OPTIMIZER_MIN);
      // the chunks' sums added in order: the same norm at any thread count
      for (const part of new Float64Array(this.arena.bytes().buffer, partials, nChunks)) total += part;
    });
    return total;
  }

  adamw(tensors: OptimizerTensor[], step: AdamWStep): void {
    if (!tensors.every((t) => this.inMemory(t.value, t.grad, t.m, t.v))) return this.reference.adamw(tensors, step);
    const { lr, beta1, beta2, eps, weightDecay, c1, c2, scale } = step;
    this.withOutputs([], () => {
      const { table, nChunks, values } = this.chunkTable(tensors);
      this.runKernel('adamw', [table, nChunks, lr, beta1, beta2, eps, weightDecay, c1, c2, scale], [], values >= POOLED_OPTIMIZER_MIN);
    });
  }

  gemm(c: Float32Array, a: Float32Array, b: Float32Array, m: number, n: number, k: number, transA: boolean, transB: boolean, accumulate: boolean): void {
    if (transA && transB) throw new RangeError('gemm: aᵀ·bᵀ is not supported');
    if (m === 0 || n === 0) return;
    this.withOutputs([[c, m * n]], ([cAt]) => {
      const arena = this.arena;
      const aAt = this.address(a, m * k);
      let bAt = this.address(b, k * n);
      if (transB) {
        // b [n, k] → bᵀ [k, n] in scratch
        const t = arena.scratch(4 * k * n);
        arena.exports.transpose(t, bAt, n, k);
        bAt = t;
      }
      this.runKernel('gemm', [cAt, aAt, bAt, m, n, k, transA ? 1 : 0, accumulate ? 1 : 0], [], m * n * k >= POOLED_GEMM_MIN);
    });
  }

  rmsnormBackward(dx: Float32Array, dweight: Float32Array, g: Float32Array, x: Float32Array, weight: Float32Array, nTokens: number, dim: number, eps: number): void {
    const n = nTokens * dim, chunks = Math.ceil(nTokens / RMSNORM_CHUNK);
    this.withOutputs([[dx, n]], ([dxAt]) => {
      // each chunk of rows sums its part of dweight; they are added up here in chunk order
      const parts = this.arena.scratch(4 * chunks * dim);
      this.arena.exports.zero(parts, 4 * chunks * dim);
      this.runKernel('rmsnorm_backward', [this.address(g, n), this.address(x, n), this.address(weight, dim), dxAt, parts, nTokens, dim, eps],
        [RMSNORM_CHUNK], n >= POOLED_ELEMENTWISE_MIN);
      const f32 = this.arena.floats();
      for (let c = 0; c < chunks; c++) {
        for (let i = 0; i < dim; i++) dweight[i] += f32[parts / 4 + c * dim + i];
      }
    });
  }

  crossEntropyForward(logits: Float32Array, targets: Int32Array, rows: number, cols: number, probs: Float64Array): void {
    const n = rows * cols;
    this.withOutputs([], () => {
      const probsAt = this.address(probs); // a copy in: masked rows stay as they are
      this.runKernel('cross_entropy_forward', [this.address(logits, n), this.address(targets), rows, cols, probsAt], [this.chunk(rows, 1)], n >= POOLED_LOSS_MIN);
      if (arenaOf(probs) !== this.arena) probs.set(new Float64Array(this.arena.bytes().buffer, probsAt, n));
    });
  }

  crossEntropyBackward(dlogits: Float32Array, probs: Float64Array, targets: Int32Array, rows: number, cols: number, k: number): void {
    const n = rows * cols;
    this.withOutputs([[dlogits, n]], ([dlogitsAt]) => {
      this.runKernel('cross_entropy_backward', [dlogitsAt, this.address(probs, n), this.address(targets), rows, cols, k], [this.chunk(rows, 1)], n >= POOLED_LOSS_MIN);
    });
  }

  swigluBackward(dgate: Float32Array, dup: Float32Array, g: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    this.withOutputs([[dgate, n], [dup, n]], ([dgAt, duAt]) => {
      this.runKernel('swiglu_backward', [this.address(g, n), this.address(gate, n), this.address(up, n), dgAt, duAt, n], [this.chunk(n, 256)], n >= POOLED_ELEMENTWISE_MIN);
    });
  }

  attentionForward(out: Float32Array, probs: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, nSeq: number, seqLen: number, shape: AttentionShape): void {
    const { nHeads, nKvHeads, headDim } = shape;
    if (headDim % 4 !== 0) return this.reference.attentionForward(out, probs, q, k, v, nSeq, seqLen, shape);
    const n = nSeq * seqLen, kw = nKvHeads * headDim;
    this.withOutputs([[out, n * nHeads * headDim], [probs, nSeq * nHeads * seqLen * seqLen]], ([outAt, probsAt]) => {
      this.runKernel('attention_forward', [this.address(q, n * nHeads * headDim), this.address(k, n * kw), this.address(v, n * kw), outAt, probsAt,
        nSeq, seqLen, nHeads, nKvHeads, headDim, shape.scale], [], true);
    });
  }

  attentionBackward(dq: Float32Array, dk: Float32Array, dv: Float32Array, g: Float32Array, probs: Float32Array, q: Float32Array,
    k: Float32Array, v: Float32Array, nSeq: number, seqLen: number, shape: AttentionShape): void {
    const { nHeads, nKvHeads, headDim } = shape;
    if (headDim % 4 !== 0) return this.reference.attentionBackward(dq, dk, dv, g, probs, q, k, v, nSeq, seqLen, shape);
    const n = nSeq * seqLen, qn = n * nHeads * headDim, kn = n * nKvHeads * headDim;
    this.withOutputs([[dq, qn], [dk, kn], [dv, kn]], ([dqAt, dkAt, dvAt]) => {
      this.runKernel('attention_backward', [this.address(g, qn), this.address(q, qn), this.address(k, kn), this.address(v, kn),
        this.address(probs, nSeq * nHeads * seqLen * seqLen), dqAt, dkAt, dvAt, nSeq, seqLen, nHeads, nKvHeads, headDim, shape.scale],
      [], true, Math.ceil((4 * seqLen * seqLen) / 64) * 64);
    });
  }
}
