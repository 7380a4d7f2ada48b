// A kernel thread of src/kernels/thread-pool.ts: waits for jobs posted in the shared control block and runs the named
// WebAssembly kernel on its own instance of the memory (arena) the job names. A kernel job is joined only while it
// is open: the posting thread closes it once its own share is done, so a thread that wakes late skips it rather
// than making everyone wait. Plain JavaScript so that it runs as-is from the source tree and from dist/ alike.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';

const { control, module, port, functions, index, spin, maxArgs } = workerData;
// control block (see thread-pool.ts): i32 [generation, pending, arena, function, nargs, joined, control number,
// failed], f64 args from byte 64
const state = new Int32Array(control, 0, 16);
const args = new Float64Array(control, 64, maxArgs);
const GENERATION = 0, PENDING = 1, ARENA = 2, FUNCTION = 3, NARGS = 4, JOINED = 5, CONTROL = 6, FAILED = 7;
const ADOPT = -2;
const CLOSED = 1 << 30;

const instances = [];
let seen = 0;
let controlsDone = 0;
for (;;) { // ends with the process (the worker is unref'd)
  // spin briefly (jobs come back to back during a forward pass), then sleep until the generation changes
  for (let i = 0; Atomics.load(state, GENERATION) === seen; i++) {
    if (i > spin) Atomics.wait(state, GENERATION, seen);
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
    const n = state[NARGS];
    const list = Array.from(args.subarray(0, n));
    // the last argument of every pooled kernel is its scratch address: base + thread index · stride
    const stride = list.pop();
    list[n - 2] += index * stride;
    try {
      instances[state[ARENA]][functions[state[FUNCTION]]](...list);
    } catch (error) {
      // report to the posting thread (it throws after the job) and stay in the pool
      port.postMessage(String(error?.message ?? error));
      Atomics.store(state, FAILED, 1);
    }
  }
  if (Atomics.sub(state, JOINED, 1) === (CLOSED | 1)) Atomics.notify(state, JOINED);
}
