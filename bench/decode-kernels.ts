// Decode (one token) matrix products per weight type on the WASM backend: weights read from memory (a set of
// matrices larger than the caches, TinyLlama's ffn shape 2048 → 5632) and from cache (one 2048 × 1024 matrix), in
// GB/s of weight bytes. Compare the streaming figure with `node bench/read-bandwidth.mjs`; the in-cache figure is the
// kernel's compute rate, which bounds the streaming one. With one thread (the calling one) a rate is per second of
// the process's CPU time, which a busy machine's time slicing does not change. `--base DIR` (another kiln checkout,
// built) runs its kernels in the same process, alternating with these, and prints the ratio. `--tokens N` multiplies
// N tokens at once (prefill, batched decode) and reports G multiply-adds/s instead, in cache (the 2048 × 1024 matrix)
// and for the ffn shape.
//   npx tsx bench/decode-kernels.ts [--types Q4_K,Q4_0,...] [-t 1] [--mib 64] [--tokens 512] [--magnitude 0.01]
//                                   [--base ../kiln-before]
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WasmBackend } from '../src/kernels/wasm.js';
import { GGMLType, typeInfo } from '../src/tensor/ggml-type.js';
import { quantizeRows } from '../src/quant/ggml-quantize.js';
import type { WeightTensor } from '../src/tensor/tensor.js';

const { values } = parseArgs({
  options: {
    types: { type: 'string', default: 'Q4_K,Q5_K,Q6_K,Q3_K,Q2_K,Q4_0,Q8_0,F16,BF16' },
    threads: { type: 'string', short: 't', default: '1' },
    mib: { type: 'string', default: '64' },
    runs: { type: 'string', short: 'r', default: '7' },
    base: { type: 'string' },
    tokens: { type: 'string', default: '1' },
    magnitude: { type: 'string', default: '1' },
  },
});
const nIn = 2048, nOut = 5632;
const threads = Number(values.threads), nTokens = Number(values.tokens);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

interface Engine { label: string; backend: WasmBackend }
const engines: Engine[] = [{ label: 'this', backend: new WasmBackend({ threads }) }];
if (values.base) {
  const module = await import(pathToFileURL(resolve(values.base, 'src/kernels/wasm.ts')).href);
  engines.push({ label: 'base', backend: new module.WasmBackend({ threads }) as WasmBackend });
}

/**
 * A random nIn × rows weight of `type` (values uniform in ±magnitude): one quantized 256-row slab repeated. The bytes
 * matter, and so does whether the block scales are subnormal f16 (`--magnitude 0.01`: as a trained model's Q6_K).
 */
function weight(type: GGMLType, rows: number): WeightTensor {
  const slab = 256, magnitude = Number(values.magnitude);
  const bytes = quantizeRows(type, Float32Array.from({ length: nIn * slab }, () => (Math.random() * 2 - 1) * magnitude), nIn, slab);
  const data = new Uint8Array(bytes.length * (rows / slab));
  for (let i = 0; i < rows / slab; i++) data.set(bytes, i * bytes.length);
  return { name: 'w', type, dims: [nIn, rows], data };
}

/**
 * Each engine's rate over `calls` products of nTokens tokens cycling through `ws`, runs alternating: GB/s of weight
 * bytes for one token, G multiply-adds/s for more.
 */
function rates(ws: WeightTensor[], calls: number): number[] {
  const x = Float32Array.from({ length: nIn * nTokens }, () => Math.random() * 2 - 1);
  const outs = ws.map((w) => new Float32Array(w.dims[1] * nTokens));
  const runs = engines.map(() => [] as number[]);
  for (const { backend } of engines) for (let i = 0; i < ws.length; i++) backend.matmul(outs[i], x, ws[i], nTokens); // placed, warm
  for (let r = 0; r < Number(values.runs); r++) {
    engines.forEach(({ backend }, e) => {
      const [start, cpuStart] = [performance.now(), process.cpuUsage()];
      for (let i = 0; i < calls; i++) backend.matmul(outs[i % ws.length], x, ws[i % ws.length], nTokens);
      const cpu = process.cpuUsage(cpuStart);
      const seconds = threads === 1 ? (cpu.user + cpu.system) / 1e6 : (performance.now() - start) / 1000;
      runs[e].push((calls * (nTokens === 1 ? ws[0].data.length : nIn * ws[0].dims[1] * nTokens)) / seconds / 1e9);
    });
  }
  return runs.map(median);
}

const show = (r: number[]) => r.map((v, e) => `${engines[e].label} ${v.toFixed(2)}`).join(', ') + (r.length > 1 ? ` (${(r[0] / r[1]).toFixed(3)}×)` : '');
for (const name of values.types.split(',')) {
  const type = GGMLType[name as keyof typeof GGMLType];
  const big = weight(type, nOut);
  const bits = (8 * typeInfo(type).typeSize) / typeInfo(type).blockSize;
  if (nTokens > 1) {
    const calls = Math.max(2, Math.ceil(2e9 / (nIn * nOut * nTokens)));
    console.log(`${name.padEnd(5)} ${bits.toFixed(3)} bits/weight, ${threads} thread(s), ${nTokens} tokens, G multiply-adds/s: ${nIn} → ${nOut} ${show(rates([big], calls))}; in cache ${show(rates([weight(type, 1024)], calls))}`);
    continue;
  }
  const count = Math.max(2, Math.ceil((Number(values.mib) * 2 ** 20) / big.data.length));
  const stream = Array.from({ length: count }, () => ({ ...big, data: big.data.slice() }));
  console.log(`${name.padEnd(5)} ${bits.toFixed(3)} bits/weight, ${threads} thread(s), GB/s: from memory ${show(rates(stream, count))}; in cache ${show(rates([weight(type, 1024)], 200))}`);
}
for (const { backend } of engines) backend.close();
