// Importance matrices for tests: regular column weights for every 2-D weight of a model, written in llama-imatrix's
// legacy .dat format (which llama-quantize reads too).

import type { GGUFModelFile } from '../../src/gguf/model-file.js';

/** Importance of every 2-D weight but token_embd: column i of a matrix with n columns weighs 1 + i/n. */
export function columnImportance(model: GGUFModelFile): Map<string, Float32Array> {
  const entries = new Map<string, Float32Array>();
  for (const t of model.tensorInfos) {
    if (t.dims.length < 2 || t.name === 'token_embd.weight') continue;
    entries.set(t.name, new Float32Array(t.dims[0]).map((_, i) => 1 + i / t.dims[0]));
  }
  return entries;
}

/** The legacy .dat format: sums over `ncall` calls, then the chunk count and dataset name. */
export function legacyImatrixBytes(entries: Map<string, Float32Array>, ncall: number, chunks: number, dataset: string): Uint8Array {
  const parts: Buffer[] = [];
  const i32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); parts.push(b); };
  i32(entries.size);
  for (const [name, values] of entries) {
    i32(Buffer.byteLength(name)); parts.push(Buffer.from(name));
    i32(ncall); i32(values.length);
    parts.push(Buffer.from(new Float32Array(values.map((v) => v * ncall)).buffer));
  }
  i32(chunks); i32(Buffer.byteLength(dataset)); parts.push(Buffer.from(dataset));
  return Buffer.concat(parts);
}
