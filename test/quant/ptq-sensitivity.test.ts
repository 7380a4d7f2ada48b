// Mixed precision by sensitivity on kq-f32: the measured KL divergences fall with more bits, the greedy
// assignment stays within the bits-per-weight budget (and spends it), and an impossible budget is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { loadGGUF, ggufFromBytes } from '../../src/gguf/model-file.js';
import { serializeGGUF } from '../../src/gguf/writer.js';
import { GGMLType } from '../../src/tensor/ggml-type.js';
import { LlamaFileType } from '../../src/quant/mix.js';
import { quantizeModel } from '../../src/quant/quantize-model.js';
import { assignTypes, BudgetError, calibrationChunks, measureSensitivity } from '../../src/quant/sensitivity.js';

test('--target-bpw on kq-f32: per-tensor KL sensitivity, greedy assignment within the budget', () => {
  const file = loadGGUF(sharedPath('conformance', 'models', 'kq-f32.gguf'));
  const chunks = calibrationChunks(file, undefined, 32, 1);
  assert.equal(chunks[0].length, 32);
  const candidates = [GGMLType.Q4_0, GGMLType.Q5_1, GGMLType.Q8_0]; // the legacy quantizers are the quick ones
  const sensitivity = measureSensitivity(file, chunks, { candidates });
  assert.equal(sensitivity.length, 16); // 7 matrices × 2 layers, token_embd, output
  for (const s of sensitivity) {
    assert.deepEqual(s.candidates.map((c) => c.type), candidates);
    assert.ok(s.candidates[0].kld > s.candidates[1].kld && s.candidates[1].kld > s.candidates[2].kld, `${s.name}: ${s.candidates.map((c) => c.kld)}`);
  }
  const nValues = file.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
  for (const target of [5, 6, 8]) {
    const a = assignTypes(file, sensitivity, target);
    assert.ok(a.bitsPerWeight <= target, `${a.bitsPerWeight} > ${target}`);
    // the budget is spent: no single remaining upgrade would still fit
    const slack = (target * nValues) / 8 - a.totalBytes;
    for (const s of sensitivity) {
      const now = s.candidates.find((c) => c.type === a.types.get(s.name))!;
      for (const c of s.candidates) if (c.bytes > now.bytes) assert.ok(c.bytes - now.bytes > slack, `${s.name} could still become ${c.type}`);
    }
  }
  // the written file (target 5) has the assigned types and that size
  const a = assignTypes(file, sensitivity, 5);
  const out = ggufFromBytes(serializeGGUF(quantizeModel(file, { ftype: LlamaFileType.ALL_F32, tensorTypes: a.types })));
  for (const [name, type] of a.types) assert.equal(out.tensor(name).type, type);
  assert.equal(out.tensorInfos.reduce((sum, t) => sum + t.nBytes, 0), a.totalBytes);
  const low = assignTypes(file, sensitivity, 5), high = assignTypes(file, sensitivity, 8);
  assert.ok(high.predictedKld < low.predictedKld);
  assert.throws(() => assignTypes(file, sensitivity, 4), BudgetError);
});

test('candidates follow llama.cpp\'s fallbacks on stories260K (rows of 64 and 172)', () => {
  const file = loadGGUF(sharedPath('data', 'models', 'stories260K.gguf'));
  const chunks = calibrationChunks(file, undefined, 16, 1);
  const sensitivity = measureSensitivity(file, chunks, { candidates: [GGMLType.Q4_K, GGMLType.Q8_0] });
  const typesOf = (name: string) => sensitivity.find((s) => s.name === name)!.candidates.map((c) => c.type);
  // rows of 64: Q4_K becomes Q5_0; rows of 172: Q4_K → Q5_0 → F16, and Q8_0 has no fallback
  assert.deepEqual(typesOf('blk.0.attn_q.weight'), [GGMLType.Q5_0, GGMLType.Q8_0]);
  assert.deepEqual(typesOf('blk.0.ffn_down.weight'), [GGMLType.F16]);
  const a = assignTypes(file, sensitivity, 9);
  assert.ok(a.bitsPerWeight <= 9);
  assert.equal(a.types.get('blk.0.ffn_down.weight'), GGMLType.F16);
});
