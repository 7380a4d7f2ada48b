// The per-tensor type choice (llama.cpp's llama_tensor_get_type) on shapes the kq fixtures do not cover:
// 32 layers (use_more_bits, n_layer/8 and n_layer/16 cut-offs), GQA 4, tied embeddings, odd row lengths,
// --pure and the output / token-embedding overrides.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GGMLType, typeName } from '../../src/tensor/ggml-type.js';
import {
  chooseTensorTypes, fileTypeFromName, LlamaFileType, QuantMixError, quantizationOrder, type MixOptions, type ModelShape, type TensorShape,
} from '../../src/quant/mix.js';

const DIM = 4096;

function llamaTensors(nLayer: number, opts: { tied?: boolean; ffn?: number } = {}): TensorShape[] {
  const ffn = opts.ffn ?? 11008;
  const t = (name: string, dims: number[]): TensorShape => ({ name, dims, type: GGMLType.F16 });
  const list = [t('token_embd.weight', [DIM, 32000]), t('output_norm.weight', [DIM])];
  if (!opts.tied) list.push(t('output.weight', [DIM, 32000]));
  for (let i = 0; i < nLayer; i++) {
    const p = `blk.${i}.`;
    list.push(
      t(`${p}attn_norm.weight`, [DIM]), t(`${p}attn_q.weight`, [DIM, DIM]), t(`${p}attn_k.weight`, [DIM, 1024]),
      t(`${p}attn_v.weight`, [DIM, 1024]), t(`${p}attn_output.weight`, [DIM, DIM]), t(`${p}ffn_norm.weight`, [DIM]),
      t(`${p}ffn_gate.weight`, [DIM, ffn]), t(`${p}ffn_up.weight`, [DIM, ffn]), t(`${p}ffn_down.weight`, [ffn, DIM]),
    );
  }
  return quantizationOrder(list);
}

const SHAPE_32: ModelShape = { arch: 'llama', nLayer: 32, nHead: 32, nHeadKv: 8, nExpert: 0 };

function typesByName(tensors: TensorShape[], shape: ModelShape, options: MixOptions): Map<string, string> {
  const types = chooseTensorTypes(tensors, shape, options);
  return new Map(tensors.map((t, i) => [t.name, typeName(types[i])]));
}

/** Layers whose `tensor` got `type`. */
function layersWith(types: Map<string, string>, tensor: string, type: string): number[] {
  return [...types].filter(([n, ty]) => n.endsWith(`.${tensor}.weight`) && ty === type).map(([n]) => Number(n.split('.')[1])).sort((a, b) => a - b);
}

// use_more_bits(i, 32): i < 4, i ≥ 28, or (i − 4) % 3 == 2
const MORE_BITS_32 = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];

test('order: non-layer tensors by name, then layers by number (10 after 9), names within a layer', () => {
  const names = quantizationOrder(llamaTensors(11)).map((t) => t.name);
  assert.deepEqual(names.slice(0, 4), ['output.weight', 'output_norm.weight', 'token_embd.weight', 'blk.0.attn_k.weight']);
  assert.ok(names.indexOf('blk.9.ffn_up.weight') < names.indexOf('blk.10.attn_k.weight'));
});

test('Q4_K_M on 32 layers: attn_v and ffn_down Q6_K where use_more_bits, output Q6_K, norms stay', () => {
  const types = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q4_K_M });
  assert.deepEqual(layersWith(types, 'attn_v', 'Q6_K'), MORE_BITS_32);
  assert.deepEqual(layersWith(types, 'ffn_down', 'Q6_K'), MORE_BITS_32);
  assert.equal(layersWith(types, 'attn_q', 'Q4_K').length, 32);
  assert.equal(types.get('output.weight'), 'Q6_K');
  assert.equal(types.get('token_embd.weight'), 'Q4_K');
  assert.equal(types.get('blk.5.attn_norm.weight'), 'F16');
});

