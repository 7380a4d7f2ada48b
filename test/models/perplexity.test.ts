// Perplexity of stories260K by llama.cpp's method, against the conformance figure (PPL = 4.4156).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import { loadModel } from './reference.js';
import { perplexity, perplexityChunks } from '../../src/generate/generate.js';

test('stories260K perplexity on the TinyStories sample (c 128, 40 chunks) is 4.4156 ± 0.002', () => {
  const model = loadModel('data', 'models', 'stories260K.gguf');
  const text = readFileSync(sharedPath('data', 'text', 'tinystories-sample-197k.txt'), 'utf8');
  const result = perplexity(model, text, 128, 40);
  assert.equal(result.chunks, 40);
  assert.equal(result.scoredTokens, 40 * 63);
  assert.ok(Math.abs(result.ppl - 4.4156) <= 0.002, `PPL ${result.ppl}`);
});

test('a vocabulary that adds no BOS (gpt2) keeps each chunk\'s first token, as llama-perplexity does', () => {
  const model = loadModel('conformance', 'models', 'gpt2-f16.gguf');
  const text = readFileSync(sharedPath('data', 'text', 'tinystories-sample-197k.txt'), 'utf8');
  const tokens = model.tokenizer.encode(text, { addSpecial: true, parseSpecial: false });
  const chunks = perplexityChunks(model, text, 64, 4);
  assert.deepEqual(chunks[1], tokens.slice(64, 128));
  // llama.cpp c392e509 (bin-native) `llama-perplexity -m gpt2-f16.gguf -f tinystories-sample-197k.txt -c 64
  // --chunks 4 -t 2` printed PPL = 26154321.4345 (a random model); kiln 26154190.8 — replacing the first token by
  // BOS gave 24065672.6
  const { ppl } = perplexity(model, text, 64, 4);
  assert.ok(Math.abs(ppl / 26154321.4345 - 1) < 1e-4, `PPL ${ppl}`);
});
