// A persistent pool of kernel threads over shared WebAssembly memories (Node's worker_threads or a page's Web Workers,
// started through the platform seam: wasm/pool-worker.mjs runs in both). The calling thread is
// thread 0 and works too; workers 1…n−1 wait on a shared control block. A job names an arena (memory), a kernel and
// its arguments; every thread calls the kernel with the same arguments and the kernel claims work from an atomic
// counter in the memory, so the split adapts to threads that start late. When the calling thread has finished its
// share it closes the job and waits only for the workers that joined it: a worker that is not scheduled in time
// (a busy machine) costs nothing. Workers spin briefly before sleeping so the many small jobs of a decode step do
// not each pay a wake-up; they are unref'd and never keep the process alive.

import { platform, type KernelThread } from '../platform/index.js';
import type { KernelExports } from './wasm-module.js';

/** The pooled kernels, by index in the control block. */
export const POOLED_KERNELS = ['matmul', 'attention', 'elementwise', 'layernorm', 'gemm', 'attention_forward', 'attention_backward', 'swiglu_backward', 'rmsnorm_backward', 'rope', 'sum_squares', 'adamw', 'cross_entropy_forward', 'cross_entropy_backward'] as const;
export type PooledKernel = (typeof POOLED_KERNELS)[number];

// control block: i32 [generation, pending (control jobs), arena, function, number of args, joined (kernel jobs),
// control number (of the last control job), failed, failure length], f64 args from byte 64, then FAILURE_BYTES of the
// failure message (UTF-8). joined counts the workers inside the current kernel job, plus CLOSED once it is closed;
// failed is set by the first worker whose kernel threw, which writes its message (a page's thread cannot take a
// message synchronously, so it goes through the block).
const GENERATION = 0, PENDING = 1, ARENA = 2, FUNCTION = 3, NARGS = 4, JOINED = 5, CONTROL = 6, FAILED = 7, FAILURE_LENGTH = 8;
const ADOPT = -2, RELEASE = -3;
const CLOSED = 1 << 30;
/** f64 argument slots of a job (a kernel's arguments, its scratch address and stride) */
const MAX_ARGS = 26;
const FAILURE_BYTES = 512;
/**
 * Milliseconds a thread busy-waits before it sleeps: longer than the gaps between the jobs of a forward pass, so that
 * workers stay awake through one (waking a sleeping thread costs tens of microseconds in a virtual machine).
 */
const SPIN_MS = 0.5;

export class ThreadPoolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ThreadPoolError';
  }
}

const pools = new Map<WebAssembly.Module, Map<number, ThreadPool>>();

/** The process-wide pool of `threads` threads for kernels of `module` (made on first use, shared by backends). */
export function sharedPool(threads: number, module: WebAssembly.Module): ThreadPool {
  let byThreads = pools.get(module);
  if (!byThreads) pools.set(module, (byThreads = new Map()));
  let pool = byThreads.get(threads);
  if (!pool) byThreads.set(threads, (pool = new ThreadPool(threads, module)));
  return pool;
}

export class ThreadPool {
  private readonly state: Int32Array;
  private readonly args: Float64Array;
  private readonly failure: Uint8Array;
  private readonly workers: KernelThread[] = [];
  /** memories adopted so far (the next one's index) */
  private adopted = 0;

  /** threads in all, the calling thread included */
  constructor(readonly threads: number, module: WebAssembly.Module) {
    // shared only where there are workers: a page that is not cross-origin isolated has no SharedArrayBuffer
    const bytes = 64 + MAX_ARGS * 8 + FAILURE_BYTES;
    const control = threads > 1 ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    this.state = new Int32Array(control, 0, 16);
    this.args = new Float64Array(control, 64, MAX_ARGS);
    this.failure = new Uint8Array(control, 64 + MAX_ARGS * 8);
    this.state[JOINED] = CLOSED;
    for (let index = 1; index < threads; index++) {
      const worker = platform.startKernelThread();
      worker.post({ control, module, functions: POOLED_KERNELS, index, spinMs: SPIN_MS, maxArgs: MAX_ARGS });
      this.workers.push(worker);
    }
  }

