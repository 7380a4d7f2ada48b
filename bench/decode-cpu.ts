// Decode weight-read rate per thread, kiln against llama.cpp, on a busy machine: each engine generates with one thread
// (no pool, no spinning barrier) and is timed by its CPU time (user + system, from /usr/bin/time), which another
// process's time slicing does not inflate. A run of n tokens and a run of nShort tokens of the same engine and model
// are subtracted, so loading and warm-up cancel: CPU per token = Δcpu / Δtokens (kiln bench generates each test twice,
// warm-up and timed; llama-bench once plus a 1-token warm-up). Rate = weight bytes read per token (every tensor but the
// token embedding, of which one row is read, unless it is also the output) / CPU per token. Engines alternate in
// every round; medians over rounds.
//   npx tsx bench/decode-cpu.ts MODEL.gguf… [--llama-bench ../shared/peers/llama.cpp/bin-native] [--kiln-base DIR]
//                               [-n 64] [--short 16] [-r 3]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readGGUFHeader } from '../src/gguf/reader.js';

const { values: opts, positionals: models } = parseArgs({
  allowPositionals: true,
  options: {
    'llama-bench': { type: 'string', default: '../shared/peers/llama.cpp/bin-native' },
    'kiln-base': { type: 'string' },
    'n-gen': { type: 'string', short: 'n', default: '64' },
    short: { type: 'string', default: '16' },
    repetitions: { type: 'string', short: 'r', default: '3' },
  },
});
const [nLong, nShort, rounds] = [opts['n-gen'], opts.short, opts.repetitions].map(Number);
const llamaBin = resolve(opts['llama-bench']);
const root = resolve(import.meta.dirname, '..');
type Engine = 'kiln' | 'kiln-base' | 'llama.cpp';
const engines: Engine[] = opts['kiln-base'] ? ['kiln', 'kiln-base', 'llama.cpp'] : ['kiln', 'llama.cpp'];
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];

/** Tokens an engine generates for `-n n` (see above). */
const tokens = (engine: Engine, n: number) => (engine === 'llama.cpp' ? n + 1 : 2 * n);

/** CPU seconds of one run generating n tokens with one thread. */
function cpuSeconds(engine: Engine, model: string, n: number): number {
  const args = engine === 'llama.cpp'
    ? [join(llamaBin, 'llama-bench'), '-m', model, '-p', '0', '-n', String(n), '-r', '1', '-t', '1']
    : [process.execPath, '--import', 'tsx', 'src/cli/run-dev.ts', 'bench', model, '-p', '0', '-n', String(n), '-r', '1', '-t', '1'];
  const run = spawnSync('/usr/bin/time', ['-f', 'cpu %U %S', ...args], {
    cwd: engine === 'kiln-base' ? resolve(opts['kiln-base']!) : root, encoding: 'utf8', maxBuffer: 1 << 26,
    env: { ...process.env, LD_LIBRARY_PATH: [llamaBin, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') },
  });
  const line = run.stderr.trim().split('\n').pop() ?? '';
  const match = /^cpu ([\d.]+) ([\d.]+)$/.exec(line);
  if (run.status !== 0 || !match) throw new Error(`${engine} on ${model} failed: ${run.stderr.slice(-500)}`);
  return Number(match[1]) + Number(match[2]);
}

/** Bytes of weights one decode step reads. */
function weightBytes(model: string): number {
  const { tensors } = readGGUFHeader(model);
  const tied = !tensors.some((t) => t.name === 'output.weight');
  return tensors.filter((t) => tied || t.name !== 'token_embd.weight').reduce((sum, t) => sum + t.nBytes, 0);
}

console.log(`# ${new Date().toISOString()}; ${rounds} rounds, engines alternating; -t 1, CPU time of -n ${nLong} minus -n ${nShort}`);
const rows: string[] = ['| model | weights MB/token | engine | CPU ms/token | GB/s per thread | ÷ llama.cpp |', '| --- | ---: | --- | ---: | ---: | ---: |'];
for (const model of models.map((m) => resolve(m))) {
  const bytes = weightBytes(model);
  const perToken: Record<Engine, number[]> = { kiln: [], 'kiln-base': [], 'llama.cpp': [] };
  for (let round = 0; round < rounds; round++) {
    for (const engine of engines.map((_, i) => engines[(i + round) % engines.length])) {
      const long = cpuSeconds(engine, model, nLong), short = cpuSeconds(engine, model, nShort);
      perToken[engine].push((long - short) / (tokens(engine, nLong) - tokens(engine, nShort)));
      console.error(`  ${basename(model)} round ${round + 1}: ${engine} ${(1000 * perToken[engine].at(-1)!).toFixed(2)} ms/token (load ${loadAverage()})`);
    }
  }
  const llama = median(perToken['llama.cpp']);
  for (const engine of engines) {
    const t = median(perToken[engine]);
    rows.push(`| ${basename(model, '.gguf')} | ${(bytes / 1e6).toFixed(1)} | ${engine} | ${(1000 * t).toFixed(2)} | ${(bytes / t / 1e9).toFixed(2)} | ${(llama / t).toFixed(3)} |`);
  }
}
console.log(rows.join('\n'));
