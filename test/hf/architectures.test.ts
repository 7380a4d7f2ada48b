// The zoo architectures' Hugging Face names (stated from their public configs and llama.cpp's converter): each zoo
// model written as a Hugging Face folder — Conv1D weights transposed (gpt2), norms minus one (gemma2), fused
// projections (phi3), NEOX q/k as stored (qwen2), experts one tensor each (Mixtral, deepseek2), WordPiece (bert) —
// loads back as the same model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { ggufWithTensors } from '../../src/train/load-gguf-params.js';
import { writeHFFolder } from '../../src/hf/export.js';
import { HFError, readSafetensorsHeader, safetensorsBytes } from '../../src/hf/safetensors.js';
import { Model } from '../../src/generate/model.js';
import { evaluate } from '../../src/generate/generate.js';
import { embedTokens } from '../../src/generate/embed.js';
import { sharedPath } from '../shared.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-hf-zoo-'));

/** [zoo file, model class, an HF tensor name it must have, largest logit difference allowed] */
const ZOO: [string, string, string, number][] = [
  ['qwen2-f16.gguf', 'Qwen2ForCausalLM', 'model.layers.0.self_attn.q_proj.bias', 0],
  ['gpt2-f16.gguf', 'GPT2LMHeadModel', 'transformer.h.0.attn.c_attn.weight', 0],
  ['phi3-f32.gguf', 'Phi3ForCausalLM', 'model.layers.0.self_attn.qkv_proj.weight', 0],
  // (w − 1) + 1 rounds in f32: the norms may move by an ulp
  ['gemma2-f32.gguf', 'Gemma2ForCausalLM', 'model.layers.0.pre_feedforward_layernorm.weight', 1e-4],
  ['deepseek2-f32.gguf', 'DeepseekV2ForCausalLM', 'model.layers.1.mlp.experts.3.down_proj.weight', 0],
];

for (const [file, modelClass, hfName, tolerance] of ZOO) {
  test(`${file} as a ${modelClass} folder loads back as the same model`, () => {
    const source = sharedPath('conformance', 'models', file);
    const dir = join(tmp, file.replace('.gguf', ''));
    writeHFFolder(dir, ggufWithTensors(loadGGUF(source), new Map()));
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).architectures, [modelClass]);
    assert.ok(readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.some((t) => t.name === hfName), hfName);
    const [gguf, hf] = [Model.load(source), Model.load(dir)];
    assert.deepEqual(hf.hparams, gguf.hparams);
    const text = 'The quick brown fox jumps over the lazy dog. 12345 $$ costs';
    const prompt = gguf.tokenizer.encode(text);
    // gemma's converter turns the SentencePiece space prefix off (this fixture GGUF did not)
    if (modelClass !== 'Gemma2ForCausalLM') assert.deepEqual(hf.tokenizer.encode(text), prompt);
    const [a, b] = [evaluate(gguf, prompt), evaluate(hf, prompt)];
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
    assert.ok(diff <= tolerance, `max logit difference ${diff}`);
  });
}

test('a Mixtral-style llama (moe-f32.gguf): experts written one tensor each and stacked again on load', () => {
  const source = sharedPath('conformance', 'models', 'moe-f32.gguf');
  const dir = join(tmp, 'moe');
  writeHFFolder(dir, ggufWithTensors(loadGGUF(source), new Map()));
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const gguf = Model.load(source);
  assert.deepEqual([config.architectures, config.num_local_experts], [['MixtralForCausalLM'], gguf.hparams.expertCount]);
  const names = readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.map((t) => t.name);
  assert.ok(names.includes(`model.layers.0.block_sparse_moe.experts.${gguf.hparams.expertCount - 1}.w2.weight`));
  const hf = Model.load(dir);
  const prompt = gguf.tokenizer.encode('The quick brown fox');
  assert.deepEqual(evaluate(hf, prompt), evaluate(gguf, prompt));
});

test('a missing expert names the file and the next expert\'s tensor', () => {
  const dir = join(tmp, 'moe-gap');
  writeHFFolder(dir, ggufWithTensors(loadGGUF(sharedPath('conformance', 'models', 'moe-f32.gguf')), new Map()));
  const path = join(dir, 'model.safetensors');
  const header = readSafetensorsHeader(path), bytes = readFileSync(path);
  const kept = header.tensors.filter((t) => t.name !== 'model.layers.0.block_sparse_moe.experts.1.w1.weight');
  writeFileSync(path, safetensorsBytes(kept.map((t) => ({ name: t.name, type: t.type, shape: t.shape, data: bytes.subarray(t.begin, t.end) }))));
  assert.throws(() => Model.load(dir), (e: unknown) =>
    e instanceof HFError && e.code === 'MISSING_TENSOR' && e.file === path && e.field === 'model.layers.0.block_sparse_moe.experts.2.w1.weight');
});

test('bert-f16.gguf as a BertModel folder (WordPiece tokenizer.json, sentence-transformers pooling) embeds the same', () => {
  const source = sharedPath('conformance', 'models', 'bert-f16.gguf');
  const dir = join(tmp, 'bert');
  writeHFFolder(dir, ggufWithTensors(loadGGUF(source), new Map()));
  const vocab = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).model.vocab;
  assert.deepEqual([vocab['[CLS]'], vocab.the, vocab['##s']], [101, 1996, 2015]); // BERT's uncased vocabulary
  const [gguf, hf] = [Model.load(source), Model.load(dir)];
  assert.deepEqual(hf.hparams, gguf.hparams);
  const text = 'The quick brown fox jumps over the lazy dog, unaffable!';
  const tokens = gguf.tokenizer.encode(text);
  assert.deepEqual(hf.tokenizer.encode(text), tokens);
  assert.deepEqual(embedTokens(hf, tokens), embedTokens(gguf, tokens));
});
