// LoRA at inference against llama.cpp: kq-f32.gguf with kq-lora.gguf at scales 1.0 and 0.5
// (references made with llama.cpp's --lora-scaled), same tolerance as the float models' 1e-2 criterion.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { Model } from '../../src/generate/model.js';
import { argmax, maxTopKError, readReference, replay } from '../models/reference.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { forwardLogits } from '../../src/train/llama-model.js';
import { loadTrainModel } from '../../src/train/load-gguf-params.js';
import { loraForwardLogits, loraFromGGUF } from '../../src/train/lora.js';

const TOL = 1e-2;
/** the training forward keeps K and V in f32 where llama.cpp rounds them to f16: measured worst 9e-3 */
const TRAIN_TOL = 2e-2;

for (const scale of ['1.0', '0.5']) {
  test(`kq-f32 + kq-lora at scale ${scale}: prompt and teacher-forced decode logits, greedy tokens`, () => {
    const ref = readReference(`kq-f32.lora-${scale}.s1.json`);
    const model = Model.load(sharedPath('conformance', 'models', 'kq-f32.gguf'), {
      lora: [{ path: sharedPath('conformance', 'models', 'kq-lora.gguf'), scale: Number(scale) }],
    });
    assert.deepEqual(model.tokenizer.encode(ref.prompt, { addSpecial: true, parseSpecial: false }), ref.prompt_tokens);
    const { promptLogits, stepLogits } = replay(model, ref);
    const n = ref.n_vocab;
    let worst = 0;
    ref.prompt_topk.forEach((top, i) => (worst = Math.max(worst, maxTopKError(promptLogits, i * n, top))));
    ref.greedy_topk.forEach((top, j) => {
      worst = Math.max(worst, maxTopKError(stepLogits[j], 0, top));
      assert.equal(argmax(stepLogits[j], 0, n), ref.greedy[j], `greedy step ${j}`);
    });
    const last = ref.last_logits.reduce((m, v, i) => Math.max(m, Math.abs(stepLogits[0][i] - v)), 0);
    console.log(`scale ${scale}: worst top-10 logit error ${worst.toExponential(2)}, last prompt row full-vocab ${last.toExponential(2)}`);
    assert.ok(worst <= TOL, `top-10 logit error ${worst} > ${TOL}`);
    assert.ok(last <= TOL, `full-vocab logit error ${last} > ${TOL}`);
  });
}

test('the adapter changes the logits: scale 0 is the base model, scale 1 is not', () => {
  const ref = readReference('kq-f32.s1.json');
  const adapter = sharedPath('conformance', 'models', 'kq-lora.gguf');
  const base = sharedPath('conformance', 'models', 'kq-f32.gguf');
  const plain = replay(Model.load(base), ref).promptLogits;
  const zero = replay(Model.load(base, { lora: [{ path: adapter, scale: 0 }] }), ref).promptLogits;
  const one = replay(Model.load(base, { lora: [{ path: adapter, scale: 1 }] }), ref).promptLogits;
  assert.deepEqual(zero, plain);
  assert.ok(one.some((v, i) => Math.abs(v - plain[i]) > 0.1));
});

test('the training path (GGUF → Params, LoraTrainOps) reproduces llama.cpp\'s logits of kq-f32, plain and with kq-lora', () => {
  const model = loadTrainModel(loadGGUF(sharedPath('conformance', 'models', 'kq-f32.gguf')));
  const adapter = loraFromGGUF(model, loadGGUF(sharedPath('conformance', 'models', 'kq-lora.gguf')));
  assert.deepEqual(adapter.config.targets, ['q', 'v', 'down']);
  assert.equal(adapter.config.rank, 8);
  assert.equal(adapter.config.alpha, 16);
  const check = (refName: string, logits: (tokens: Int32Array) => Float32Array) => {
    const ref = readReference(refName);
    // the prompt and the greedy continuation in one sequence: every row's logits at once
    const tokens = Int32Array.from([...ref.prompt_tokens, ...ref.greedy.slice(0, -1)]);
    const all = logits(tokens), n = ref.n_vocab, p = ref.prompt_tokens.length;
    const tops = [...ref.prompt_topk.map((top, i) => [i, top] as const), ...ref.greedy_topk.slice(1).map((top, j) => [p + j, top] as const)];
    const worst = Math.max(...tops.map(([row, top]) => maxTopKError(all, row * n, top)));
    console.log(`${refName} through the training forward: worst top-10 logit error ${worst.toExponential(2)}`);
    assert.ok(worst <= TRAIN_TOL, `${refName}: ${worst}`);
  };
  check('kq-f32.s1.json', (tokens) => forwardLogits(model, tokens, 1, tokens.length).value);
  check('kq-f32.lora-1.0.s1.json', (tokens) => loraForwardLogits(model, adapter, tokens, 1, tokens.length).value);
});
