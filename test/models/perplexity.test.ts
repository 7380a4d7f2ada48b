// Perplexity of stories260K by llama.cpp's method, against the conformance figure (PPL = 4.4156).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import { loadModel } from './reference.js';
import { perplexity } from '../../src/generate/generate.js';

test('stories260K perplexity on the TinyStories sample (c 128, 40 chunks) is 4.4156 ± 0.002', () => {
  const model = loadModel('data', 'models', 'stories260K.gguf');
  const text = readFileSync(sharedPath('data', 'text', 'tinystories-sample-197k.txt'), 'utf8');
  const result = perplexity(model, text, 128, 40);
  assert.equal(result.chunks, 40);
  assert.equal(result.scoredTokens, 40 * 63);
  assert.ok(Math.abs(result.ppl - 4.4156) <= 0.002, `PPL ${result.ppl}`);
});
