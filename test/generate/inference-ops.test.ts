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

const model = Model.load(sharedPath('data', 'models', 'stories260K.gguf'), { backend: new ReferenceBackend() });

/** Logits of the last of `tokens`, fed to a fresh cache `chunk` tokens per forward pass. */
function lastLogits(tokens: number[], chunk: number): Float32Array {
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

test('a batch whose activations are reused from layer to layer gives the logits of small chunks, bit for bit', () => {
  // 96 rows: [96, 64] activations and more are above the slab's 4096 values; chunks of 4 rows stay below it
  const tokens = Array.from({ length: 96 }, (_, i) => 1 + ((i * 37) % 500));
  const whole = lastLogits(tokens, tokens.length), chunked = lastLogits(tokens, 4);
  assert.equal(whole.length, model.vocabSize);
  assert.deepEqual(whole, chunked);
});
