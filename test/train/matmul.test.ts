// The WebAssembly SIMD matmul against a float64 triple loop: odd and tile-sized shapes, accumulate and overwrite,
// transposed A, operands inside and outside the kernel's memory, one and two threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import { allocFloats, matmul, setMatmulThreads } from '../../src/train/matmul.js';
import { gemmModuleBytes } from '../../src/train/gemm-wasm.js';

const rng = new Rng(99);
const random = (n: number, inKernel: boolean): Float32Array => {
  const x = inKernel ? allocFloats(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 2 * rng.nextFloat() - 1;
  return x;
};

/** out (+)= A·b in float64, A = a [n, k] or aᵀ for a [k, n] */
function reference(out: Float32Array, a: Float32Array, b: Float32Array, n: number, k: number, m: number, accumulate: boolean, transA: boolean): Float64Array {
  const r = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = accumulate ? out[i * m + j] : 0;
      for (let p = 0; p < k; p++) s += (transA ? a[p * n + i] : a[i * k + p]) * b[p * m + j];
      r[i * m + j] = s;
    }
  }
  return r;
}

const shapes = [[1, 1, 1], [3, 5, 7], [4, 3, 8], [9, 17, 20], [64, 32, 24], [130, 70, 264]];

for (const threads of [1, 2]) {
  test(`matmul matches float64 (${threads} thread${threads > 1 ? 's' : ''})`, () => {
    setMatmulThreads(threads);
    for (const [n, k, m] of shapes) {
      for (const accumulate of [false, true]) {
        for (const transA of [false, true]) {
          for (const inKernel of [false, true]) {
            const a = random(n * k, inKernel), b = random(k * m, inKernel), out = random(n * m, inKernel);
            const want = reference(out, a, b, n, k, m, accumulate, transA);
            matmul(out, a, b, n, k, m, accumulate, transA);
            for (let i = 0; i < n * m; i++) {
              assert.ok(Math.abs(out[i] - want[i]) <= 1e-5 * Math.sqrt(k) + 1e-6, `[${n},${k},${m}] acc=${accumulate} T=${transA} in=${inKernel} at ${i}: ${out[i]} vs ${want[i]}`);
            }
          }
        }
      }
    }
    setMatmulThreads(1);
  });
}

test('the kernel module without fused multiply-add (the fallback) computes the same product', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const gemm = new WebAssembly.Instance(new WebAssembly.Module(gemmModuleBytes(1, false)), { env: { memory } }).exports.gemm as (...args: number[]) => void;
  const [n, k, m] = [4, 3, 32];
  const f = new Float32Array(memory.buffer);
  const a = f.subarray(0, n * k), b = f.subarray(n * k, n * k + k * m), c = f.subarray(n * k + k * m, n * k + k * m + n * m);
  a.set(random(n * k, false));
  b.set(random(k * m, false));
  gemm(4 * (n * k + k * m), 0, 4 * n * k, 0, n, k, m, m, k, 1, 0);
  const want = reference(c, a, b, n, k, m, false, false);
  for (let i = 0; i < n * m; i++) assert.ok(Math.abs(c[i] - want[i]) < 1e-6, `at ${i}: ${c[i]} vs ${want[i]}`);
});
