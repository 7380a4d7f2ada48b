// kiln's own models written as Hugging Face folders (--format hf) load back with identical logits: a model
// `kiln train` makes (byte-level BPE → tokenizer.json) and stories260K (SentencePiece → tokenizer.model).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { trainBPE } from '../../src/train/bpe-trainer.js';
import { writeHFTokenizerJson } from '../../src/tokenizer/hf-tokenizer-json.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { ggufWithTensors } from '../../src/train/load-gguf-params.js';
import { writeHFFolder } from '../../src/hf/export.js';
import { Model } from '../../src/generate/model.js';
import { evaluate, generate } from '../../src/generate/generate.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-hf-export-'));

function sameModel(a: Model, b: Model, text: string): void {
  const prompt = a.tokenizer.encode(text);
  assert.deepEqual(b.tokenizer.encode(text), prompt);
  const [x, y] = [evaluate(a, prompt), evaluate(b, prompt)];
  assert.equal(x.length, y.length);
  assert.ok(x.every((v, i) => v === y[i]), 'logits differ');
  const greedy = (m: Model) => generate(m, prompt, { maxTokens: 12, sampling: { temperature: 0 }, stopAtEog: false }).text;
  assert.equal(greedy(b), greedy(a));
}

test('kiln train --format hf: the folder gives the GGUF\'s logits, bit for bit, and its tokenizer', async () => {
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, Array.from({ length: 200 }, (_, i) => `the ${['cat', 'dog', 'owl'][i % 3]} sat on mat ${i % 7}.<|endoftext|>\n`).join(''));
  writeHFTokenizerJson(join(dir, 'tokenizer.json'), trainBPE(readFileSync(corpus, 'utf8'), { vocabSize: 280, specials: ['<|endoftext|>'] }));
  const config = (output: string) => parseTrainConfig({
    model: { dim: 16, layers: 2, heads: 2, kvHeads: 1, ffn: 32, ctx: 24 }, tokenizer: 'tokenizer.json', corpus, steps: 3,
    batchSize: 4, seqLen: 16, lr: 1e-2, warmup: 1, evalInterval: 3, evalTokens: 32, seed: 7, output,
  }, dir);
  await train(config('model.gguf'));
  await train(config('model-hf'), { format: 'hf' });
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(join(dir, 'model-hf', file)), file);
  const gguf = Model.load(join(dir, 'model.gguf')), hf = Model.load(join(dir, 'model-hf'));
  sameModel(gguf, hf, 'the owl sat on mat 3.<|endoftext|>the cat');
  assert.deepEqual([hf.tokenizer.bosId, hf.tokenizer.eosId, hf.tokenizer.addBos], [gguf.tokenizer.bosId, gguf.tokenizer.eosId, gguf.tokenizer.addBos]);
});

test('stories260K written as a folder (tokenizer.model) loads back with identical logits; kiln run accepts it', async () => {
  const source = sharedPath('data', 'models', 'stories260K.gguf');
  const out = join(dir, 'stories-hf');
  writeHFFolder(out, ggufWithTensors(loadGGUF(source), new Map()));
  sameModel(Model.load(source), Model.load(out), 'Once upon a time, Lily');
  const args = ['-p', 'Once upon a time', '-n', '8', '--temp', '0', '--json'];
  assert.deepEqual(JSON.parse((await kiln('run', out, ...args)).stdout), JSON.parse((await kiln('run', source, ...args)).stdout));
});

test('--format hf is refused for adapters', async () => {
  const { status, stderr } = await kiln('finetune', sharedPath('data', 'models', 'stories260K.gguf'), '--data', 'x.jsonl', '--lora', '--format', 'hf', '-o', join(dir, 'x'));
  assert.equal(status, 2);
  assert.match(stderr, /--format hf writes a whole model/);
});
