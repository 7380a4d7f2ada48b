// A kernel thread of src/kernels/thread-pool.ts, in Node (a worker_threads Worker) and in a page (a Web Worker) alike:
// waits for jobs posted in the shared control block and runs the named WebAssembly kernel on its own instance of the
// memory (arena) the job names. A kernel job is joined only while it is open: the posting thread closes it once its
// own share is done, so a thread that wakes late skips it rather than making everyone wait. Messages bring the
// pool's setup (first) and the memories to adopt: a page's worker can take a message only from its event loop, so
// the job loop returns to it to adopt a memory. Plain JavaScript so that it runs as-is from the source tree, dist/
// and build/web/.

// a page's worker gets its messages on a MessagePort of their own: on its global scope they would wait for the
// posting thread to yield, which blocks until the memory is adopted
const port = typeof WorkerGlobalScope === 'function'
  ? await new Promise((resolve) => { self.onmessage = ({ data }) => resolve(data); })
  : (await import('node:worker_threads')).parentPort;

// control block (see thread-pool.ts): i32 [generation, pending, arena, function, nargs, joined, control number,
// failed, failure length], f64 args from byte 64, then the failure message (UTF-8)
const GENERATION = 0, PENDING = 1, ARENA = 2, FUNCTION = 3, NARGS = 4, JOINED = 5, CONTROL = 6, FAILED = 7, FAILURE_LENGTH = 8;
const ADOPT = -2;
const CLOSED = 1 << 30;

let setup;
let state, args, failure;
const instances = [];
/** the job's arguments copied out of the control block, its scratch address made this thread's own */
let own;
let seen = 0;
let controlsDone = 0;

port.addEventListener('message', ({ data }) => {
  if (setup === undefined) {
    setup = data;
    state = new Int32Array(setup.control, 0, 16);
    args = new Float64Array(setup.control, 64, setup.maxArgs);
    failure = new Uint8Array(setup.control, 64 + setup.maxArgs * 8);
    own = new Float64Array(setup.maxArgs);
  } else {
    // the memory of the adopt job that made work() return
    instances.push(new WebAssembly.Instance(setup.module, { env: { memory: data } }).exports);
    if (Atomics.sub(state, PENDING, 1) === 1) Atomics.notify(state, PENDING);
  }
  work();
});
port.start?.(); // a MessagePort listened to with addEventListener delivers once started
port.postMessage('started');

/** Runs jobs until an adopt job, whose memory comes as the next message. */
function work() {
  for (;;) {
    // spin for spinMs (jobs come back to back during a forward pass), then sleep until the generation changes
    let deadline = 0;
    for (let i = 0; Atomics.load(state, GENERATION) === seen; i++) {
      if ((i & 255) !== 0) continue;
      if (deadline === 0) deadline = performance.now() + setup.spinMs;
      else if (performance.now() > deadline) Atomics.wait(state, GENERATION, seen);
    }
    seen = Atomics.load(state, GENERATION);
    if (Atomics.load(state, CONTROL) !== controlsDone) {
      // a control job (adopt, release) is posted, numbered so that each is done exactly once; the poster waits for all
      controlsDone = Atomics.load(state, CONTROL);
      if (state[FUNCTION] === ADOPT) return;
      instances[state[ARENA]] = undefined; // release: lets the memory be collected
      if (Atomics.sub(state, PENDING, 1) === 1) Atomics.notify(state, PENDING);
      continue;
    }
    if ((Atomics.add(state, JOINED, 1) & CLOSED) === 0) {
      // joined an open job: its description stays put until every joined thread has left
      // the arguments end with the kernel's scratch address, then the stride of the threads' scratch: this thread's
      // scratch is base + index · stride (the stride goes to the kernel too, which ignores an argument past its own)
      const n = state[NARGS];
      own.set(args);
      own[n - 2] += setup.index * own[n - 1];
      try {
        invoke(instances[state[ARENA]][setup.functions[state[FUNCTION]]], own);
      } catch (error) {
        // the first failing thread writes its message for the posting thread (which throws after the job); all stay
        if (Atomics.compareExchange(state, FAILED, 0, 1) === 0) {
          const message = new TextEncoder().encode(String(error?.message ?? error)).subarray(0, failure.length);
          failure.set(message);
          state[FAILURE_LENGTH] = message.length;
        }
      }
    }
    if (Atomics.sub(state, JOINED, 1) === (CLOSED | 1)) Atomics.notify(state, JOINED);
  }
}

/** kernel(a[0], …, a[24]): one call of fixed arity (no spread, which V8 makes slow), as thread-pool.ts invokes kernels */
function invoke(kernel, a) {
  kernel(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24]);
}