test('Q3_K_M / Q3_K_L / Q4_K_S / Q2_K layer rules', () => {
  const m = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q3_K_M });
  assert.deepEqual(layersWith(m, 'attn_v', 'Q5_K'), [0, 1]); // the first two attn_v
  assert.deepEqual(layersWith(m, 'ffn_down', 'Q5_K'), [0, 1]); // i < n_layer/16
  assert.equal(layersWith(m, 'ffn_down', 'Q4_K').length, 30);
  assert.equal(layersWith(m, 'attn_output', 'Q4_K').length, 32);

  const l = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q3_K_L });
  assert.equal(layersWith(l, 'attn_v', 'Q5_K').length, 32);
  assert.equal(layersWith(l, 'ffn_down', 'Q5_K').length, 32);

  const s = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q4_K_S });
  assert.deepEqual(layersWith(s, 'attn_v', 'Q5_K'), [0, 1, 2, 3]);
  assert.deepEqual(layersWith(s, 'ffn_down', 'Q5_K'), [0, 1, 2, 3]); // i < n_layer/8

  const q2 = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q2_K });
  assert.equal(layersWith(q2, 'attn_v', 'Q4_K').length, 32); // GQA 4
  const q2NoGqa = typesByName(llamaTensors(32), { ...SHAPE_32, nHeadKv: 32 }, { ftype: LlamaFileType.MOSTLY_Q2_K });
  assert.equal(layersWith(q2NoGqa, 'attn_v', 'Q3_K').length, 32);
  assert.equal(layersWith(q2, 'ffn_down', 'Q3_K').length, 32);
  assert.equal(q2.get('blk.0.ffn_up.weight'), 'Q2_K');
});

test('with an imatrix, Q4_0 / Q5_0 give the first n_layer/8 ffn_down Q4_1 / Q5_1', () => {
  const q4 = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q4_0, hasImatrix: true });
  assert.deepEqual(layersWith(q4, 'ffn_down', 'Q4_1'), [0, 1, 2, 3]);
  const plain = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q4_0 });
  assert.equal(layersWith(plain, 'ffn_down', 'Q4_0').length, 32);
  const q5 = typesByName(llamaTensors(32), SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q5_0, hasImatrix: true });
  assert.deepEqual(layersWith(q5, 'ffn_down', 'Q5_1'), [0, 1, 2, 3]);
});

test('IQ4_NL / IQ4_XS: attn_v Q5_K from GQA 4, the first n_layer/8 ffn_down Q5_K without an imatrix, output Q6_K', () => {
  for (const [ftype, name] of [[LlamaFileType.MOSTLY_IQ4_NL, 'IQ4_NL'], [LlamaFileType.MOSTLY_IQ4_XS, 'IQ4_XS']] as const) {
    const types = typesByName(llamaTensors(32), SHAPE_32, { ftype });
    assert.equal(layersWith(types, 'attn_v', 'Q5_K').length, 32, name);
    assert.deepEqual(layersWith(types, 'ffn_down', 'Q5_K'), [0, 1, 2, 3], name);
    assert.equal(layersWith(types, 'ffn_down', name).length, 28, name);
    assert.equal(layersWith(types, 'attn_q', name).length, 32, name);
    assert.equal(types.get('output.weight'), 'Q6_K');
    assert.equal(types.get('token_embd.weight'), name);
    const noGqa = typesByName(llamaTensors(32), { ...SHAPE_32, nHeadKv: 32 }, { ftype });
    assert.equal(layersWith(noGqa, 'attn_v', name).length, 32, `${name} without GQA`);
    const weighted = typesByName(llamaTensors(32), SHAPE_32, { ftype, hasImatrix: true });
    assert.equal(layersWith(weighted, 'ffn_down', name).length, 32, `${name} with an imatrix`);
    // 8 experts: attn_output Q5_K (and attn_v, attn_k Q8_0)
    const moe = typesByName(llamaTensors(32), { ...SHAPE_32, nExpert: 8 }, { ftype });
    assert.equal(layersWith(moe, 'attn_output', 'Q5_K').length, 32, `${name} with 8 experts`);
  }
});

test('tied embeddings: token_embd is treated as the output (Q6_K)', () => {
  const types = typesByName(llamaTensors(2, { tied: true }), { ...SHAPE_32, nLayer: 2 }, { ftype: LlamaFileType.MOSTLY_Q4_K_M });
  assert.equal(types.get('token_embd.weight'), 'Q6_K');
});

