// Bad Hugging Face folders give an HFError naming the file and the field at fault, before any weight is read:
// truncated and lying safetensors headers, overlapping offsets, absurd shapes, a missing shard, a config that does
// not match the weights, an unknown architecture.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HFError, readSafetensorsHeader, type HFErrorCode } from '../../src/hf/safetensors.js';
import { openHFCheckpoint } from '../../src/hf/checkpoint.js';
import { Model } from '../../src/generate/model.js';
import { sharedPath } from '../shared.js';

const FIXTURE = sharedPath('conformance', 'hf', 'stories260K-f32');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-hf-hostile-'));

/** a safetensors file of this header JSON and `dataBytes` zero bytes */
function safetensorsFile(name: string, header: unknown, dataBytes: number): string {
  const json = Buffer.from(JSON.stringify(header));
  const bytes = Buffer.alloc(8 + json.length + dataBytes);
  bytes.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(bytes, 8);
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return path;
}

function expectHFError(fn: () => unknown, code: HFErrorCode, file: string, field: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HFError, `expected an HFError, got ${String(e)}`);
    assert.deepEqual([e.code, e.file, e.field], [code, file, field], e.message);
    return true;
  });
}

const f32 = (shape: number[], offsets: number[]) => ({ dtype: 'F32', shape, data_offsets: offsets });

test('a truncated safetensors file: cut in the header length, in the header, in the data', () => {
  const whole = readFileSync(join(FIXTURE, 'model.safetensors'));
  const cut = (name: string, length: number) => {
    const path = join(tmp, name);
    writeFileSync(path, whole.subarray(0, length));
    return path;
  };
  const short = cut('short.safetensors', 5);
  expectHFError(() => readSafetensorsHeader(short), 'TRUNCATED', short, 'header length');
  const inHeader = cut('in-header.safetensors', 100);
  expectHFError(() => readSafetensorsHeader(inHeader), 'TRUNCATED', inHeader, 'header length');
  // the last tensor (sorted: model.norm.weight) ends past the file's end
  const inData = cut('in-data.safetensors', whole.length - 10);
  expectHFError(() => readSafetensorsHeader(inData), 'TENSOR_OUT_OF_BOUNDS', inData, 'model.norm.weight');
});

test('a header that lies: about its own length, a tensor\'s size, its dtype', () => {
  const hugeLength = join(tmp, 'huge-length.safetensors');
  const bytes = Buffer.alloc(64);
  bytes.writeBigUInt64LE(1n << 60n, 0);
  writeFileSync(hugeLength, bytes);
  expectHFError(() => readSafetensorsHeader(hugeLength), 'BAD_HEADER', hugeLength, 'header length');
  const notJson = join(tmp, 'not-json.safetensors');
  writeFileSync(notJson, Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a"')]));
  expectHFError(() => readSafetensorsHeader(notJson), 'BAD_HEADER', notJson, 'header');
  const size = safetensorsFile('size.safetensors', { w: f32([4, 4], [0, 60]) }, 64);
  expectHFError(() => readSafetensorsHeader(size), 'BAD_SHAPE', size, 'w');
  const dtype = safetensorsFile('dtype.safetensors', { w: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16);
  expectHFError(() => readSafetensorsHeader(dtype), 'BAD_DTYPE', dtype, 'w');
  const beyond = safetensorsFile('beyond.safetensors', { w: f32([4], [1000, 1016]) }, 16);
  expectHFError(() => readSafetensorsHeader(beyond), 'TENSOR_OUT_OF_BOUNDS', beyond, 'w');
  const backwards = safetensorsFile('backwards.safetensors', { w: f32([0], [16, 0]) }, 16);
  expectHFError(() => readSafetensorsHeader(backwards), 'BAD_HEADER', backwards, 'w');
});

test('overlapping tensors and absurd shapes', () => {
  const overlap = safetensorsFile('overlap.safetensors', { a: f32([4], [0, 16]), b: f32([4], [8, 24]) }, 24);
  expectHFError(() => readSafetensorsHeader(overlap), 'OVERLAPPING_TENSORS', overlap, 'b');
  const absurd = safetensorsFile('absurd.safetensors', { w: f32([2 ** 40, 2 ** 40], [0, 16]) }, 16);
  expectHFError(() => readSafetensorsHeader(absurd), 'BAD_SHAPE', absurd, 'w');
  for (const shape of [[-1], [1.5], ['4'], [1, 1, 1, 1, 1]]) {
    const bad = safetensorsFile('bad-shape.safetensors', { w: { dtype: 'F32', shape, data_offsets: [0, 4] } }, 4);
    expectHFError(() => readSafetensorsHeader(bad), 'BAD_SHAPE', bad, 'w');
  }
});

/** the F32 fixture folder (its files linked) with some files replaced or added */
function folder(name: string, replaced: Record<string, string | Buffer>): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.model', 'tokenizer_config.json']) {
    if (!(file in replaced)) symlinkSync(join(FIXTURE, file), join(dir, file));
  }
  for (const [file, contents] of Object.entries(replaced)) writeFileSync(join(dir, file), contents);
  return dir;
}

