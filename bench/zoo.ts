// The model zoo side by side with llama.cpp: for each architecture's ~100M-parameter random model (ZOO in
// bench/make-models.ts; missing files are made first), `kiln bench` and llama.cpp's `llama-bench` run alternately,
// one repetition each per round (the first engine alternates too), so that both see the same machine. The table
// gives each engine's median tokens/s, kiln/llama.cpp, and that ratio over the llama baseline's for the same type
// and test: the issue's goal is every architecture within 15% of the baseline (no architecture is a slow path).
// An encoder (bert) gets prompt processing only, at most its context (llama-bench: -n 0 -embd 1).
//
//   npx tsx bench/zoo.ts [--type F16,Q8_0,Q4_K_M] [--arch llama,gpt2,bert,gemma2,phi3,deepseek2] [-p 512] [-n 64]
//                        [-r 5] [-t 2] [--models bench/models] [--llama-bench ../shared/peers/llama.cpp/bin]
//                        [--kiln-base DIR]
// --kiln-base: another kiln checkout (built, e.g. the commit before a change) runs as a third engine in the same
// rounds; the table adds its figures and kiln / kiln-base.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readGGUFHeader } from '../src/gguf/reader.js';
import { findArchitecture } from '../src/models/registry.js';
import { alternate, benchCommand, figure, loadAverage, median, ratioOf, type Alternation, type Engine, type Test } from './alternating.js';
import { makeModel, ZOO } from './make-models.js';

interface Measured {
  model: string;
  arch: string;
  type: string;
  tests: Test[];
  /** why an engine gave no figures (the first failure; it is not run again on this model) */
  failed: Partial<Record<Engine, string>>;
}

const { values: opts } = parseArgs({
  options: {
    type: { type: 'string', default: 'F16,Q8_0,Q4_K_M' },
    arch: { type: 'string', default: ZOO.map((s) => s.arch).join(',') },
    'n-prompt': { type: 'string', short: 'p', default: '512' },
    'n-gen': { type: 'string', short: 'n', default: '64' },
    repetitions: { type: 'string', short: 'r', default: '5' },
    threads: { type: 'string', short: 't', default: '2' },
    models: { type: 'string', default: 'bench/models' },
    'llama-bench': { type: 'string', default: '../shared/peers/llama.cpp/bin' },
    'kiln-base': { type: 'string' },
  },
});
const [prompt, generate, rounds, threads] = [opts['n-prompt'], opts['n-gen'], opts.repetitions, opts.threads].map(Number);
const baseRoot = opts['kiln-base'] && resolve(opts['kiln-base']);
const alternation: Alternation = {
  engines: baseRoot ? ['kiln', 'kiln-base', 'llama.cpp'] : ['kiln', 'llama.cpp'], rounds, threads, llamaBin: resolve(opts['llama-bench']), baseRoot,
};

/** Alternating rounds of the engines on one model file. */
function measure(path: string, type: string): Measured {
  const meta = readGGUFHeader(path).metadata;
  const hp = findArchitecture(String(meta.get('general.architecture')?.value)).hparams(meta);
  const p = Math.min(prompt, hp.contextLength);
  const n = hp.causal ? Math.min(generate, hp.contextLength - p) : 0;
  return { model: path.split('/').pop()!.replace(/\.gguf$/, ''), arch: hp.arch, type, ...alternate(alternation, path, p, n) };
}

function table(all: Measured[]): string {
  const lines = [
    `| model | test | kiln t/s | llama.cpp t/s | kiln / llama.cpp | ÷ ${ZOO[0].name}'s | within 15% |${baseRoot ? ' kiln-base t/s | kiln / kiln-base |' : ''}`,
    `| --- | --- | ---: | ---: | ---: | ---: | --- |${baseRoot ? ' ---: | ---: |' : ''}`,
  ];
  for (const m of all) {
    const baseline = all.find((b) => b.arch === ZOO[0].arch && b.type === m.type);
    for (const t of m.tests) {
      const ratio = ratioOf(t);
      const baseTest = baseline?.tests.find((b) => b.name.slice(0, 2) === t.name.slice(0, 2)); // pp with pp, tg with tg
      const base = baseTest && ratioOf(baseTest);
      const relative = ratio !== undefined && base !== undefined ? ratio / base : undefined;
      lines.push(`| ${m.model} | ${t.name} | ${figure(t.samples.kiln)} | ${figure(t.samples['llama.cpp'])} | ` +
        `${ratio?.toFixed(3) ?? '—'} | ${relative?.toFixed(3) ?? '—'} | ${relative === undefined ? '' : Math.abs(relative - 1) <= 0.15 ? 'yes' : 'no'} |` +
        (baseRoot ? ` ${figure(t.samples['kiln-base'])} | ${t.samples['kiln-base'].length ? (median(t.samples.kiln) / median(t.samples['kiln-base'])).toFixed(3) : '—'} |` : ''));
    }
  }
  const failures = all.flatMap((m) => Object.entries(m.failed).map(([engine, why]) => `- ${engine} on ${m.model}: ${why}`));
  return [...lines, ...(failures.length ? ['', 'No figures:', ...failures] : [])].join('\n');
}

const specs = opts.arch.split(',').map((arch) => {
  const spec = ZOO.find((s) => s.arch === arch);
  if (!spec) throw new Error(`no zoo model of architecture ${arch} (zoo: ${ZOO.map((s) => s.arch).join(', ')})`);
  return spec;
});
if (!specs.includes(ZOO[0])) specs.unshift(ZOO[0]); // the baseline every ratio is compared with

const { file: kilnFile, args: kilnArgs } = benchCommand(alternation, 'kiln', 'MODEL', prompt, generate);
const { file: llamaFile, args: llamaArgs } = benchCommand(alternation, 'llama.cpp', 'MODEL', prompt, generate);
console.log(`# ${new Date().toISOString()}, load average ${loadAverage()}; ${rounds} alternating rounds per model, each engine -r 1`);
console.log(`# kiln:      ${[kilnFile, ...kilnArgs].join(' ')}${baseRoot ? ` (kiln-base: the same in ${baseRoot})` : ''}`);
console.log(`# llama.cpp: LD_LIBRARY_PATH=${alternation.llamaBin} ${[llamaFile, ...llamaArgs].join(' ')}   (encoders: -n 0 -embd 1)\n`);
const measured: Measured[] = [];
for (const type of opts.type.split(',')) {
  for (const spec of specs) {
    const path = resolve(opts.models, `${spec.name}-${type}.gguf`);
    if (!existsSync(path)) {
      console.error(`making ${path}`);
      await makeModel(spec, type, opts.models);
    }
    measured.push(measure(path, type));
  }
}
console.log(table(measured));
