// kiln imatrix: the collected column means of squared inputs, checked for the first layer's attention input
// against a direct computation (embedding row → rmsnorm × attn_norm), and the .dat file read back by readImatrix.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { dequantizeTensor } from '../../src/tensor/codec.js';
import { Model } from '../../src/generate/model.js';
import { perplexityChunks } from '../../src/generate/generate.js';
import { collectImportance } from '../../src/quant/ptq/activations.js';
import { readImatrix } from '../../src/quant/imatrix.js';
import { imatrixDatBytes } from '../../src/cli/commands/imatrix.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-imatrix-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

test('imatrix of kq-f32: attn_q/k/v share the mean squared normalized embedding; the .dat file reads back', () => {
  const path = sharedPath('conformance', 'models', 'kq-f32.gguf');
  const text = readFileSync(sharedPath('data', 'text', 'tinystories-sample-197k.txt'), 'utf8');
  const file = loadGGUF(path);
  const collected = collectImportance(file, text, 16, 2);
  assert.equal(collected.calls, 2);
  assert.equal(collected.entries.size, 14); // 7 matrices × 2 layers; output.weight left out
  assert.ok(!collected.entries.has('output.weight'));
  assert.ok(collectImportance(file, text, 16, 1, true).entries.has('output.weight'));

  // layer 0's attention input: rmsnorm(token_embd[token]) · attn_norm (eps 1e-6), averaged over both chunks' tokens
  const dim = 256;
  const embd = dequantizeTensor(file.tensor('token_embd.weight'));
  const norm = dequantizeTensor(file.tensor('blk.0.attn_norm.weight'));
  const expected = new Float64Array(dim);
  const tokens = perplexityChunks(Model.load(path), text, 16, 2).flat();
  for (const t of tokens) {
    const row = embd.subarray(t * dim, (t + 1) * dim);
    const scale = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / dim + 1e-6);
    for (let j = 0; j < dim; j++) expected[j] += (row[j] * scale * norm[j]) ** 2 / tokens.length;
  }
  const q = collected.entries.get('blk.0.attn_q.weight')!;
  for (let j = 0; j < dim; j++) assert.ok(Math.abs(q[j] - expected[j]) <= 1e-4 * expected[j] + 1e-9, `column ${j}: ${q[j]} vs ${expected[j]}`);
  assert.deepEqual(collected.entries.get('blk.0.attn_k.weight'), q);
  assert.equal(collected.entries.get('blk.0.ffn_down.weight')!.length, 768);

  const datPath = join(dir, 'kq.imatrix');
  writeFileSync(datPath, imatrixDatBytes(collected.entries, collected.calls, 'tinystories'));
  const read = readImatrix(datPath);
  assert.equal(read.chunkCount, 2);
  assert.equal(read.dataset, 'tinystories');
  for (const [name, means] of collected.entries) {
    const back = read.entries.get(name)!;
    for (let j = 0; j < means.length; j++) assert.ok(Math.abs(back[j] - means[j]) <= 1e-6 * means[j], `${name}[${j}]`);
  }
});