const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;

test('a missing shard names the index file and the tensor that points at it', () => {
  const dir = folder('missing-shard', { 'model.safetensors.index.json': JSON.stringify({ weight_map: { 'lm_head.weight': 'model-00002-of-00002.safetensors' } }) });
  expectHFError(() => Model.load(dir), 'MISSING_SHARD', join(dir, 'model.safetensors.index.json'), 'weight_map.lm_head.weight');
  const escape = folder('escaping-shard', { 'model.safetensors.index.json': JSON.stringify({ weight_map: { 'lm_head.weight': '../x.safetensors' } }) });
  expectHFError(() => Model.load(escape), 'BAD_CONFIG', join(escape, 'model.safetensors.index.json'), 'weight_map.lm_head.weight');
});

test('a config that does not match the weights names the weights file and the tensor', () => {
  const dir = folder('mismatch', { 'config.json': JSON.stringify({ ...config, intermediate_size: 128 }) });
  expectHFError(() => openHFCheckpoint(dir), 'CONFIG_MISMATCH', join(dir, 'model.safetensors'), 'model.layers.0.mlp.gate_proj.weight');
  const layers = folder('more-layers', { 'config.json': JSON.stringify({ ...config, num_hidden_layers: 6 }) });
  expectHFError(() => openHFCheckpoint(layers), 'CONFIG_MISMATCH', join(layers, 'config.json'), 'model.layers.5.input_layernorm.weight');
  const missing = folder('no-heads', { 'config.json': JSON.stringify({ ...config, num_attention_heads: undefined }) });
  expectHFError(() => openHFCheckpoint(missing), 'BAD_CONFIG', join(missing, 'config.json'), 'num_attention_heads');
  const absurd = folder('absurd-layers', { 'config.json': JSON.stringify({ ...config, num_hidden_layers: 1e12 }) });
  expectHFError(() => openHFCheckpoint(absurd), 'BAD_CONFIG', join(absurd, 'config.json'), 'num_hidden_layers');
});

test('an unknown architecture or tensor names config.json\'s architectures or the tensor', () => {
  const dir = folder('unknown-arch', { 'config.json': JSON.stringify({ ...config, architectures: ['MambaForCausalLM'] }) });
  expectHFError(() => Model.load(dir), 'UNKNOWN_ARCHITECTURE', join(dir, 'config.json'), 'architectures');
  const extra = safetensorsFile('extra.safetensors', { 'model.vision_tower.weight': f32([4], [0, 16]) }, 16);
  const withExtra = folder('unknown-tensor', { 'model.safetensors': readFileSync(extra) });
  expectHFError(() => Model.load(withExtra), 'UNKNOWN_TENSOR', join(withExtra, 'model.safetensors'), 'model.vision_tower.weight');
});

test('a broken tokenizer, a missing config and a vocabulary far smaller than the config\'s are named', () => {
  const broken = folder('broken-tokenizer', { 'tokenizer.model': readFileSync(join(FIXTURE, 'tokenizer.model')).subarray(0, 999) });
  expectHFError(() => Model.load(broken), 'BAD_TOKENIZER', join(broken, 'tokenizer.model'), 'pieces');
  const noConfig = join(tmp, 'no-config');
  mkdirSync(noConfig);
  expectHFError(() => Model.load(noConfig), 'MISSING_FILE', join(noConfig, 'config.json'), '');
  const huge = folder('huge-vocab', { 'config.json': JSON.stringify({ ...config, vocab_size: 1 << 24 }) });
  expectHFError(() => Model.load(huge), 'CONFIG_MISMATCH', join(huge, 'tokenizer.model'), 'pieces');
});
