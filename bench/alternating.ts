// kiln and llama.cpp side by side on one model file: `kiln bench` and `llama-bench`, one repetition each per round,
// the first engine alternating, so that both see the same machine. Used by bench/zoo.ts and bench/compare-llama.ts.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export type Engine = 'kiln' | 'kiln-base' | 'llama.cpp';

export interface Test {
  /** pp512, tg64, … */
  name: string;
  samples: Record<Engine, number[]>;
}

export interface Alternation {
  engines: Engine[];
  rounds: number;
  threads: number;
  /** the folder of llama-bench and llama.cpp's shared libraries */
  llamaBin: string;
  /** the kiln checkout that runs as kiln-base */
  baseRoot?: string;
}

const root = resolve(import.meta.dirname, '..');

/** The command line of one repetition of `engine` on `model`. */
export function benchCommand(a: Alternation, engine: Engine, model: string, p: number, n: number): { file: string; args: string[] } {
  const common = ['-p', String(p), '-n', String(n), '-r', '1', '-t', String(a.threads)];
  if (engine !== 'llama.cpp') return { file: process.execPath, args: ['--import', 'tsx', 'src/cli/run-dev.ts', 'bench', model, ...common, '--json'] };
  return { file: join(a.llamaBin, 'llama-bench'), args: ['-m', model, ...common, '-o', 'json', ...(n === 0 ? ['-embd', '1'] : [])] };
}

/** llama.cpp's shared libraries beside its binaries */
export const llamaEnv = (llamaBin: string) => ({ ...process.env, LD_LIBRARY_PATH: [llamaBin, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') });

/** One repetition: tokens/s by test name, or the reason it failed. */
function runOnce(a: Alternation, engine: Engine, model: string, p: number, n: number): Map<string, number> | string {
  const { file, args } = benchCommand(a, engine, model, p, n);
  const run = spawnSync(file, args, {
    cwd: engine === 'kiln-base' ? a.baseRoot : root, encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 1 << 26, env: llamaEnv(a.llamaBin),
  });
  if (run.status !== 0) {
    const lines = `${run.stderr ?? ''}${run.error?.message ?? ''}`.trim().split('\n');
    return lines.find((l) => /error/i.test(l))?.trim() ?? lines.pop() ?? `exit ${run.status}`;
  }
  if (engine !== 'llama.cpp') {
    const { results } = JSON.parse(run.stdout) as { results: { test: string; median: number }[] };
    return new Map(results.map((r) => [r.test, r.median]));
  }
  const rows = JSON.parse(run.stdout) as { n_prompt: number; n_gen: number; avg_ts: number }[];
  return new Map(rows.map((r) => [r.n_gen > 0 ? `tg${r.n_gen}` : `pp${r.n_prompt}`, r.avg_ts]));
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const spread = (xs: number[], m: number) => Math.max(...xs.map((x) => Math.abs(x - m)));
/** median ± the largest distance from it */
export const figure = (xs: number[]) => (xs.length ? `${median(xs).toFixed(1)} ± ${spread(xs, median(xs)).toFixed(1)}` : '—');
export const ratioOf = (t: Test) => (t.samples.kiln.length && t.samples['llama.cpp'].length ? median(t.samples.kiln) / median(t.samples['llama.cpp']) : undefined);

/**
 * Rounds of every engine on one model file (prompt p, generation n; 0 skips a test), the first engine alternating
 * (of three: each goes first, second and third in turn). failed: why an engine gave no figures (the first failure;
 * it is not run again on this model).
 */
export function alternate(a: Alternation, path: string, p: number, n: number): { tests: Test[]; failed: Partial<Record<Engine, string>> } {
  const label = path.split('/').pop()!.replace(/\.gguf$/, '');
  const tests: Test[] = [], failed: Partial<Record<Engine, string>> = {};
  for (let round = 0; round < a.rounds; round++) {
    const order = a.engines.map((_, i) => a.engines[(i + round) % a.engines.length]);
    for (const engine of order) {
      if (failed[engine]) continue;
      const figures = runOnce(a, engine, path, p, n);
      if (typeof figures === 'string') {
        failed[engine] = figures;
        console.error(`  ${engine} failed on ${label}: ${figures}`);
        continue;
      }
      for (const [name, tps] of figures) {
        let test = tests.find((t) => t.name === name);
        if (!test) tests.push(test = { name, samples: { kiln: [], 'kiln-base': [], 'llama.cpp': [] } });
        test.samples[engine].push(tps);
      }
      console.error(`  ${label} round ${round + 1}/${a.rounds} ${engine}: ${[...figures].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}  (load ${loadAverage()})`);
    }
  }
  return { tests, failed };
}
