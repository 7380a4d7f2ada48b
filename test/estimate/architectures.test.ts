// The estimator on every architecture kiln runs: tensors, KV cache and compute read from the architecture files,
// checked against the zoo fixtures (and what kiln's Model allocates for them) and against public configs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { metaString } from '../../src/gguf/writer.js';
import type { GGUFHeader } from '../../src/gguf/types.js';
import { blockWidths, estimateMemory, EstimateError, kvCacheBytes, type Estimate } from '../../src/estimate/estimate.js';
import { modelFromConfig, modelFromGGUF, modelFromShape, shapeFromFlags, ModelSpecError, type ModelDescription } from '../../src/estimate/model.js';
import { Model } from '../../src/generate/model.js';
import { sharedPath } from '../shared.js';

const ZOO = ['gpt2-f16', 'bert-f16', 'gemma2-f32', 'phi3-f32', 'deepseek2-f32'];
const fixture = (name: string) => sharedPath('conformance', 'models', `${name}.gguf`);
const term = (e: Estimate, id: string) => e.terms.find((t) => t.id === id)!;
/** f16 KV cache bytes one token takes */
const kvPerToken = (model: ModelDescription) => kvCacheBytes(model, 1, 1, 'f16');

for (const name of ZOO) {
  test(`${name}: weights are the file's tensor bytes, the KV cache per token is what kiln's Model allocates`, () => {
    const header = readGGUFHeader(fixture(name));
    const model = modelFromGGUF(header, name);
    assert.equal(model.note, undefined);
    const e = estimateMemory({ model, ctx: 64, batch: 2 });
    assert.equal(term(e, 'weights').bytes, header.tensors.reduce((n, t) => n + t.nBytes, 0));
    const kiln = Model.load(fixture(name));
    assert.equal(kvPerToken(model), 2 * kiln.cacheValuesPerPosition);
    assert.equal(term(e, 'kv_cache').bytes, 64 * 2 * 2 * kiln.cacheValuesPerPosition);
  });
}

