// Dequantization of every tensor of the conformance models against llama.cpp's dequantizers (reference/*.dequant.json);
// the IQ4 types (no conformance model holds them) by hand-made blocks and against llama.cpp's output on random blocks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { sharedPath } from '../shared.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { GGMLType, dequantizeRow, dequantizeTensor, fp32ToFp16, layout, typeInfo, typeName } from '../../src/tensor/index.js';
import { mulberry32 } from '../helpers/random.js';

interface TensorReference {
  name: string;
  type: string;
  ne: number[];
  sum: number;
  sum_sq: number;
  sum_abs: number;
  first_row: number[];
  last_row: number[];
}

const referenceDir = sharedPath('conformance', 'reference');
const referenceFiles = readdirSync(referenceDir).filter((f) => f.endsWith('.dequant.json')).sort();

test('there are dequantization references to check', () => {
  assert.ok(referenceFiles.length >= 17, `found ${referenceFiles.length}`);
});

function assertClose(actual: number, expected: number, what: string): void {
  const tolerance = 1e-6 * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected}`);
}

function assertRowEqual(actual: Float32Array, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], Math.fround(expected[i]))) assert.fail(`${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

for (const file of referenceFiles) {
  test(`dequantize ${file}`, () => {
    const reference = JSON.parse(readFileSync(`${referenceDir}/${file}`, 'utf8')) as { file: string; tensors: TensorReference[] };
    const model = loadGGUF(sharedPath('conformance', 'models', reference.file));
    assert.equal(reference.tensors.length, model.tensorInfos.length);
    for (const expected of reference.tensors) {
      const t = model.tensor(expected.name);
      assert.equal(typeName(t.type), expected.type, `${expected.name} type`);
      assert.deepEqual(t.dims, expected.ne, `${expected.name} dims`);
      const values = dequantizeTensor(t);
      let sum = 0, sumSq = 0, sumAbs = 0;
      for (const v of values) {
        sum += v;
        sumSq += v * v;
        sumAbs += Math.abs(v);
      }
      assertClose(sum, expected.sum, `${expected.name} sum`);
      assertClose(sumSq, expected.sum_sq, `${expected.name} sum_sq`);
      assertClose(sumAbs, expected.sum_abs, `${expected.name} sum_abs`);
      const rowLength = t.dims[0];
      assertRowEqual(values.subarray(0, rowLength), expected.first_row, `${expected.name} first_row`);
      assertRowEqual(values.subarray(values.length - rowLength), expected.last_row, `${expected.name} last_row`);

      // a single row decoded from its own bytes agrees with the whole-tensor decoding
      const rowBytes = t.data.length / (values.length / rowLength);
      const last = new Float32Array(rowLength + 3);
      dequantizeRow(t.type, t.data.subarray(t.data.length - rowBytes), rowLength, last, 3);
      assert.deepEqual(last.subarray(3), values.subarray(values.length - rowLength), `${expected.name} dequantizeRow`);
    }
  });
}

const K = layout.KVALUES_IQ4NL;

test('IQ4_NL block: d·level, value j in the low nibble of byte j, value j+16 in its high nibble', () => {
  const block = new Uint8Array(18);
  block.set([0x00, 0x38]); // d = 0.5
  for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4);
  const out = new Float32Array(32);
  dequantizeRow(GGMLType.IQ4_NL, block, 32, out);
  assert.deepEqual([...out], [...Array.from({ length: 16 }, (_, j) => 0.5 * K[j]), ...Array.from({ length: 16 }, (_, j) => 0.5 * K[15 - j])]);
});

test('IQ4_XS super-block: d·(s_j − 32)·level, 6-bit scales split over scales_l nibbles and scales_h bit pairs', () => {
  const block = new Uint8Array(136);
  const d = 0.25, scales = [0, 1, 31, 32, 33, 63, 40, 7]; // stored s_j, multiplier s_j − 32
  block[0] = fp32ToFp16(d) & 0xff;
  block[1] = fp32ToFp16(d) >> 8;
  let high = 0;
  scales.forEach((sc, j) => {
    block[4 + (j >> 1)] |= (sc & 15) << (4 * (j & 1));
    high |= (sc >> 4) << (2 * j);
  });
  block[2] = high & 0xff;
  block[3] = high >> 8;
  for (let i = 0; i < 128; i++) block[8 + i] = (i % 16) | ((i * 7 % 16) << 4);
  const out = new Float32Array(256);
  dequantizeRow(GGMLType.IQ4_XS, block, 256, out);
  for (let j = 0; j < 8; j++) {
    for (let l = 0; l < 16; l++) {
      const byte = block[8 + 16 * j + l];
      assert.equal(out[32 * j + l], d * (scales[j] - 32) * K[byte & 15], `value ${32 * j + l}`);
      assert.equal(out[32 * j + 16 + l], d * (scales[j] - 32) * K[byte >> 4], `value ${32 * j + 16 + l}`);
    }
  }
});

test('IQ4_NL and IQ4_XS on random blocks decode as llama.cpp\'s dequantize_row_iq4_nl / _xs', () => {
  // sha256 of the float32 output of llama.cpp c392e509's dequantize_row_iq4_nl / dequantize_row_iq4_xs
  // (../shared/peers/llama.cpp/bin/libggml-base.so, called from a one-off C program on these blocks)
  const expected: [GGMLType, number, string][] = [
    [GGMLType.IQ4_NL, 64, '79dff8621758a70bf45887d78e911c887af12d42ffe55c6dc74e5dba65801f77'],
    [GGMLType.IQ4_XS, 8, 'fc58dd520d8a11f6a7a547f321c9ce24fb2b512fbd20f2b6f2cda16085d40f69'],
  ];
  for (const [type, nBlocks, sha256] of expected) {
    const { typeSize, blockSize } = typeInfo(type);
    const random = mulberry32(type);
    const bytes = Uint8Array.from({ length: nBlocks * typeSize }, () => Math.floor(random() * 256));
    for (let at = 0; at < bytes.length; at += typeSize) bytes[at + 1] &= 0xbf; // d finite: fp16 exponent below 0x1f
    const out = new Float32Array(nBlocks * blockSize);
    dequantizeRow(type, bytes, out.length, out);
    assert.equal(createHash('sha256').update(new Uint8Array(out.buffer)).digest('hex'), sha256, typeName(type));
  }
});
