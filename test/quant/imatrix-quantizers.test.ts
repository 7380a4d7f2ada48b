// The importance-weighted quantizers (ggml's quantize_row_*_impl, used when llama-quantize gets an imatrix)
// have no llama.cpp reference file in the conformance data, so their outputs on a fixed seeded input are
// pinned by SHA-256. The hashes come from ggml-quants.c's _impl functions compiled with gcc -O2 (x86-64,
// no FMA, as ggml-base is built); kiln reproduced them byte for byte on this input, on kq-f32's ffn_down
// and on sparse rows before they were recorded here. The IQ4_NL / IQ4_XS hashes (which have no separate reference
// quantizer: ggml runs the weighted search with weights x² when there is no imatrix) are those of llama.cpp c392e509's
// own ggml_quantize_chunk (../shared/peers/llama.cpp/bin/libggml-base.so, called from a one-off C program on these
// inputs), with and without the imatrix, and on rows with zero blocks, constant blocks and importances that are zero
// over whole blocks (ggml's 0/0 scale: x86's default NaN, stored as fp16 0xfe00).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { GGMLType, typeName } from '../../src/tensor/ggml-type.js';
import { quantizeRows } from '../../src/quant/ggml-quantize.js';
import { mulberry32 as rng } from '../helpers/random.js';

const N_PER_ROW = 512;
const N_ROWS = 16;

/** Weights: Gaussian, 2% of them 10× larger; importances: log-normal. */
function fixture(seed = 2025, nRows = N_ROWS): { x: Float32Array; importance: Float32Array } {
  const next = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
  const x = new Float32Array(N_PER_ROW * nRows).map(() => (next() < 0.02 ? 10 : 1) * gauss());
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
  [GGMLType.IQ4_NL, '1c865d0dfd4cd53fa0ac9c16d909d786a35ff2d2cf8214f1969305600ce05d81'],
  [GGMLType.IQ4_XS, '97557b318b567561790186b315b3ef1d75a8f9758d777481db5a6b1691bd92a9'],
];

const { x, importance } = fixture();

for (const [type, expected] of EXPECTED_SHA256) {
  const name = typeName(type);
  const quantizer = name.startsWith('IQ') ? `quantize_${name.toLowerCase()}` : `quantize_row_${name.replace('Q', 'q')}_impl`;
  test(`${name} with an imatrix: bytes as ggml's ${quantizer}`, () => {
    const bytes = quantizeRows(type, x, N_PER_ROW, N_ROWS, importance);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), expected);
  });
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

test('IQ4_NL and IQ4_XS without an imatrix: bytes as ggml\'s quantize_iq4_nl / quantize_iq4_xs', () => {
  assert.equal(sha256(quantizeRows(GGMLType.IQ4_NL, x, N_PER_ROW, N_ROWS)), '4c15822caa6c7edac3fa85fcdb337395d14b9802997b592094c8e76967c7ebbb');
  assert.equal(sha256(quantizeRows(GGMLType.IQ4_XS, x, N_PER_ROW, N_ROWS)), 'ec1bd39a9525fccba1a3eda03bb6de1b531fcd32f0c03a8f55905ac7085c2ce4');
});

test('IQ4_NL and IQ4_XS on zero, tiny and constant blocks and on importances that are zero over whole blocks', () => {
  const edge = fixture(7, 8);
  edge.x.fill(0, 0, 64); // zero blocks
  edge.x.fill(1e-20, 64, 96); // largest |x| below GROUP_MAX_EPS
  edge.x.fill(0.5, 96, 128);
  edge.x.fill(-3, 128, 160);
  edge.x.fill(0, 512, 768); // a zero super-block
  edge.importance.fill(0, 32, 64); // every weight of a block zero: 0/0
  edge.importance.fill(0, 256, 512);
  const expected: [GGMLType, Float32Array | undefined, string][] = [
    [GGMLType.IQ4_NL, undefined, 'a91d3dfa2fedfc94931f763f7793850e0184f14700f69ec46af5f3de475bfa60'],
    [GGMLType.IQ4_XS, undefined, '6a774d025203f7f0391e158df435f62030385180238bbf3e9c7bf4bf6260c765'],
    [GGMLType.IQ4_NL, edge.importance, '079815362a5f24c47c0794cdae595ee122551e5b493938db401e1515365c6a5b'],
    [GGMLType.IQ4_XS, edge.importance, '858d67ad4f7c1b960cecdfd4889a8acf518a1d8d8436aa6f38685f31e882fe1b'],
  ];
  for (const [type, importance, hash] of expected) {
    const bytes = quantizeRows(type, edge.x, N_PER_ROW, 8, importance);
    assert.equal(sha256(bytes), hash, `${typeName(type)}${importance ? ' with the imatrix' : ''}`);
  }
  // row 2's second IQ4_NL block saw only zero importances: scale NaN (0xfe00), every index 15
  const nanBlock = quantizeRows(GGMLType.IQ4_NL, edge.x, N_PER_ROW, 8, edge.importance).subarray(33 * 18, 34 * 18);
  assert.deepEqual([...nanBlock], [0x00, 0xfe, ...new Array(16).fill(0xff)]);
});
