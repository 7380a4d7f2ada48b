// A kernel thread of src/kernels/thread-pool.ts: waits for jobs posted in the shared control block, runs the named
// WebAssembly kernel on its own instance of the memory (arena) the job names, and reports completion.
// Plain JavaScript so that it runs as-is from the source tree and from dist/ alike.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';

const { control, module, port, functions, index, spin } = workerData;
// control block (see thread-pool.ts): i32 [generation, pending, arena, function], f64 args from byte 64
const state = new Int32Array(control, 0, 16);
const args = new Float64Array(control, 64, 16);
const GENERATION = 0, PENDING = 1, ARENA = 2, FUNCTION = 3, NARGS = 4;
const ADOPT = -2, RELEASE = -3;

const instances = [];
let seen = 0;
for (;;) { // ends with the process (the worker is unref'd)
  // spin briefly (jobs come back to back during a forward pass), then sleep until the generation changes
  for (let i = 0; Atomics.load(state, GENERATION) === seen; i++) {
    if (i > spin) Atomics.wait(state, GENERATION, seen);
  }
  seen = Atomics.load(state, GENERATION);
  const fn = state[FUNCTION];
  if (fn === ADOPT) {
    const { message: memory } = receiveMessageOnPort(port);
    instances.push(new WebAssembly.Instance(module, { env: { memory } }).exports);
  } else if (fn === RELEASE) {
    instances[state[ARENA]] = undefined; // lets the memory be collected
  } else {
    // the last argument of every pooled kernel is its scratch address: base + thread index · stride
    const n = state[NARGS];
    const list = Array.from(args.subarray(0, n));
    const stride = list.pop();
    list[n - 2] += index * stride;
    instances[state[ARENA]][functions[fn]](...list);
  }
  if (Atomics.sub(state, PENDING, 1) === 1) Atomics.notify(state, PENDING);
}
