// Bytes per weight of each storage type, and llama.cpp's quantization mixes checked against files it wrote.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { typeName } from '../../src/tensor/ggml-type.js';
import { estimateMemory, mixTypes } from '../../src/estimate/estimate.js';
import { modelFromGGUF, modelFromShape, shapeFromFlags } from '../../src/estimate/model.js';
import { NF4, bitsPerWeight, storageBytes, storageType, UnknownStorageTypeError } from '../../src/estimate/storage.js';
import { sharedPath } from '../shared.js';
import { QuantMixError } from '../../src/quant/mix.js';

test('bits per weight follow the ggml block layouts', () => {
  // Q4_K: 256 values in 2+2 (d, dmin) + 12 (scales) + 128 (nibbles) = 144 bytes → 4.5 bpw
  assert.equal(bitsPerWeight(storageType('Q4_K')), 4.5);
  // Q6_K: 128 + 64 + 16 + 2 = 210 bytes per 256 → 6.5625
  assert.equal(bitsPerWeight(storageType('Q6_K')), 6.5625);
  // Q8_0: 2 + 32 bytes per 32 → 8.5
  assert.equal(bitsPerWeight(storageType('Q8_0')), 8.5);
  assert.equal(bitsPerWeight(storageType('Q5_K')), 5.5);
  assert.equal(bitsPerWeight(storageType('Q3_K')), 3.4375);
  assert.equal(bitsPerWeight(storageType('Q2_K')), 2.625);
  assert.equal(bitsPerWeight(storageType('f16')), 16);
  // IQ4_NL: 2 + 16 bytes per 32 → 4.5; IQ4_XS: 2 + 2 + 4 + 128 bytes per 256 → 4.25
  assert.equal(bitsPerWeight(storageType('IQ4_NL')), 4.5);
  assert.equal(bitsPerWeight(storageType('iq4_xs')), 4.25);
  // QLoRA's NF4 with double quantization: 4 + 8/64 + 32/(64·256) = 4.1269… bits
  assert.ok(Math.abs(bitsPerWeight(NF4) - (4 + 8 / 64 + 32 / (64 * 256))) < 1e-12);
  // whole blocks give exact integers: a 4096×4096 matrix in Q4_K is 4096·4096/256·144 bytes
  assert.equal(storageBytes(4096 * 4096, storageType('Q4_K')), 9_437_184);
  assert.throws(() => storageType('Q9_X'), UnknownStorageTypeError);
});

const MIXES = ['F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K'];

test('every mix types the tensors of kq-f32 exactly as llama-quantize did', () => {
  const base = modelFromGGUF(readGGUFHeader(sharedPath('conformance', 'models', 'kq-f32.gguf')));
  for (const mix of MIXES) {
    const quantized = readGGUFHeader(sharedPath('conformance', 'models', `kq-${mix}.gguf`));
    const actual = new Map(quantized.tensors.map((t) => [t.name, typeName(t.type)]));
    const types = mixTypes(base, mix as 'F16');
    for (const t of base.tensors) assert.equal(types.get(t.name)!.name, actual.get(t.name), `${mix} ${t.name}`);
    // and so the estimated weight bytes are the file's tensor bytes
    const estimated = estimateMemory({ model: base, weightType: mix }).terms.find((t) => t.id === 'weights')!.bytes;
    assert.equal(estimated, quantized.tensors.reduce((n, t) => n + t.nBytes, 0), mix);
  }
});

test('the IQ4 types and the IQ4_NL fallbacks weigh what llama-quantize\'s files hold', () => {
  // tensor bytes of llama-quantize's files (their sha256 are pinned in test/quant/llama-quantize-parity.test.ts)
  const files: [string, string, number][] = [
    ['conformance/models/kq-f32.gguf', 'IQ4_NL', 1_071_104], ['conformance/models/kq-f32.gguf', 'IQ4_XS', 1_017_856],
    ['data/models/stories260K.gguf', 'Q2_K', 262_624], ['data/models/stories260K.gguf', 'IQ4_XS', 262_624],
  ];
  for (const [path, mix, bytes] of files) {
    const model = modelFromGGUF(readGGUFHeader(sharedPath(...path.split('/'))));
    assert.equal(estimateMemory({ model, weightType: mix }).terms.find((t) => t.id === 'weights')!.bytes, bytes, `${path} ${mix}`);
  }
});

test('a mixture-of-experts model: Q8_0 of moe-f32 is moe-q8_0 (the router ffn_gate_inp stays F32)', () => {
  const moe = modelFromGGUF(readGGUFHeader(sharedPath('conformance', 'models', 'moe-f32.gguf')));
  const quantized = readGGUFHeader(sharedPath('conformance', 'models', 'moe-q8_0.gguf'));
  const estimated = estimateMemory({ model: moe, weightType: 'Q8_0' }).terms.find((t) => t.id === 'weights')!;
  assert.equal(estimated.bytes, quantized.tensors.reduce((n, t) => n + t.nBytes, 0));
  const router = quantized.tensors.filter((t) => t.name.endsWith('ffn_gate_inp.weight'));
  assert.deepEqual(router.map((t) => typeName(t.type)), ['F32', 'F32']);
  assert.equal(estimated.parts!.find((p) => p.label === 'F32')!.params, router.reduce((n, t) => n + t.nElements, 0) + 5 * 64);
});

test('Q4_K_M gives Q6_K to output and to half of attn_v and ffn_down in a 32-layer model (use_more_bits)', () => {
  const model = modelFromShape(shapeFromFlags({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000 }));
  const weights = estimateMemory({ model, weightType: 'Q4_K_M' }).terms.find((t) => t.id === 'weights')!;
  const q6 = weights.parts!.find((p) => p.label === 'Q6_K')!;
  // layers 0-3, 28-31 and (i − 4) % 3 == 2: 6, 9, …, 27 → 16 of 32
  const attnV = 4096 * 4096, ffnDown = 11008 * 4096, output = 4096 * 32000;
  assert.equal(q6.params, output + 16 * attnV + 16 * ffnDown);
});

test('rows that do not fit a k-quant block fall back like llama-quantize (Q4_K → Q5_0, Q6_K → Q8_0, Q2_K → IQ4_NL, else F16)', () => {
  const typesFor = (dim: number, ffn: number, mix: 'Q4_K_M' | 'Q2_K') =>
    mixTypes(modelFromShape(shapeFromFlags({ dim, layers: 4, heads: 4, ffn, vocab: 512 })), mix);
  const fits = typesFor(4096, 4096, 'Q4_K_M');
  assert.equal(fits.get('blk.0.attn_q.weight')!.name, 'Q4_K');
  assert.equal(fits.get('blk.0.attn_norm.weight')!.name, 'F32');
  const rows4160 = typesFor(4160, 4160, 'Q4_K_M'); // 4160 = 130·32, not a multiple of 256
  assert.equal(rows4160.get('blk.0.attn_q.weight')!.name, 'Q5_0');
  assert.equal(rows4160.get('output.weight')!.name, 'Q8_0');
  // rows of 4100 are not even a multiple of 32: attn_q falls back to F16, but output's Q8_0 has no fallback and
  // llama-quantize refuses the model
  assert.throws(() => typesFor(4100, 4100, 'Q4_K_M'), QuantMixError);
  assert.equal(typesFor(4160, 4160, 'Q2_K').get('blk.0.attn_q.weight')!.name, 'IQ4_NL');
});
