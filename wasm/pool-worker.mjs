// A kernel thread of src/kernels/thread-pool.ts: waits for jobs posted in the shared control block and runs the named
// WebAssembly kernel on its own instance of the memory (arena) the job names. A kernel job is joined only while it
// is open: the posting thread closes it once its own share is done, so a thread that wakes late skips it rather
// than making everyone wait. Plain JavaScript so that it runs as-is from the source tree and from dist/ alike.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';

const { control, module, port, functions, index, spinMs, maxArgs } = workerData;
// control block (see thread-pool.ts): i32 [generation, pending, arena, function, nargs, joined, control number,
// failed], f64 args from byte 64
const state = new Int32Array(control, 0, 16);
const args = new Float64Array(control, 64, maxArgs);
const GENERATION = 0, PENDING = 1, ARENA = 2, FUNCTION = 3, NARGS = 4, JOINED = 5, CONTROL = 6, FAILED = 7;
const ADOPT = -2;
const CLOSED = 1 << 30;

const instances = [];
/** the job's arguments copied out of the control block, its scratch address made this thread's own */
const own = new Float64Array(maxArgs);
let seen = 0;
let controlsDone = 0;
for (;;) { // ends with the process (the worker is unref'd)
  // spin for spinMs (jobs come back to back during a forward pass), then sleep until the generation changes
  let deadline = 0;
  for (let i = 0; Atomics.load(state, GENERATION) === seen; i++) {
    if ((i & 255) !== 0) continue;
    if (deadline === 0) deadline = performance.now() + spinMs;
    else if (performance.now() > deadline) Atomics.wait(state, GENERATION, seen);
  }
  seen = Atomics.load(state, GENERATION);
  if (Atomics.load(state, CONTROL) !== controlsDone) {
    // a control job (adopt, release) is posted, numbered so that each is done exactly once; the poster waits for all
    controlsDone = Atomics.load(state, CONTROL);
    if (state[FUNCTION] === ADOPT) instances.push(new WebAssembly.Instance(module, { env: { memory: receiveMessageOnPort(port).message } }).exports);
    else instances[state[ARENA]] = undefined; // release: lets the memory be collected
    if (Atomics.sub(state, PENDING, 1) === 1) Atomics.notify(state, PENDING);
    continue;
  }
  if ((Atomics.add(state, JOINED, 1) & CLOSED) === 0) {
    // joined an open job: its description stays put until every joined thread has left
    // the arguments end with the kernel's scratch address, then the stride of the threads' scratch: this thread's
    // scratch is base + index · stride (the stride goes to the kernel too, which ignores an argument past its own)
    const n = state[NARGS];
    own.set(args);
    own[n - 2] += index * own[n - 1];
    try {
      invoke(instances[state[ARENA]][functions[state[FUNCTION]]], own);
    } catch (error) {
      // report to the posting thread (it throws after the job) and stay in the pool
      port.postMessage(String(error?.message ?? error));
      Atomics.store(state, FAILED, 1);
    }
  }
  if (Atomics.sub(state, JOINED, 1) === (CLOSED | 1)) Atomics.notify(state, JOINED);
}

/** kernel(a[0], …, a[24]): one call of fixed arity (no spread, which V8 makes slow), as thread-pool.ts invokes kernels */
function invoke(kernel, a) {
  kernel(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24]);
}
