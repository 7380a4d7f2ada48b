// The default model (models/kiln-brown.gguf): found from the package root, loads, and generates text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { DEFAULT_MODEL, defaultModelPath, modelPath } from '../../src/cli/default-model.js';
import { sharedPath } from '../shared.js';
import { Model } from '../../src/generate/model.js';
import { generate } from '../../src/generate/generate.js';

test('a MODEL argument wins; without one the default model is used', () => {
  const path = defaultModelPath();
  assert.ok(isAbsolute(path) && path.endsWith(DEFAULT_MODEL) && existsSync(path), path);
  const other = sharedPath('data', 'models', 'stories260K.gguf');
  assert.equal(modelPath(other), other);
  assert.equal(modelPath(undefined), path);
});

test('the default model loads and greedily continues a prompt', () => {
  const model = Model.load(defaultModelPath());
  assert.equal(model.hparams.vocabSize, 2048);
  const prompt = model.tokenizer.encode('The jury said', { addSpecial: false, parseSpecial: false });
  const result = generate(model, prompt, { maxTokens: 12, sampling: { temperature: 0 }, stopAtEog: false });
  assert.equal(result.tokens.length, 12);
  assert.ok(result.tokens.every((id) => id >= 0 && id < 2048));
  assert.ok(/[a-z]/i.test(result.text), `no letters in ${JSON.stringify(result.text)}`);
  // greedy decoding is deterministic
  const again = generate(model, prompt, { maxTokens: 12, sampling: { temperature: 0 }, stopAtEog: false });
  assert.deepEqual(again.tokens, result.tokens);
});
