// A model the page cannot hold is refused from its GGUF header alone (src/web/page-memory.ts): a tensor larger than
// one WebAssembly memory, a KV cache larger than one, or a total above the page's limit; what fits gets kiln's
// inference estimate.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { estimateInference } from '../../src/estimate/estimate.js';
import { PageMemoryError, checkPageMemory } from '../../src/web/page-memory.js';
import { MODEL_PATH } from '../server/helpers.js';

const header = readGGUFHeader(MODEL_PATH);

test('page memory: a model that fits gets kiln\'s inference estimate without runtime overhead', () => {
  const estimate = checkPageMemory(header, 'stories260K.gguf', 512, { bytes: 2 ** 30, source: 'a test' });
  assert.equal(estimate.total, estimateInference(header, 512, 1, 'f16', 0).total);
  // weights as stored, plus the KV cache and compute buffers
  assert.ok(estimate.total > header.tensors.reduce((n, t) => n + t.nBytes, 0));
});

test('page memory: more than the page\'s limit is refused with what the model needs', () => {
  const needs = estimateInference(header, 512, 1, 'f16', 0).total;
  assert.throws(() => checkPageMemory(header, 'stories260K.gguf', 512, { bytes: needs - 1, source: 'a test' }), (e: Error) =>
    e instanceof PageMemoryError && /^stories260K\.gguf cannot run in this page: it needs [\d.]+ MiB at a context of 512 \(weights [\d.]+ MiB, KV cache [\d.]+ MiB, compute buffers [\d.]+ MiB\), more than the [\d.]+ MiB it may use \(a test\)$/.test(e.message));
  assert.doesNotThrow(() => checkPageMemory(header, 'stories260K.gguf', 512, { bytes: needs, source: 'a test' }));
});

test('page memory: a header claiming a tensor larger than one WebAssembly memory is refused, whatever the limit', () => {
  const huge = { ...header, tensors: header.tensors.map((t, i) => (i === 1 ? { ...t, nBytes: 5 * 2 ** 30 } : t)) };
  assert.throws(() => checkPageMemory(huge, 'huge.gguf', 512), (e: Error) =>
    e instanceof PageMemoryError && e.message === `huge.gguf cannot run in this page: its tensor "${header.tensors[1].name}" takes 5.00 GiB, more than one WebAssembly memory holds beside its scratch (3.50 GiB)`);
});

test('page memory: a context whose KV cache outgrows one WebAssembly memory is refused', () => {
  assert.throws(() => checkPageMemory(header, 'stories260K.gguf', 2 ** 24), (e: Error) =>
    e instanceof PageMemoryError && /KV cache at a context of 16777216 takes [\d.]+ GiB, more than one WebAssembly memory holds \([\d.]+ GiB\): choose a shorter context$/.test(e.message));
});
