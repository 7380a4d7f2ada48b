// Memory read bandwidth of this machine as the kernels see it: `node bench/read-bandwidth.mjs [threads] [GiB]`.
// Each worker sums its share of a shared WebAssembly memory with 128-bit loads in four streams (as the decode
// kernels read weights: four streams keep more reads in flight than one), 7 runs; prints the median GB/s. Compare
// with decode: bytes of weights read per token × tokens/s.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

// bytes [p, p + n) summed as i32x4, a quarter of the range per stream; the sum is returned so the loads stay
const SOURCE = `
export function readSum(p: usize, n: usize): i32 {
  const q = n >> 2;
  let a = i32x4.splat(0), b = a, c = a, d = a;
  for (let o: usize = 0; o < q; o += 32) {
    a = i32x4.add(a, i32x4.add(v128.load(p + o), v128.load(p + o, 16)));
    b = i32x4.add(b, i32x4.add(v128.load(p + q + o), v128.load(p + q + o, 16)));
    c = i32x4.add(c, i32x4.add(v128.load(p + 2 * q + o), v128.load(p + 2 * q + o, 16)));
    d = i32x4.add(d, i32x4.add(v128.load(p + 3 * q + o), v128.load(p + 3 * q + o, 16)));
  }
  return i32x4.extract_lane(i32x4.add(i32x4.add(a, b), i32x4.add(c, d)), 0);
}`;

if (isMainThread) {
  const threads = Number(process.argv[2] ?? 2);
  const bytes = Number(process.argv[3] ?? 2) * 2 ** 30;
  const asc = (await import('assemblyscript/asc')).default;
  const { binary, stderr } = await asc.compileString(SOURCE, {
    optimizeLevel: 3, runtime: 'stub', enable: ['simd', 'threads'], importMemory: true, sharedMemory: true,
    initialMemory: 1, maximumMemory: 65536,
  });
  if (!binary) throw new Error(stderr.toString());
  const memory = new WebAssembly.Memory({ initial: bytes / 65536, maximum: 65536, shared: true });
  new Uint8Array(memory.buffer).fill(1); // touch every page before timing
  const share = bytes / threads;
  const workers = Array.from({ length: threads }, (_, i) => new Worker(new URL(import.meta.url), {
    workerData: { binary, memory, start: i * share, length: share },
  }));
  const rates = [];
  for (let run = 0; run < 7; run++) {
    const started = performance.now();
    await Promise.all(workers.map((w) => new Promise((done) => { w.once('message', done); w.postMessage('read'); })));
    rates.push(bytes / ((performance.now() - started) / 1000) / 1e9);
  }
  rates.sort((a, b) => a - b);
  console.log(`${threads} thread(s), ${bytes / 2 ** 30} GiB: median ${rates[3].toFixed(1)} GB/s (runs ${rates.map((r) => r.toFixed(1)).join(' ')})`);
  for (const w of workers) await w.terminate();
} else {
  const { binary, memory, start, length } = workerData;
  const { readSum } = new WebAssembly.Instance(new WebAssembly.Module(binary), { env: { memory, abort() {} } }).exports;
  parentPort.on('message', () => {
    readSum(start, length);
    parentPort.postMessage('done');
  });
}
