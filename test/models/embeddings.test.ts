// Sentence embeddings against llama-embedding: ../shared/conformance/reference/bert-f16.embd.json (mean pooling over
// [CLS] … [SEP], then L2-normalized; also the raw means).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import { loadModel } from './reference.js';
import { embedTokens, poolHidden } from '../../src/generate/embed.js';

interface EmbeddingReference {
  texts: string[];
  tokens: number[][];
  embeddings: number[][];
  embeddings_raw: number[][];
}

const ref = JSON.parse(readFileSync(sharedPath('conformance', 'reference', 'bert-f16.embd.json'), 'utf8')) as EmbeddingReference;

const maxError = (a: ArrayLike<number>, b: readonly number[]) => b.reduce((m, v, i) => Math.max(m, Math.abs(a[i] - v)), 0);
const cosine = (a: ArrayLike<number>, b: readonly number[]) => {
  let dot = 0, na = 0, nb = 0;
  b.forEach((v, i) => { dot += a[i] * v; na += a[i] * a[i]; nb += v * v; });
  return dot / Math.sqrt(na * nb);
};

test('bert: tokens with [CLS]/[SEP], normalized embeddings within 1e-3 (cosine ≥ 0.9999), raw within 2e-3', () => {
  const model = loadModel('conformance', 'models', 'bert-f16.gguf');
  assert.equal(model.hparams.pooling, 'mean');
  ref.texts.forEach((text, i) => {
    const tokens = model.tokenizer.encode(text, { addSpecial: true, parseSpecial: true });
    assert.deepEqual(tokens, ref.tokens[i]);
    const embedding = embedTokens(model, tokens);
    const error = maxError(embedding, ref.embeddings[i]);
    assert.ok(error <= 1e-3, `text ${i}: normalized embedding error ${error}`);
    assert.ok(cosine(embedding, ref.embeddings[i]) >= 0.9999, `text ${i}: cosine ${cosine(embedding, ref.embeddings[i])}`);
    // measured 1.0e-3 at most: the f16 KV cache (llama.cpp keeps bert's keys and values in f32)
    const raw = maxError(embedTokens(model, tokens, { normalize: false }), ref.embeddings_raw[i]);
    assert.ok(raw <= 2e-3, `text ${i}: raw embedding error ${raw}`);
  });
});

test('pooling: mean, first token, last token', () => {
  const hidden = Float32Array.of(1, 2, 3, 4, 5, 9); // [3, 2]
  assert.deepEqual([...poolHidden(hidden, 3, 2, 'mean')], [3, 5]);
  assert.deepEqual([...poolHidden(hidden, 3, 2, 'cls')], [1, 2]);
  assert.deepEqual([...poolHidden(hidden, 3, 2, 'last')], [5, 9]);
});

test('a decoder embeds with last-token pooling, equal to its final normed hidden state', () => {
  const model = loadModel('conformance', 'models', 'kq-f32.gguf');
  const tokens = model.tokenizer.encode('Once upon a time', { addSpecial: true, parseSpecial: false });
  const last = embedTokens(model, tokens, { normalize: false });
  const mean = embedTokens(model, tokens, { pooling: 'mean', normalize: false });
  assert.equal(last.length, model.hparams.embeddingLength);
  assert.ok(maxError(last, [...mean]) > 1e-3, 'last-token and mean pooling differ');
  const normalized = embedTokens(model, tokens);
  const norm = Math.hypot(...normalized);
  assert.ok(Math.abs(norm - 1) < 1e-6, `norm ${norm}`);
});
