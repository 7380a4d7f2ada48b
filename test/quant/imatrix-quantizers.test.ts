// The importance-weighted quantizers (ggml's quantize_row_*_impl, used when llama-quantize gets an imatrix)
// have no llama.cpp reference file in the conformance data, so their outputs on a fixed seeded input are
// pinned by SHA-256. The hashes come from ggml-quants.c's _impl functions compiled with gcc -O2 (x86-64,
// no FMA, as ggml-base is built); kiln reproduced them byte for byte on this input, on kq-f32's ffn_down
// and on sparse rows before they were recorded here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { GGMLType, typeName } from '../../src/tensor/ggml-type.js';
import { quantizeRows } from '../../src/quant/ggml-quantize.js';
import { mulberry32 as rng } from '../helpers/random.js';

const N_PER_ROW = 512;
const N_ROWS = 16;

/** Weights: Gaussian, 2% of them 10× larger; importances: log-normal. */
function fixture(): { x: Float32Array; importance: Float32Array } {
  const next = rng(2025);
  const gauss = () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
  const x = new Float32Array(N_PER_ROW * N_ROWS).map(() => (next() < 0.02 ? 10 : 1) * gauss());
  const importance = new Float32Array(N_PER_ROW).map(() => Math.exp(2 * gauss()));
  return { x, importance };
}

const EXPECTED_SHA256: [GGMLType, string][] = [
  [GGMLType.Q4_0, '79c0e16ac4cb1f92c652ce0897aa25470e5e0a1fbda2cffb2326b2aac3af61ec'],
  [GGMLType.Q4_1, '672b6bc4b49bb1d46b50a4275d17879e14233cea49dd0cc9d84954bf60a16d47'],
  [GGMLType.Q5_0, '049e12c1b8c63e4d514f8c7aba98b4b368280bd71221084553692340245d344b'],
  [GGMLType.Q5_1, '7723c314bb951099850e625d7731158d08a20c0a12edb437392401cffcff8fee'],
  [GGMLType.Q2_K, 'd14d1cc1e58c96602bfcaac175eb09d990c59cb380ba7fb79c4c393b9204073f'],
  [GGMLType.Q3_K, '21c33144fa77834fad443075e02b7bd195271c7b2e4686cfeba8163f6bfeef58'],
  [GGMLType.Q4_K, 'c5c30dc275b5f0f6aa3fe86d94a44b95d34d7c08c4b6e8a53531046f3ca15249'],
  [GGMLType.Q5_K, '4f395179cfc51fbf354e3022ce9d7ed2c3e1a3da1ac12e60dadfede0b95ca516'],
  [GGMLType.Q6_K, 'e6ba853cee3d62c7e49d867842e321eb035bb09c0900eae7a291d836466a183c'],
];

const { x, importance } = fixture();

for (const [type, expected] of EXPECTED_SHA256) {
  test(`${typeName(type)} with an imatrix: bytes as ggml's quantize_row_${typeName(type).replace("Q", "q")}_impl`, () => {
    const bytes = quantizeRows(type, x, N_PER_ROW, N_ROWS, importance);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), expected);
  });
}