  /**
   * Resolves once every worker runs. Await it before the first job where workers start only after their maker
   * yields to its event loop (a page); in Node they start on their own.
   */
  async started(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.started));
  }

  /** Gives every worker its own instance of the kernels over `memory`; returns the arena's index in this pool. */
  adopt(memory: WebAssembly.Memory): number {
    for (const worker of this.workers) worker.post(memory);
    this.control(ADOPT, 0);
    return this.adopted++;
  }

  /** The workers drop their instances of arena `index` (its memory can then be collected). */
  release(index: number): void {
    this.control(RELEASE, index);
  }

  /** A job every worker must run (adopt, release): waits for all of them. */
  private control(fn: number, arena: number): void {
    if (this.workers.length === 0) return;
    this.state[ARENA] = arena;
    this.state[FUNCTION] = fn;
    Atomics.store(this.state, PENDING, this.workers.length);
    Atomics.add(this.state, CONTROL, 1); // after the fields above: a worker that sees the number sees them
    Atomics.add(this.state, GENERATION, 1);
    Atomics.notify(this.state, GENERATION);
    this.waitUntil(PENDING, 0);
  }

  /**
   * Runs kernel `name` on arena `arena` in every thread: the calling thread uses `exports`, and each thread i gets
   * its own scratch address scratch + i·scratchStride as the kernel's last argument.
   */
  run(exports: KernelExports, arena: number, name: PooledKernel, args: number[], scratch: number, scratchStride: number): void {
    const kernel = exports[name] as Kernel;
    // the kernel's arguments, its scratch address (thread i adds i·scratchStride) and the stride
    this.args.set(args);
    this.args[args.length] = scratch;
    this.args[args.length + 1] = scratchStride;
    if (this.workers.length === 0) return invoke(kernel, this.args);
    // describe the job, open it, wake the workers; then do our share, close it and wait for those who joined
    this.state[NARGS] = args.length + 2;
    this.state[ARENA] = arena;
    this.state[FUNCTION] = POOLED_KERNELS.indexOf(name);
    // open: clear CLOSED but keep the count (a late worker may be between skipping the last job and leaving it)
    Atomics.sub(this.state, JOINED, CLOSED);
    Atomics.add(this.state, GENERATION, 1);
    Atomics.notify(this.state, GENERATION);
    let failure: unknown;
    try {
      invoke(kernel, this.args);
    } catch (error) {
      failure = error; // the job is still closed and waited for, so that the pool stays usable
    }
    Atomics.or(this.state, JOINED, CLOSED);
    this.waitUntil(JOINED, CLOSED);
    const workerFailure = this.takeWorkerFailure();
    if (failure !== undefined) throw failure;
    if (workerFailure !== undefined) throw new ThreadPoolError(`a kernel thread failed: ${workerFailure}`);
  }

  /** The message of the first worker whose kernel threw during the last job (clearing the flag), or undefined. */
  private takeWorkerFailure(): string | undefined {
    if (Atomics.load(this.state, FAILED) === 0) return undefined;
    // decoded from a copy: TextDecoder refuses views of shared memory
    const message = new TextDecoder().decode(this.failure.slice(0, this.state[FAILURE_LENGTH]));
    Atomics.store(this.state, FAILED, 0);
    return message || 'unknown error';
  }

  private waitUntil(slot: number, value: number): void {
    let deadline = 0;
    for (let i = 0; ; i++) {
      const now = Atomics.load(this.state, slot);
      if (now === value) return;
      if ((i & 255) !== 0) continue;
      if (deadline === 0) {
        deadline = performance.now() + SPIN_MS;
      } else if (performance.now() > deadline) {
        // a worker that died would leave us waiting forever: give up after a minute without progress
        if (Atomics.wait(this.state, slot, now, 60_000) === 'timed-out' && Atomics.load(this.state, slot) === now) {
          throw new ThreadPoolError('kernel threads stopped responding');
        }
      }
    }
  }
}

type Kernel = (...a: number[]) => void;

/** kernel(a[0], …, a[24]): one call of fixed arity (a spread call costs microseconds), extra arguments ignored */
function invoke(kernel: Kernel, a: Float64Array): void {
  kernel(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24]);
}
