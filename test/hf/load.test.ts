// Hugging Face folders run directly: the trained stories260K in HF layout (q/k rows in rotate-half order) gives
// llama.cpp's converted GGUF's logits and greedy text, in one file or in shards; `kiln run DIR` prints what
// `kiln run FILE.gguf` prints; the tokenizer read from tokenizer.model gives the GGUF's ids.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../../src/generate/model.js';
import { evaluate, generate } from '../../src/generate/generate.js';
import { readSafetensorsHeader, safetensorsBytes } from '../../src/hf/safetensors.js';
import { readModelMetadata } from '../../src/hf/checkpoint.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

const PROMPT = 'Once upon a time';

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** prompt logits (every position) and 24 greedy tokens */
function run(model: Model): { logits: Float32Array; greedy: number[]; text: string } {
  const prompt = model.tokenizer.encode(PROMPT);
  const out = generate(model, prompt, { maxTokens: 24, sampling: { temperature: 0 }, stopAtEog: false });
  return { logits: evaluate(model, prompt), greedy: out.tokens, text: out.text };
}

// each folder against the GGUF llama.cpp makes of it (stories260K.gguf is tensor for tensor the F32 conversion)
const PAIRS: [string, string[]][] = [
  ['stories260K-f32', ['data', 'models', 'stories260K.gguf']],
  ['stories260K-bf16', ['conformance', 'hf', 'stories260K-bf16.converted.gguf']],
];
for (const [folder, gguf] of PAIRS) {
  test(`the ${folder} folder gives ${gguf.at(-1)}'s logits (within 1e-6) and greedy text`, () => {
    const expected = run(Model.load(sharedPath(...gguf)));
    const hf = run(Model.load(sharedPath('conformance', 'hf', folder)));
    const diff = maxDiff(hf.logits, expected.logits);
    assert.ok(diff <= 1e-6, `max logit difference ${diff}`);
    assert.deepEqual(hf.greedy, expected.greedy);
    assert.match(hf.text, /^, there was a little girl named Lily/);
  });
}

test('a sharded checkpoint (model.safetensors.index.json) loads as the single file does', () => {
  const source = sharedPath('conformance', 'hf', 'stories260K-f32');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-hf-shards-'));
  for (const file of ['config.json', 'tokenizer.model', 'tokenizer_config.json']) symlinkSync(join(source, file), join(dir, file));
  const header = readSafetensorsHeader(join(source, 'model.safetensors'));
  const bytes = readFileSync(join(source, 'model.safetensors'));
  const tensors = header.tensors.map((t) => ({ name: t.name, type: t.type, shape: t.shape, data: bytes.subarray(t.begin, t.end) }));
  // the second shard first in the weight map's order: shards are read by name, whatever the map's order
  const shards = [tensors.filter((_, i) => i % 2 === 1), tensors.filter((_, i) => i % 2 === 0)];
  const weightMap: Record<string, string> = {};
  shards.forEach((part, s) => {
    const file = `model-0000${s + 1}-of-00002.safetensors`;
    writeFileSync(join(dir, file), safetensorsBytes(part));
    for (const t of part) weightMap[t.name] = file;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const single = run(Model.load(source));
  const sharded = run(Model.load(dir));
  assert.equal(maxDiff(sharded.logits, single.logits), 0);
  assert.deepEqual(sharded.greedy, single.greedy);
});

test('kiln run DIR prints what kiln run FILE.gguf prints', async () => {
  const args = ['-p', PROMPT, '-n', '20', '--temp', '0', '--json'];
  const gguf = await kiln('run', sharedPath('data', 'models', 'stories260K.gguf'), ...args);
  const hf = await kiln('run', sharedPath('conformance', 'hf', 'stories260K-f32'), ...args);
  assert.equal(hf.status, 0, hf.stderr);
  assert.deepEqual(JSON.parse(hf.stdout), JSON.parse(gguf.stdout));
});

/** test-tokenizer-0's inputs: separated by "\n__ggml_vocab_test__\n" */
function vocabTestTexts(): string[] {
  return readFileSync(sharedPath('conformance', 'tokenizers', 'ggml-vocab-llama-spm.gguf.inp'), 'utf8').split('\n__ggml_vocab_test__\n');
}

test('the tokenizer from tokenizer.model gives the GGUF tokenizer\'s ids on llama.cpp\'s SentencePiece test texts', () => {
  const gguf = Model.load(sharedPath('data', 'models', 'stories260K.gguf')).tokenizer;
  const hf = Model.load(sharedPath('conformance', 'hf', 'stories260K-f32')).tokenizer;
  const texts = vocabTestTexts();
  assert.ok(texts.length > 30);
  for (const text of [...texts, '<s>Hello</s> world']) {
    for (const options of [{ addSpecial: false, parseSpecial: false }, { addSpecial: true, parseSpecial: true }]) {
      const ids = hf.encode(text, options);
      assert.deepEqual(ids, gguf.encode(text, options), JSON.stringify(text));
      assert.equal(hf.decode(ids), gguf.decode(ids));
    }
  }
  assert.deepEqual([hf.bosId, hf.eosId, hf.addBos, hf.addEos], [gguf.bosId, gguf.eosId, gguf.addBos, gguf.addEos]);
});

test('config.json\'s special token ids get gguf-py\'s keys (unknown_token_id, seperator_token_id, padding_token_id)', () => {
  const source = sharedPath('conformance', 'hf', 'stories260K-f32');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-hf-special-'));
  for (const file of ['model.safetensors', 'tokenizer.model', 'tokenizer_config.json']) symlinkSync(join(source, file), join(dir, file));
  const config = JSON.parse(readFileSync(join(source, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, unk_token_id: 0, pad_token_id: 0, sep_token_id: 2 }));
  const meta = readModelMetadata(dir);
  assert.deepEqual(['unknown', 'seperator', 'padding'].map((k) => meta.get(`tokenizer.ggml.${k}_token_id`)?.value), [0, 2, 0]);
  assert.equal(Model.load(dir).tokenizer.padId, 0);
});