test('deepseek2 fixture: the KV cache is the latent row (kv_lora_rank 16 + 8 roped dims), not full keys and values', () => {
  const model = modelFromGGUF(readGGUFHeader(fixture('deepseek2-f32')));
  assert.deepEqual(model.cacheRow, { keys: 16 + 8, values: 0 });
  assert.equal(kvPerToken(model), 2 * 24 * 2);
  // full K/V would be 2 layers × 4 heads × (24 + 16) values
  assert.notEqual(kvPerToken(model), 2 * 4 * (24 + 16) * 2);
  assert.match(term(estimateMemory({ model, ctx: 8 }), 'kv_cache').formula, /^2 layers × 24 values \(one row for keys and values/);
});

test('bert fixture: an encoder — its cache holds only the batch it encodes, its output rows are hidden states', () => {
  const model = modelFromGGUF(readGGUFHeader(fixture('bert-f16')));
  const e = estimateMemory({ model, ctx: 16 });
  assert.match(term(e, 'kv_cache').note!, /encoder keeps no cache between requests/);
  assert.match(term(e, 'activations').formula, /1·64 hidden states/);
});

test('compute buffers follow the architecture: LayerNorm, fused q/k/v and GELU (gpt2), fused gate/up (phi3), GeGLU and post-norms (gemma2)', () => {
  const widths = (name: string) => blockWidths(modelFromGGUF(readGGUFHeader(fixture(name))))[0];
  // gpt2, dim 24, ffn 96: 2 LayerNorms (2·dim), qkv 3·dim and its three column copies, attention dim, output dim,
  // up ffn, gelu ffn, down dim = 11·dim + 2·ffn (a llama block of that size would give 4·dim + 4·dim + 3·ffn)
  assert.deepEqual(widths('gpt2-f16'), { kilnValues: 11 * 24 + 2 * 96, ffnInputs: 96, attention: 24, widestMatmul: 2 * 96 + 24 });
  // phi3, dim 64, q 64, k = v = 32, ffn 128: 2 norms, qkv 128 and its copies, attention 64, output 64,
  // fused gate/up 256 and its copies, swiglu 128, down 64
  assert.deepEqual(widths('phi3-f32'), { kilnValues: 128 + 2 * 128 + 64 + 64 + 2 * 256 + 128 + 64, ffnInputs: 256, attention: 64, widestMatmul: 2 * 64 + 256 });
  // gemma2, dim 64, q 128, k = v = 64, ffn 128: 4 norms (pre and post), q, k, v, attention 128, output 64, gate, up, geglu, down
  assert.deepEqual(widths('gemma2-f32'), { kilnValues: 4 * 64 + 128 + 64 + 64 + 128 + 64 + 3 * 128 + 64, ffnInputs: 256, attention: 128, widestMatmul: 2 * 128 + 64 });
});

// DeepSeek-V2-Lite's public config.json (the keys that shape it)
const DEEPSEEK_V2_LITE = {
  model_type: 'deepseek_v2', hidden_size: 2048, num_hidden_layers: 27, num_attention_heads: 16, num_key_value_heads: 16,
  q_lora_rank: null, kv_lora_rank: 512, qk_rope_head_dim: 64, qk_nope_head_dim: 128, v_head_dim: 128,
  n_routed_experts: 64, num_experts_per_tok: 6, n_shared_experts: 2, moe_intermediate_size: 1408, first_k_dense_replace: 1,
  intermediate_size: 10944, vocab_size: 102400, max_position_embeddings: 163840, tie_word_embeddings: false, torch_dtype: 'bfloat16',
};

test('DeepSeek-V2-Lite config: 15.7B parameters and MLA\'s KV cache, 27 × (512 + 64) × 2 B per token', () => {
  const model = modelFromConfig(DEEPSEEK_V2_LITE, 'DeepSeek-V2-Lite/config.json');
  assert.equal(model.shape.arch, 'deepseek2');
  assert.equal(model.paramCount, 15_706_484_224); // the published total, "15.7B"
  assert.equal(model.hparams.expertCount, 64);
  assert.deepEqual([model.shape.ffn, model.shape.nExpert, model.shape.nExpertUsed], [1408, 64, 6]);
  // block 0 dense, blocks 1-26 mixtures of experts with their shared experts (2 × 1408 wide)
  const names = new Set(model.tensors.map((t) => t.name));
  assert.ok(names.has('blk.0.ffn_gate.weight') && !names.has('blk.0.ffn_gate_exps.weight'));
  assert.equal(model.tensors.find((t) => t.name === 'blk.1.ffn_up_shexp.weight')!.nOut, 2 * 1408);
  assert.ok(names.has('blk.26.attn_q.weight') && !names.has('blk.26.attn_q_a.weight')); // q_lora_rank null: one q projection
  assert.equal(kvPerToken(model), 27 * (512 + 64) * 2);
  assert.ok(kvPerToken(model) < (27 * 16 * (192 + 128) * 2) / 8, 'far below full keys and values');
  const kv = term(estimateMemory({ model, ctx: 4096 }), 'kv_cache');
  assert.equal(kv.bytes, 27 * 576 * 4096 * 2);
});

test('Gemma-2-2B config: head_dim 256 (not hidden/heads), tied output, post-norms; Phi-3-mini config: fused projections', () => {
  const gemma = modelFromConfig({
    model_type: 'gemma2', hidden_size: 2304, num_hidden_layers: 26, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256,
    intermediate_size: 9216, vocab_size: 256000, max_position_embeddings: 8192, torch_dtype: 'float32',
  });
  assert.equal(gemma.paramCount, 2_614_341_888);
  assert.equal(kvPerToken(gemma), 26 * 2 * 4 * 256 * 2);
  const gemmaNames = new Set(gemma.tensors.map((t) => t.name));
  assert.ok(gemmaNames.has('blk.25.post_ffw_norm.weight') && !gemmaNames.has('output.weight'));
  assert.equal(gemma.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.nOut, 8 * 256);

  const phi = modelFromConfig({
    model_type: 'phi3', hidden_size: 3072, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32,
    intermediate_size: 8192, vocab_size: 32064, max_position_embeddings: 4096, tie_word_embeddings: false, torch_dtype: 'bfloat16',
  });
  assert.equal(phi.paramCount, 3_821_079_552);
  assert.equal(kvPerToken(phi), 32 * 2 * 3072 * 2);
  const dims = (name: string) => { const t = phi.tensors.find((x) => x.name === name)!; return [t.nIn, t.nOut]; };
  assert.deepEqual(dims('blk.0.attn_qkv.weight'), [3072, 3 * 3072]);
  assert.deepEqual(dims('blk.0.ffn_up.weight'), [3072, 2 * 8192]);
  assert.equal(phi.nativeType, 'BF16');
});

test('GPT-2 and BERT-base configs by their own keys: 124,439,808 and 108,891,648 parameters', () => {
  const gpt2 = modelFromConfig({ model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12, n_inner: null, vocab_size: 50257, n_positions: 1024 });
  assert.equal(gpt2.paramCount, 124_439_808); // GPT-2 small, tied output, n_inner 4·768
  assert.equal(kvPerToken(gpt2), 12 * 2 * 768 * 2);
  // bert-base-uncased has 109,482,240 with its pooler (768·768 + 768), which GGUF files leave out
  const bert = modelFromConfig({
    model_type: 'bert', hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, vocab_size: 30522,
    max_position_embeddings: 512, type_vocab_size: 2,
  });
  assert.equal(bert.paramCount + 768 * 768 + 768, 109_482_240);
  assert.equal(bert.hparams.causal, false);
});

test('configs missing what their architecture needs are refused with a typed error', () => {
  const { kv_lora_rank: _, ...noRank } = DEEPSEEK_V2_LITE;
  assert.throws(() => modelFromConfig(noRank), (e) => e instanceof ModelSpecError && /"kv_lora_rank" is missing/.test(e.message));
  assert.throws(() => modelFromConfig({ model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12 }), /"vocab_size" is missing/);
  assert.throws(() => modelFromConfig({ ...DEEPSEEK_V2_LITE, kv_lora_rank: 1.5 }), /"kv_lora_rank" is not a non-negative integer/);
  // a deepseek2 shape cannot be given by the llama flags alone
  assert.throws(() => modelFromShape(shapeFromFlags({ arch: 'deepseek2', dim: 512 })), (e) => e instanceof ModelSpecError && /kv_lora_rank/.test(e.message));
});

/** `header` as if written for architecture `arch`, its `{old}.*` keys renamed */
function renamed(header: GGUFHeader, arch: string, extra: [string, string][] = []): GGUFHeader {
  const old = header.metadata.get('general.architecture')!.value as string;
  const metadata = new Map([...header.metadata].map(([key, v]) => [key.replace(new RegExp(`^${old}\\.`), `${arch}.`), v]));
  metadata.set('general.architecture', metaString(arch));
  for (const [key, value] of extra) metadata.set(key, metaString(value));
  return { ...header, metadata };
}

test('an architecture kiln does not know: exact weights, a llama-style KV cache, and a note that says so', () => {
  const header = readGGUFHeader(fixture('kq-f32'));
  const model = modelFromGGUF(renamed(header, 'mpt'));
  assert.match(model.note!, /kiln does not know the mpt architecture/);
  assert.equal(term(estimateMemory({ model }), 'weights').bytes, header.tensors.reduce((n, t) => n + t.nBytes, 0));
  // kq: 2 layers × 2 kv heads × (64 + 64)
  assert.equal(kvPerToken(model), 2 * 2 * 128 * 2);
  // a config of a model_type kiln does not map: llama's keys and tensors, under its own name
  const qwen3 = modelFromConfig({ model_type: 'qwen3', hidden_size: 1024, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 3072, vocab_size: 1000 });
  assert.equal(qwen3.shape.arch, 'qwen3');
  assert.match(qwen3.note!, /kiln does not know the qwen3 architecture: estimated as a llama-shaped model/);
  assert.match(estimateMemory({ model: qwen3 }).model.note!, /qwen3/);
});

test('a file its architecture\'s reader refuses (deepseek2 with an unknown rope scaling type) is still estimated, with a note', () => {
  const header = readGGUFHeader(fixture('deepseek2-f32'));
  const model = modelFromGGUF(renamed(header, 'deepseek2', [['deepseek2.rope.scaling.type', 'longrope']]));
  assert.match(model.note!, /kiln's deepseek2 reader refuses this model .*longrope/);
  assert.equal(term(estimateMemory({ model }), 'weights').bytes, header.tensors.reduce((n, t) => n + t.nBytes, 0));
});

test('kiln\'s trainer estimate is for llama models only', () => {
  const gpt2 = modelFromGGUF(readGGUFHeader(fixture('gpt2-f16')));
  assert.throws(() => estimateMemory({ model: gpt2, mode: 'pretrain', runtime: 'kiln' }), (e) => e instanceof EstimateError && /not the gpt2 architecture/.test(e.message));
});
