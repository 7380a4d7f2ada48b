// Dequantization of every tensor of the conformance models against llama.cpp's dequantizers (reference/*.dequant.json).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { dequantizeRow, dequantizeTensor, typeName } from '../../src/tensor/index.js';

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