test('rows that do not split into 256-blocks fall back (Q2_K/Q3_K/IQ4_XS→IQ4_NL, Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0, else F16)', () => {
  const shape = { ...SHAPE_32, nLayer: 2 };
  const odd = llamaTensors(2, { ffn: 288 }); // ffn_down rows of 288 = 9·32
  const q4 = typesByName(odd, shape, { ftype: LlamaFileType.MOSTLY_Q4_K_S });
  assert.equal(q4.get('blk.0.ffn_down.weight'), 'Q5_0');
  assert.equal(q4.get('blk.0.ffn_up.weight'), 'Q4_K');
  assert.equal(typesByName(odd, shape, { ftype: LlamaFileType.MOSTLY_Q5_K_S }).get('blk.1.ffn_down.weight'), 'Q5_1');
  assert.equal(typesByName(odd, shape, { ftype: LlamaFileType.MOSTLY_Q6_K }).get('blk.1.ffn_down.weight'), 'Q8_0');
  const odder = llamaTensors(2, { ffn: 100 });
  assert.equal(typesByName(odder, shape, { ftype: LlamaFileType.MOSTLY_Q4_K_S }).get('blk.0.ffn_down.weight'), 'F16');
  assert.equal(typesByName(odd, shape, { ftype: LlamaFileType.MOSTLY_Q3_K_S }).get('blk.0.ffn_down.weight'), 'IQ4_NL');
  assert.equal(typesByName(odd, shape, { ftype: LlamaFileType.MOSTLY_IQ4_XS }).get('blk.1.ffn_down.weight'), 'IQ4_NL');
  assert.equal(typesByName(odder, shape, { ftype: LlamaFileType.MOSTLY_Q2_K }).get('blk.1.ffn_down.weight'), 'F16');
  // IQ4_NL has no fallback: llama-quantize refuses rows of 100 values ("Unsupported tensor size")
  assert.throws(() => chooseTensorTypes(odder, shape, { ftype: LlamaFileType.MOSTLY_IQ4_NL }), QuantMixError);
  // Q8_0 has no fallback: llama-quantize refuses rows of 100 values
  assert.throws(() => chooseTensorTypes(odder, shape, { ftype: LlamaFileType.MOSTLY_Q8_0 }), QuantMixError);
});

test('--pure, --output-type and --token-embedding-type', () => {
  const tensors = llamaTensors(32);
  const pure = typesByName(tensors, SHAPE_32, { ftype: LlamaFileType.MOSTLY_Q4_K_M, pure: true });
  assert.deepEqual(new Set([...pure].filter(([n]) => !n.includes('norm')).map(([, t]) => t)), new Set(['Q4_K']));
  const overridden = typesByName(tensors, SHAPE_32, {
    ftype: LlamaFileType.MOSTLY_Q4_K_M, pure: true, outputType: GGMLType.Q8_0, tokenEmbeddingType: GGMLType.F16,
  });
  assert.equal(overridden.get('output.weight'), 'Q8_0');
  assert.equal(overridden.get('token_embd.weight'), 'F16');
  assert.equal(overridden.get('blk.3.attn_v.weight'), 'Q4_K');
});

test('float file types convert every matrix and keep norms', () => {
  const types = typesByName(llamaTensors(2), { ...SHAPE_32, nLayer: 2 }, { ftype: LlamaFileType.MOSTLY_BF16 });
  assert.equal(types.get('output.weight'), 'BF16');
  assert.equal(types.get('blk.1.ffn_down.weight'), 'BF16');
  assert.equal(types.get('blk.1.ffn_norm.weight'), 'F16');
});

test('file type names as llama-quantize spells them', () => {
  assert.equal(fileTypeFromName('q4_k_m'), LlamaFileType.MOSTLY_Q4_K_M);
  assert.equal(fileTypeFromName('Q4_K'), LlamaFileType.MOSTLY_Q4_K_M);
  assert.equal(fileTypeFromName('BF16'), 32);
  assert.equal(fileTypeFromName('iq4_nl'), 25);
  assert.equal(fileTypeFromName('IQ4_XS'), 30);
  assert.throws(() => fileTypeFromName('IQ2_XXS'), QuantMixError);
});
