// `kiln imatrix MODEL -f TEXT [-o FILE] [-c CTX] [--chunks N] [--process-output]`: an importance matrix as
// llama-imatrix computes it (the mean squared input of every weight matrix's columns over the text), written in
// llama-imatrix's legacy .dat format, which `kiln quantize --imatrix` and llama-quantize read:
//   i32 n_entries, per entry: i32 name_len | name | i32 ncall | i32 nval | f32 values[nval] (means × ncall),
//   then i32 chunk count | i32 len | dataset name.

import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { optBool, optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { loadGGUF } from '../../gguf/model-file.js';
import { collectImportance } from '../../quant/ptq/activations.js';

/** The legacy .dat bytes of per-weight column means collected over `calls` calls. */
export function imatrixDatBytes(entries: ReadonlyMap<string, Float32Array>, calls: number, dataset: string): Uint8Array {
  const parts: Uint8Array[] = [];
  const i32 = (v: number) => parts.push(new Uint8Array(Int32Array.of(v).buffer));
  const text = (s: string) => { const b = new TextEncoder().encode(s); i32(b.length); parts.push(b); };
  i32(entries.size);
  for (const [name, means] of entries) {
    text(name);
    i32(calls);
    i32(means.length);
    parts.push(new Uint8Array(Float32Array.from(means, (m) => m * calls).buffer));
  }
  i32(calls);
  text(dataset);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export const imatrixCommand: Command = {
  name: 'imatrix',
  usage: 'MODEL -f TEXT [-o imatrix.dat] [-c CTX] [--chunks N] [--process-output]',
  summary: 'compute an importance matrix (llama-imatrix .dat) for kiln quantize --imatrix',
  options: [
    { name: 'file', short: 'f', description: 'calibration text' },
    { name: 'output', short: 'o', description: 'output file (default imatrix.dat)' },
    { name: 'ctx', short: 'c', description: 'tokens per chunk (default 512)' },
    { name: 'chunks', description: 'use at most N chunks' },
    { name: 'process-output', boolean: true, description: 'collect output.weight too (llama-imatrix leaves it out by default)' },
  ],
  run(args: ParsedArgs) {
    const [path, ...extra] = args.positionals;
    const textPath = optString(args, 'file');
    if (!path || !textPath || extra.length > 0) throw new UsageError(`usage: kiln imatrix ${imatrixCommand.usage}`);
    const output = optString(args, 'output') ?? 'imatrix.dat';
    const ctx = optInt(args, 'ctx') ?? 512;
    if (ctx < 2) throw new UsageError('-c must be at least 2');
    const collected = collectImportance(loadGGUF(path), readFileSync(textPath, 'utf8'), ctx, optInt(args, 'chunks') ?? Infinity,
      optBool(args, 'process-output'), (i, n, ppl) => process.stderr.write(`[${i}/${n}] PPL ${ppl.toFixed(4)}\n`));
    writeFileSync(output, imatrixDatBytes(collected.entries, collected.calls, basename(textPath)));
    const p = collected.perplexity;
    console.log(`${output}: ${collected.entries.size} entries over ${collected.calls} chunks of ${ctx} tokens (PPL ${p.ppl.toFixed(4)} +/- ${p.pplError.toFixed(5)})`);
  },
};
