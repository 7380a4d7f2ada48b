// Training's kernels against the machine's WebAssembly SIMD peak: the f32x4 multiply-add rate one thread reaches on
// independent accumulators (a hand-assembled loop, relaxed_madd where this runtime compiles it, else mul + add), then
// the gemm shapes of a training step (linear forward, dx, dW) in GFLOP/s on 1 and 2 threads.
//   node --experimental-strip-types bench/train-kernels.ts   (or: npx tsx bench/train-kernels.ts)
import { setFlagsFromString } from 'node:v8';
import { WasmTrainingBackend } from '../src/kernels/wasm-training.js';

setFlagsFromString('--experimental-wasm-relaxed-simd');

/** a module exporting peak(iterations): ACC independent chains acc = acc·x + y over f32x4, 8 steps per iteration */
function peakModule(relaxed: boolean): WebAssembly.Module {
  const ACC = 12, X = ACC, Y = ACC + 1, N = 0; // locals: param n (i32), then v128s
  const code: number[] = [];
  const simd = (op: number) => [0xfd, ...(op < 128 ? [op] : [(op & 0x7f) | 0x80, op >> 7])];
  const f32Splat = (v: number) => [0x43, ...new Uint8Array(new Float32Array([v]).buffer), ...simd(0x13)];
  code.push(...f32Splat(0.999), 0x21, 1 + X, ...f32Splat(0.001), 0x21, 1 + Y);
  code.push(0x03, 0x40); // loop
  for (let step = 0; step < 8; step++) {
    for (let a = 0; a < ACC; a++) {
      if (relaxed) code.push(0x20, 1 + a, 0x20, 1 + X, 0x20, 1 + Y, ...simd(0x105), 0x21, 1 + a); // acc·x + y
      else code.push(0x20, 1 + a, 0x20, 1 + X, ...simd(0xe6), 0x20, 1 + Y, ...simd(0xe4), 0x21, 1 + a);
    }
  }
  code.push(0x20, N, 0x41, 1, 0x6b, 0x22, N, 0x0d, 0, 0x0b); // n -= 1; br_if n
  // keep the accumulators live: sum them into lane 0 and return it
  code.push(0x20, 1);
  for (let a = 1; a < ACC; a++) code.push(0x20, 1 + a, ...simd(0xe4));
  code.push(...simd(0x1f), 0); // f32x4.extract_lane 0
  const body = [1, ACC + 2, 0x7b, ...code, 0x0b];
  const fn = [...leb(body.length), ...body];
  const bytes = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    1, 6, 1, 0x60, 1, 0x7f, 1, 0x7d, // type: (i32) → f32
    3, 2, 1, 0,
    7, 8, 1, 4, ...Array.from('peak', (c) => c.charCodeAt(0)), 0, 0,
    10, ...leb(fn.length + 1), 1, ...fn];
  return new WebAssembly.Module(new Uint8Array(bytes));
}

function leb(n: number): number[] {
  const out: number[] = [];
  do { out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0)); n >>>= 7; } while (n > 0);
  return out;
}

function peak(): { gflops: number; relaxed: boolean } {
  let module: WebAssembly.Module, relaxed = true;
  try { module = peakModule(true); } catch { module = peakModule(false); relaxed = false; }
  const run = new WebAssembly.Instance(module).exports.peak as (n: number) => number;
  run(1000);
  const iterations = 2_000_000;
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    run(iterations);
    best = Math.min(best, performance.now() - t0);
  }
  // 12 chains × 8 steps × 4 lanes × 2 flops per iteration
  return { gflops: (iterations * 12 * 8 * 4 * 2) / (best * 1e6), relaxed };
}

const p = peak();
console.log(`peak: ${p.gflops.toFixed(1)} GFLOP/s per thread (f32x4 ${p.relaxed ? 'relaxed_madd' : 'mul + add'}, 12 chains, best of 5)`);

// the products of one linear layer of the shakespeare-char step (1024 tokens, 128 → 384) and of the dim-288 one
const shapes: [string, number, number, number, boolean, boolean][] = [
  ['x·Wᵀ 1024×128→384', 1024, 384, 128, false, true],
  ['dx=g·W 1024×384→128', 1024, 128, 384, false, false],
  ['dW=gᵀ·x 384×128 over 1024', 384, 128, 1024, true, false],
  ['x·Wᵀ 2048×288→768', 2048, 768, 288, false, true],
  ['dW=gᵀ·x 768×288 over 2048', 768, 288, 2048, true, false],
];
for (const threads of [1, 2]) {
  const backend = new WasmTrainingBackend({ threads });
  for (const [name, m, n, k, transA, transB] of shapes) {
    const a = backend.allocFloats(m * k), b = backend.allocFloats(k * n), c = backend.allocFloats(m * n);
    a.fill(0.5); b.fill(0.25);
    let best = Infinity;
    for (let r = 0; r < 20; r++) {
      const t0 = performance.now();
      backend.gemm(c, a, b, m, n, k, transA, transB, true);
      best = Math.min(best, performance.now() - t0);
    }
    console.log(`${threads} thread${threads > 1 ? 's' : ''} ${name}: ${((2 * m * n * k) / (best * 1e6)).toFixed(1)} GFLOP/s (best of 20)`);
  }
}

// causal attention of a training step, forward and backward: shakespeare-char's (16 × 64, 4 heads × 32) and the
// dim-288 one's (8 × 256, 4 heads × 72); flops: q·kᵀ and P·v over the causal half, twice that backward
for (const threads of [1, 2]) {
  const backend = new WasmTrainingBackend({ threads });
  for (const [nSeq, S, nHeads, hd] of [[16, 64, 4, 32], [8, 256, 4, 72]]) {
    const n = nSeq * S, qn = n * nHeads * hd, shape = { nHeads, nKvHeads: nHeads, headDim: hd, scale: 1 / Math.sqrt(hd) };
    const [q, k, v, g, out, dq, dk, dv] = [0, 0, 0, 0, 0, 0, 0, 0].map(() => backend.allocFloats(qn).fill(0.1));
    const probs = backend.allocFloats(nSeq * nHeads * S * S);
    const flops = 2 * 2 * nSeq * nHeads * (S * (S + 1) / 2) * hd;
    let [forward, back] = [Infinity, Infinity];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      backend.attentionForward(out, probs, q, k, v, nSeq, S, shape);
      const t1 = performance.now();
      backend.attentionBackward(dq, dk, dv, g, probs, q, k, v, nSeq, S, shape);
      [forward, back] = [Math.min(forward, t1 - t0), Math.min(back, performance.now() - t1)];
    }
    console.log(`${threads} thread${threads > 1 ? 's' : ''} attention ${nSeq}×${S}, ${nHeads}×${hd}: forward ${(flops / (forward * 1e6)).toFixed(1)}, backward ${(2 * flops / (back * 1e6)).toFixed(1)} GFLOP/s (best of 5)`);
  }
}
