// Quantization-aware training: fake quantization equals the quantizer's round trip and is undone exactly, the
// export holds the quantized float weights, and on a tiny trained model QAT to Q4_0 beats PTQ to Q4_0 when both
// real exports are evaluated by kiln's inference Model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { openModelForTraining, writeLike } from '../../src/train/load-model.js';
import { FakeQuantizer, exportTypeOf, heldOutLoss, quantizeRoundTrip, trainQat } from '../../src/train/qat.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { Model } from '../../src/generate/model.js';
import { GGMLType, dequantizeTensor } from '../../src/tensor/index.js';
import { sharedPath } from '../shared.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-qat-'));
const text = readFileSync(sharedPath('data/text/tinyshakespeare.txt')).subarray(0, 30000);
writeFileSync(join(dir, 'corpus.txt'), text);
const nTrain = Math.floor(text.length * 0.9);
const trainTokens = Int32Array.from(text.subarray(0, nTrain)), valTokens = Int32Array.from(text.subarray(nTrain));

// a float model whose matrices all have rows of a multiple of 32 (Q4_0 blocks)
const floatPath = join(dir, 'float.gguf');
await train(parseTrainConfig({
  model: { dim: 32, layers: 1, heads: 2, kvHeads: 2, ffn: 64, ctx: 32 },
  tokenizer: 'bytes', corpus: 'corpus.txt', steps: 120, batchSize: 8, seqLen: 32, lr: 1e-2, warmup: 10,
  evalInterval: 120, evalTokens: 64, seed: 3, output: 'float.gguf',
}, dir));

test('fake quantization writes dequant(quant(W)) into matrices only, and restore gives W back bit-exactly', () => {
  const { model } = openModelForTraining(floatPath);
  const before = model.params.map((p) => Float32Array.from(p.value));
  const fake = new FakeQuantizer(model.params, GGMLType.Q4_0);
  fake.apply();
  model.params.forEach((p, i) => {
    if (p.dims.length === 1) return assert.deepEqual(p.value, before[i], p.name);
    const expected = new Float32Array(p.value.length);
    quantizeRoundTrip(GGMLType.Q4_0, before[i], p.cols, p.rows, expected);
    assert.deepEqual(p.value, expected, p.name);
    assert.notDeepEqual(p.value, before[i], p.name);
  });
  fake.restore();
  model.params.forEach((p, i) => assert.deepEqual(p.value, before[i], p.name));
});

test('QAT to Q4_0: the export is the quantized float weights, and its held-out loss beats PTQ', async () => {
  const loaded = openModelForTraining(floatPath);
  const ptqPath = join(dir, 'ptq.gguf'), qatPath = join(dir, 'qat.gguf');
  await writeLike(ptqPath, loaded.file, loaded.model, exportTypeOf(GGMLType.Q4_0), 2);
  trainQat(loaded.model, trainTokens, { type: GGMLType.Q4_0, steps: 40, batchSize: 8, seqLen: 32, lr: 2e-3, minLr: 2e-4, seed: 9, gradClip: 1 });
  await writeLike(qatPath, loaded.file, loaded.model, exportTypeOf(GGMLType.Q4_0), 2);

  const file = loadGGUF(qatPath);
  for (const p of loaded.model.params) {
    const t = file.tensor(p.name);
    assert.equal(t.type, p.dims.length === 1 ? GGMLType.F32 : GGMLType.Q4_0, p.name);
    const expected = new Float32Array(p.value.length);
    quantizeRoundTrip(t.type, p.value, p.cols, p.rows, expected);
    assert.deepEqual(dequantizeTensor(t), p.dims.length === 1 ? p.value : expected, p.name);
  }
  const loss = (path: string) => heldOutLoss(Model.load(path), valTokens, 32);
  const [float, ptq, qat] = [loss(floatPath), loss(ptqPath), loss(qatPath)];
  assert.ok(ptq > float, `PTQ ${ptq} should lose to the float model ${float}`);
  assert.ok(qat < ptq - 0.01, `QAT ${qat} should beat PTQ ${ptq}`);
});
