// A GGUF held in a Node Buffer with general.alignment 1 or 2 (so F32 tensors start at odd byte offsets): its
// weights are copied out of the Buffer's own bytes, not out of the pooled memory behind it, and the model's
// logits equal those of the same model 32-byte aligned.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ggufFromBytes, loadGGUF } from '../../src/gguf/model-file.js';
import { serializeGGUF } from '../../src/gguf/writer.js';
import { Model } from '../../src/generate/model.js';
import { evaluate } from '../../src/generate/generate.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';
import { GGMLType } from '../../src/tensor/ggml-type.js';
import { sharedPath } from '../shared.js';

const source = loadGGUF(sharedPath('data', 'models', 'stories260K.gguf'));

/** stories260K rewritten with `alignment`, read from a Buffer that shares its memory with other bytes */
function realigned(alignment: number): Model {
  const tensors = source.tensorInfos.map((info) => ({ ...source.tensor(info.name), dims: info.dims }));
  const bytes = serializeGGUF({ metadata: new Map([...source.metadata].filter(([key]) => key !== 'general.alignment')), tensors, alignment });
  const pooled = Buffer.concat([Buffer.from('x'), Buffer.from(bytes)]).subarray(1); // a view at byte 1 of a larger allocation
  return new Model(ggufFromBytes(pooled), new ReferenceBackend());
}

test('F32 weights at odd offsets of a Buffer give the aligned model\'s logits (alignment 1 and 2)', () => {
  assert.ok(source.tensorInfos.some((t) => t.type === GGMLType.F32), 'the model has F32 tensors');
  const tokens = [1, 403, 407, 261, 378];
  const expected = evaluate(new Model(source, new ReferenceBackend()), tokens);
  for (const alignment of [1, 2]) {
    const logits = evaluate(realigned(alignment), tokens);
    assert.ok(logits.every(Number.isFinite), `alignment ${alignment}: non-finite logits`);
    assert.deepEqual(logits, expected, `alignment ${alignment}`);
  }
});
