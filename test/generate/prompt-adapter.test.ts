// Prompt tuning end to end: `kiln finetune --prompt-tokens` writes an adapter that `kiln run BASE --prompt-adapter`
// and `new LLM({ model, promptAdapter })` apply, computing what training computed (logits within 1e-4 of the
// training forward, the same greedy tokens). Adapters given where a model is expected get an error that says what
// they are and how to use them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/generate/rng.js';
import { Model } from '../../src/generate/model.js';
import { SingleSequence } from '../../src/generate/generate.js';
import { PromptAdapterError } from '../../src/generate/prompt-adapter.js';
import { AdapterAsModelError } from '../../src/gguf/adapter-kind.js';
import { LLM, SamplingParams } from '../../src/engine/llm.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { writeGGUF } from '../../src/gguf/writer.js';
import { dequantizeTensor } from '../../src/tensor/index.js';
import { byteTokenizer, createModel, modelGGUF } from '../../src/train/llama-model.js';
import { loadTrainModel } from '../../src/train/load-gguf-params.js';
import { Param } from '../../src/train/autograd.js';
import { promptTuningLogits, type PromptTuning } from '../../src/train/prompt-tuning.js';
import { kiln } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-prompt-adapter-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const basePath = join(dir, 'base.gguf'), data = join(dir, 'train.jsonl');
const promptPath = join(dir, 'prompt.gguf'), loraPath = join(dir, 'lora.gguf');
const K = 3;

/** the base model, a prompt-tuning adapter of K tokens and a LoRA adapter for it, trained a few steps */
async function files(): Promise<void> {
  const model = createModel({ dim: 64, layers: 1, heads: 2, kvHeads: 2, ffn: 128, vocab: 256, ctx: 32 }, new Rng(1));
  await writeGGUF(basePath, modelGGUF(model, byteTokenizer(), 'base'));
  writeFileSync(data, ['a', 'b', 'c', 'd'].map((c) => JSON.stringify({ prompt: `k ${c}:`, response: `[${c}]` })).join('\n'));
  for (const method of [['--prompt-tokens', String(K), '-o', promptPath], ['--lora', '-o', loraPath]]) {
    const { status, stderr } = await kiln('finetune', basePath, '--data', data, '--steps', '5', '--batch', '4', '-t', '1', ...method);
    assert.equal(status, 0, stderr);
  }
}
const ready = files();

/** logits [n, vocab] of `tokens` after the adapter's virtual tokens, by the training forward pass */
function trainingLogits(tokens: number[]): Float32Array {
  const model = loadTrainModel(loadGGUF(basePath));
  const weight = loadGGUF(promptPath).tensor('prompt_tuning.weight');
  const tuning: PromptTuning = { prompt: new Param('prompt_tuning.weight', weight.dims, dequantizeTensor(weight)) };
  return promptTuningLogits(model, tuning, Int32Array.from(tokens), 1, tokens.length).value.slice();
}

const maxDifference = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('inference with --prompt-adapter computes what training computed; without it the logits differ', async () => {
  await ready;
  const model = Model.load(basePath, { promptAdapter: promptPath, backend: new ReferenceBackend() });
  assert.deepEqual(model.promptPrefix.length, K);
  const tokens = model.tokenizer.encode('k b:', { addSpecial: true, parseSpecial: false });
  const vocab = model.vocabSize;
  // [K + n, vocab]: the rows of the real tokens follow the K virtual ones
  const logits = new SingleSequence(model, K + tokens.length).feed([...model.promptPrefix, ...tokens], true).slice(K * vocab);
  const expected = trainingLogits(tokens);
  assert.ok(maxDifference(logits, expected) < 1e-4, `max |Δlogit| ${maxDifference(logits, expected)}`);
  const plain = Model.load(basePath, { backend: new ReferenceBackend() });
  assert.ok(maxDifference(new SingleSequence(plain, tokens.length).feed(tokens, true), expected) > 1e-3, 'the virtual tokens change nothing');
});

test('kiln run BASE --prompt-adapter and LLM({ promptAdapter }) generate the training forward pass\'s greedy tokens', async () => {
  await ready;
  const run = await kiln('run', basePath, '--prompt-adapter', promptPath, '-p', 'k c:', '-n', '4', '--temp', '0', '--json');
  assert.equal(run.status, 0, run.stderr);
  const { prompt_tokens: prompt, tokens } = JSON.parse(run.stdout) as { prompt_tokens: number[]; tokens: number[] };
  const greedy: number[] = [];
  for (let i = 0; i < 4; i++) {
    const sequence = [...prompt, ...greedy];
    const last = trainingLogits(sequence).slice((sequence.length - 1) * 256);
    greedy.push(last.indexOf(Math.max(...last)));
  }
  assert.deepEqual(tokens, greedy);
  const llm = new LLM({ model: basePath, promptAdapter: promptPath });
  const [out] = await llm.generate('k c:', new SamplingParams({ temperature: 0, max_tokens: 4 }));
  await llm.close();
  assert.deepEqual(out.outputs[0].token_ids, greedy);
  assert.deepEqual(out.prompt_token_ids, prompt); // the virtual tokens are not the prompt's
});

test('an adapter given as MODEL says what it is and how to apply it', async () => {
  await ready;
  const asModel = await kiln('run', promptPath, '-p', 'x');
  assert.equal(asModel.status, 1);
  assert.match(asModel.stderr, /^kiln run: .*prompt\.gguf is a prompt-tuning adapter, not a model: use --prompt-adapter .*prompt\.gguf with its base model \(a llama model\)/);
  for (const argv of [['run', loraPath], ['quantize', loraPath, join(dir, 'q.gguf'), 'Q8_0'], ['perplexity', loraPath, '-f', data], ['finetune', loraPath, '--data', data, '-o', join(dir, 'x.gguf')]]) {
    const { status, stderr } = await kiln(...argv);
    assert.equal(status, 1, argv.join(' '));
    assert.match(stderr, /lora\.gguf is a LoRA adapter, not a model: use --lora .*lora\.gguf with its base model/, argv.join(' '));
  }
  assert.throws(() => new LLM({ model: loraPath }), AdapterAsModelError);
  // the other way round: a LoRA adapter is no prompt adapter
  assert.throws(() => Model.load(basePath, { promptAdapter: loraPath }), PromptAdapterError);
});
