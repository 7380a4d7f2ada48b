// The whole kiln ↔ llama.cpp comparison of issue 18 in one run, printed as one ratio table:
//  - decode (tg) and prefill (pp) per shape and type: `kiln bench` and `llama-bench` alternating (bench/alternating.ts),
//    medians of the rounds; types whose model file is missing are skipped (named at the end);
//  - serving: bench/serve.ts against `kiln serve` (its own server, bench/serve-server.ts) and against `llama-server`
//    (--url), alternating per round, at each client count: output tokens/s and TPOT p50, medians of the rounds;
//  - the machine's read bandwidth (bench/read-bandwidth.mjs) before and after, for the decode figures' context.
// Needs llama.cpp's binaries (../shared/peers/llama.cpp/bin, which loads the best ggml CPU variant for this CPU, else
// bin-native, built for one AVX-512 machine: check both with one llama-bench run); nothing in kiln depends on them.
//
//   npx tsx bench/compare-llama.ts [--models bench/models] [--shapes smollm2-135M,tinyllama-1.1B]
//       [--types Q8_0,Q4_0,Q4_K_M,F16,BF16,Q2_K,Q3_K_M,Q5_K_M,Q6_K] [-p 512] [-n 64] [-r 5] [-t 2]
//       [--serve-model smollm2-135M-Q8_0] [--clients 1,32] [--serve-rounds 3] [--output-tokens 64] [--no-serve]
//       [--llama DIR]

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readGGUFHeader } from '../src/gguf/reader.js';
import { getArray } from '../src/gguf/metadata.js';
import { alternate, llamaEnv, loadAverage, median, type Alternation, type Test } from './alternating.js';

const { values: opts } = parseArgs({
  options: {
    models: { type: 'string', default: 'bench/models' },
    shapes: { type: 'string', default: 'smollm2-135M,tinyllama-1.1B' },
    types: { type: 'string', default: 'Q8_0,Q4_0,Q4_K_M,F16,BF16,Q2_K,Q3_K_M,Q5_K_M,Q6_K' },
    'n-prompt': { type: 'string', short: 'p', default: '512' },
    'n-gen': { type: 'string', short: 'n', default: '64' },
    repetitions: { type: 'string', short: 'r', default: '5' },
    threads: { type: 'string', short: 't', default: '2' },
    'serve-model': { type: 'string', default: 'smollm2-135M-Q8_0' },
    clients: { type: 'string', default: '1,32' },
    'serve-rounds': { type: 'string', default: '3' },
    'output-tokens': { type: 'string', default: '64' },
    'no-serve': { type: 'boolean', default: false },
    llama: { type: 'string' },
  },
});
const root = resolve(import.meta.dirname, '..');
const llamaBin = resolve(opts.llama ?? [join(root, '../shared/peers/llama.cpp/bin'), join(root, '../shared/peers/llama.cpp/bin-native')].find((d) => existsSync(join(d, 'llama-bench'))) ?? '');
if (!existsSync(join(llamaBin, 'llama-bench'))) {
  console.error(`compare-llama: no llama-bench in ${llamaBin || '../shared/peers/llama.cpp/bin{-native,}'} (give --llama DIR)`);
  process.exit(2);
}
const [prompt, generate, rounds, threads, serveRounds, outputTokens] =
  [opts['n-prompt'], opts['n-gen'], opts.repetitions, opts.threads, opts['serve-rounds'], opts['output-tokens']].map(Number);
const alternation: Alternation = { engines: ['kiln', 'llama.cpp'], rounds, threads, llamaBin };
const modelPath = (name: string) => resolve(opts.models, `${name}.gguf`);

/** One line of the table: a figure of each engine (higher is better unless lowerIsBetter) and the issue's target. */
interface Row { what: string; model: string; kiln: number[]; llama: number[]; unit: string; target?: number; lowerIsBetter?: boolean }
const rows: Row[] = [];
const skipped: string[] = [];

function bandwidth(): string {
  const run = spawnSync(process.execPath, [join(root, 'bench/read-bandwidth.mjs'), String(threads)], { cwd: root, encoding: 'utf8' });
  return /median ([\d.]+) GB\/s/.exec(run.stdout)?.[1] ?? `failed: ${run.stderr.trim().split('\n').pop()}`;
}

// ---- decode and prefill ------------------------------------------------------------------------------------

/** Prefill targets (issue 18): Q8_0, Q4_0, Q4_K_M ≥ 0.6×; decode ≥ 0.9× on TinyLlama's shape, 0.85× on SmolLM2's. */
const target = (shape: string, type: string, test: string): number | undefined =>
  test.startsWith('pp') ? (['Q8_0', 'Q4_0', 'Q4_K_M'].includes(type) ? 0.6 : undefined) : shape.startsWith('tinyllama') ? 0.9 : 0.85;

const bandwidthBefore = bandwidth();
console.error(`read bandwidth (${threads} threads): ${bandwidthBefore} GB/s`);
for (const shape of opts.shapes.split(',')) {
  for (const type of opts.types.split(',')) {
    const path = modelPath(`${shape}-${type}`);
    if (!existsSync(path)) {
      skipped.push(`${shape}-${type}`);
      continue;
    }
    const { tests, failed } = alternate(alternation, path, prompt, generate);
    for (const [engine, why] of Object.entries(failed)) skipped.push(`${shape}-${type} (${engine}: ${why})`);
    for (const t of tests as Test[]) {
      rows.push({ what: t.name, model: `${shape}-${type}`, kiln: t.samples.kiln, llama: t.samples['llama.cpp'], unit: 't/s', target: target(shape, type, t.name) });
    }
  }
}

