// `kiln convert` against llama.cpp's convert_hf_to_gguf.py (the .converted.gguf fixtures): tensors byte for byte,
// the same metadata (general.name comes from the folder's name, so a folder named as the converter's was gives the
// whole file byte for byte), the same vocabulary; q8_0 and f16 outputs typed as the converter types them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGGUF, type GGUFModelFile } from '../../src/gguf/model-file.js';
import { plainValue } from '../../src/gguf/metadata.js';
import { GGMLType } from '../../src/tensor/ggml-type.js';
import { Model } from '../../src/generate/model.js';
import { evaluate } from '../../src/generate/generate.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-convert-'));

/** `kiln convert DIR OUT --outtype T`, read back */
async function convert(dir: string, outType: string): Promise<GGUFModelFile> {
  const out = join(tmp, `${dir.split('/').pop()}.${outType}.gguf`);
  const { status, stderr } = await kiln('convert', dir, out, '--outtype', outType);
  assert.equal(status, 0, stderr);
  return loadGGUF(out);
}

const metadataOf = (file: GGUFModelFile, without: string[] = []) =>
  [...file.metadata].filter(([key]) => !without.includes(key)).map(([key, value]) => [key, value.type, plainValue(value)]);

for (const kind of ['f32', 'bf16']) {
  test(`kiln convert stories260K-${kind} --outtype ${kind}: llama.cpp's tensors byte for byte, its metadata and vocabulary`, async () => {
    const ours = await convert(sharedPath('conformance', 'hf', `stories260K-${kind}`), kind);
    const theirs = loadGGUF(sharedPath('conformance', 'hf', `stories260K-${kind}.converted.gguf`));
    assert.deepEqual(ours.tensorInfos.map((t) => [t.name, t.type, t.dims]), theirs.tensorInfos.map((t) => [t.name, t.type, t.dims]));
    for (const t of theirs.tensorInfos) assert.ok(Buffer.from(ours.tensor(t.name).data).equals(theirs.tensor(t.name).data), t.name);
    assert.deepEqual(metadataOf(ours, ['general.name']), metadataOf(theirs, ['general.name']));
    assert.equal(ours.metadata.get('general.name')?.value, `stories260K ${kind === 'f32' ? 'F32' : 'Bf16'}`);
  });
}

test('a folder named as the converter\'s was converts to the converter\'s file byte for byte', async () => {
  // the fixtures were converted from folders named stories260K-hf and stories260K-hf-bf16
  for (const [source, name, outType] of [['stories260K-f32', 'stories260K-hf', 'f32'], ['stories260K-bf16', 'stories260K-hf-bf16', 'bf16']]) {
    const dir = join(tmp, name);
    mkdirSync(dir);
    const from = sharedPath('conformance', 'hf', source);
    for (const file of readdirSync(from)) symlinkSync(join(from, file), join(dir, file));
    const out = join(tmp, `${name}.gguf`);
    assert.equal((await kiln('convert', dir, out, '--outtype', outType)).status, 0);
    assert.ok(readFileSync(out).equals(readFileSync(sharedPath('conformance', 'hf', `${source}.converted.gguf`))), name);
  }
});

test('--outtype q8_0 and f16: matrices of whole blocks Q8_0 (others F16), norms F32; the result runs', async () => {
  const q8 = await convert(sharedPath('conformance', 'hf', 'stories260K-f32'), 'q8_0');
  assert.equal(q8.metadata.get('general.file_type')?.value, 7);
  const typeOf = (file: GGUFModelFile, name: string) => file.tensorInfos.find((t) => t.name === name)!.type;
  assert.equal(typeOf(q8, 'blk.0.attn_q.weight'), GGMLType.Q8_0);
  assert.equal(typeOf(q8, 'blk.0.ffn_down.weight'), GGMLType.F16); // rows of 172 values: not whole blocks of 32
  assert.equal(typeOf(q8, 'blk.0.attn_norm.weight'), GGMLType.F32);
  const f16 = await convert(sharedPath('conformance', 'hf', 'stories260K-bf16'), 'f16');
  assert.equal(typeOf(f16, 'output.weight'), GGMLType.F16);
  assert.equal(typeOf(f16, 'output_norm.weight'), GGMLType.F32);

  // Q8_0 stays close to F32: the same next token after the prompt
  const prompt = [1, 403, 407, 261, 378];
  const last = (logits: Float32Array) => logits.subarray(logits.length - 512);
  const argmax = (row: Float32Array) => row.indexOf(Math.max(...row));
  const reference = last(evaluate(Model.load(sharedPath('data', 'models', 'stories260K.gguf')), prompt));
  assert.equal(argmax(last(evaluate(Model.load(q8.path), prompt))), argmax(reference));
});
