// InferenceOps reuses a layer's large activations for the next layer's (ops.endLayer): a prompt run in one batch, whose
// activations are large enough to be reused, must give the logits of the same prompt run in chunks whose activations
// are all small (views of the shared slab, never reused). The reference backend computes each row alike in both,
// so the logits are equal bit for bit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { Model } from '../../src/generate/model.js';
import { BlockPool, SequenceBlocks } from '../../src/generate/kv-cache.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';

/** Logits of the last of `tokens`, fed to a fresh cache `chunk` tokens per forward pass. */
function lastLogits(model: Model, tokens: number[], chunk: number): Float32Array {
  const cache = model.createCache(tokens.length);
  const seq = new SequenceBlocks(cache.blockSize);
  new BlockPool(cache.nBlocks).ensureCapacity(seq, tokens.length);
  let logits: Float32Array = new Float32Array(0);
  for (let start = 0; start < tokens.length; start += chunk) {
    const ids = tokens.slice(start, start + chunk);
    logits = model.forward(cache, {
      tokens: Int32Array.from(ids),
      positions: Int32Array.from(ids, (_, i) => start + i),
      sequences: ids.map(() => seq),
      outputRows: [ids.length - 1],
    });
    seq.length = start + ids.length;
  }
  return logits;
}

// the decoder architectures kiln has a file for (bert's attention is not causal: its chunks would see less)
const MODELS = [
  ['llama', sharedPath('data', 'models', 'stories260K.gguf')],
  ['llama with experts', sharedPath('conformance', 'models', 'moe-f32.gguf')],
  ['qwen2', sharedPath('conformance', 'models', 'qwen2-f16.gguf')],
  ['phi3', sharedPath('conformance', 'models', 'phi3-f32.gguf')],
  ['gemma2', sharedPath('conformance', 'models', 'gemma2-f32.gguf')],
  ['gpt2', sharedPath('conformance', 'models', 'gpt2-f16.gguf')],
  ['deepseek2', sharedPath('conformance', 'models', 'deepseek2-f32.gguf')],
];

for (const [arch, path] of MODELS) {
  test(`${arch}: a batch whose activations are reused from layer to layer gives the logits of small chunks, bit for bit`, () => {
    const model = Model.load(path, { backend: new ReferenceBackend() });
    // 96 rows: [96, dim] activations are above the slab's 4096 values; chunks of 4 rows stay below it
    const tokens = Array.from({ length: 96 }, (_, i) => 1 + ((i * 37) % Math.min(500, model.vocabSize - 1)));
    const whole = lastLogits(model, tokens, tokens.length), chunked = lastLogits(model, tokens, 4);
    assert.equal(whole.length, model.vocabSize);
    assert.deepEqual(whole, chunked);
  });
}