// ---- serving -----------------------------------------------------------------------------------------------

/** A free TCP port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    }).on('error', reject);
  });
}

interface ServeRun { clients: number; outputTokensPerSecond: number; tpotP50Ms: number; failed: number }

/** bench/serve.ts with these arguments (its JSON runs), the random workload with fixed-length completions. */
function serveBench(args: string[]): ServeRun[] {
  const common = ['--clients', opts.clients, '--output-min', String(outputTokens), '--output-max', String(outputTokens), '--json'];
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench/serve.ts'), ...args, ...common], {
    cwd: root, encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (run.status !== 0) throw new Error(`bench/serve.ts ${args.join(' ')} exited with ${run.status}`);
  return (JSON.parse(run.stdout) as { runs: ServeRun[] }).runs;
}

/** llama-server on a free port with 32 slots of kiln serve's context (2048), until it answers /health. */
async function withLlamaServer<T>(model: string, body: (url: string) => T): Promise<T> {
  const port = await freePort();
  const slots = Math.max(...opts.clients.split(',').map(Number));
  const child = spawn(join(llamaBin, 'llama-server'), [
    '-m', model, '--host', '127.0.0.1', '--port', String(port), '-np', String(slots), '-c', String(slots * 2048),
    '-t', String(threads), '-tb', String(threads),
  ], { env: llamaEnv(llamaBin), stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let tries = 0; ; tries++) {
      if (child.exitCode !== null) throw new Error(`llama-server exited with ${child.exitCode}`);
      const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (tries > 600) throw new Error('llama-server did not come up in 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    return body(url);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

if (!opts['no-serve']) {
  const model = modelPath(opts['serve-model']);
  const vocab = getArray(readGGUFHeader(model).metadata, 'tokenizer.ggml.tokens')?.length ?? 32000;
  const samples = new Map<number, { kiln: ServeRun[]; llama: ServeRun[] }>();
  const add = (engine: 'kiln' | 'llama', runs: ServeRun[]) => {
    for (const r of runs) {
      if (!samples.has(r.clients)) samples.set(r.clients, { kiln: [], llama: [] });
      samples.get(r.clients)![engine].push(r);
    }
    console.error(`  serving ${engine}: ${runs.map((r) => `${r.clients} clients ${r.outputTokensPerSecond.toFixed(1)} tok/s, TPOT p50 ${r.tpotP50Ms.toFixed(1)} ms${r.failed ? `, ${r.failed} failed` : ''}`).join('; ')}  (load ${loadAverage()})`);
  };
  for (let round = 0; round < serveRounds; round++) {
    const kilnFirst = round % 2 === 0;
    for (const engine of kilnFirst ? ['kiln', 'llama'] as const : ['llama', 'kiln'] as const) {
      // a fresh workload seed per round (the prefix cache would otherwise find the last round's prompts)
      const seed = ['--seed', String(1 + round)];
      if (engine === 'kiln') add('kiln', serveBench([model, '--max-seqs', String(Math.max(...opts.clients.split(',').map(Number))), '--threads', String(threads), ...seed]));
      else add('llama', await withLlamaServer(model, (url) => serveBench(['--url', url, '--vocab', String(vocab), ...seed])));
    }
  }
  for (const [clients, s] of samples) {
    const name = opts['serve-model'];
    rows.push({ what: `serve ${clients} client${clients > 1 ? 's' : ''} out tok/s`, model: name, kiln: s.kiln.map((r) => r.outputTokensPerSecond), llama: s.llama.map((r) => r.outputTokensPerSecond), unit: 'tok/s', target: clients === 1 ? 0.9 : 1.0 });
    rows.push({ what: `serve ${clients} client${clients > 1 ? 's' : ''} TPOT p50`, model: name, kiln: s.kiln.map((r) => r.tpotP50Ms), llama: s.llama.map((r) => r.tpotP50Ms), unit: 'ms', lowerIsBetter: true, target: clients > 1 ? 1.0 : undefined });
  }
}

// ---- the table ---------------------------------------------------------------------------------------------

const bandwidthAfter = bandwidth();
const fmt = (xs: number[]) => (xs.length ? median(xs).toFixed(1) : '—');
console.log(`# ${new Date().toISOString()}, ${threads} threads, load average ${loadAverage()}; llama.cpp ${llamaBin}`);
console.log(`# read bandwidth (bench/read-bandwidth.mjs ${threads}): ${bandwidthBefore} GB/s before, ${bandwidthAfter} GB/s after`);
console.log(`# bench: medians of ${rounds} alternating rounds (-p ${prompt} -n ${generate})` +
  (opts['no-serve'] ? '' : `; serving: medians of ${serveRounds} rounds, random workload, ${outputTokens}-token completions`));
console.log('| test | model | kiln | llama.cpp | ratio | target | met |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | --- |');
for (const r of rows) {
  const [k, l] = [median(r.kiln), median(r.llama)];
  // for latencies the ratio is llama.cpp's over kiln's, so that above 1 is better for kiln everywhere
  const ratio = r.kiln.length && r.llama.length ? (r.lowerIsBetter ? l / k : k / l) : NaN;
  const met = r.target === undefined || Number.isNaN(ratio) ? '' : ratio >= r.target ? 'yes' : 'no';
  console.log(`| ${r.what} | ${r.model} | ${fmt(r.kiln)} ${r.unit} | ${fmt(r.llama)} ${r.unit} | ${Number.isNaN(ratio) ? '—' : ratio.toFixed(3)} | ${r.target ?? ''} | ${met} |`);
}
if (skipped.length) console.log(`\nNo figures: ${skipped.join(', ')}`);
