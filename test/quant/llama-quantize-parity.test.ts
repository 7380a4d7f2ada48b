// kiln quantize against llama.cpp's llama-quantize: kq-f32.gguf quantized to every conformance type must
// give the same tensor names, types, shapes and order, blocks identical to kq-TYPE.gguf (≥ 99.5% per tensor
// required; measured: 100% for every tensor of every type), the same metadata in the same order, the whole
// file byte for byte, and the same logits. The MoE fixture (moe-q8_0.gguf) is checked byte for byte too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import { ggufFromBytes, loadGGUF, type GGUFModelFile } from '../../src/gguf/model-file.js';
import { plainValue } from '../../src/gguf/metadata.js';
import { serializeGGUF } from '../../src/gguf/writer.js';
import { typeInfo, typeName } from '../../src/tensor/ggml-type.js';
import { fileTypeFromName } from '../../src/quant/mix.js';
import { quantizeModel } from '../../src/quant/quantize-model.js';
import { Model } from '../../src/generate/model.js';
import { SingleSequence } from '../../src/generate/generate.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';

const TYPES = ['F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K'];
const MIN_IDENTICAL_BLOCKS = 0.995;
const LOGIT_TOLERANCE = 1e-3;

const modelPath = (name: string) => sharedPath('conformance', 'models', name);
const source = loadGGUF(modelPath('kq-f32.gguf'));
const promptTokens = (JSON.parse(readFileSync(sharedPath('conformance', 'reference', 'kq-f32.s1.json'), 'utf8')) as { prompt_tokens: number[] }).prompt_tokens;

/** Share of the tensor's blocks whose bytes are identical. */
function identicalBlockShare(ours: Uint8Array, theirs: Uint8Array, blockBytes: number): number {
  const nBlocks = theirs.length / blockBytes;
  let same = 0;
  for (let b = 0; b < nBlocks; b++) {
    let equal = true;
    for (let k = b * blockBytes; k < (b + 1) * blockBytes && equal; k++) equal = ours[k] === theirs[k];
    if (equal) same++;
  }
  return same / nBlocks;
}

function promptLogits(file: GGUFModelFile): Float32Array {
  const model = new Model(file, new ReferenceBackend());
  return new SingleSequence(model, promptTokens.length).feed(promptTokens, true);
}

for (const type of TYPES) {
  test(`kq-f32 → ${type} matches llama-quantize`, (t) => {
    const reference = loadGGUF(modelPath(`kq-${type}.gguf`));
    const bytes = serializeGGUF(quantizeModel(source, { ftype: fileTypeFromName(type) }));
    const ours = ggufFromBytes(bytes, `kiln ${type}`);

    assert.deepEqual(ours.tensorInfos.map((i) => i.name), reference.tensorInfos.map((i) => i.name), 'tensor order');
    const shares: string[] = [];
    for (const theirs of reference.tensorInfos) {
      const mine = ours.tensor(theirs.name);
      assert.equal(typeName(mine.type), typeName(theirs.type), `${theirs.name} type`);
      assert.deepEqual(mine.dims, theirs.dims, `${theirs.name} shape`);
      const share = identicalBlockShare(mine.data, reference.tensor(theirs.name).data, typeInfo(theirs.type).typeSize);
      shares.push(`${theirs.name} ${typeName(theirs.type)} ${(100 * share).toFixed(2)}%`);
      assert.ok(share >= MIN_IDENTICAL_BLOCKS, `${theirs.name}: ${(100 * share).toFixed(2)}% of blocks identical`);
    }
    t.diagnostic(`identical blocks: ${shares.join(', ')}`);

    assert.deepEqual([...ours.metadata.keys()], [...reference.metadata.keys()], 'metadata keys in order');
    for (const [key, value] of reference.metadata) {
      assert.deepEqual(ours.metadata.get(key), value, `metadata ${key} = ${JSON.stringify(plainValue(value)).slice(0, 60)}`);
    }

    const file = readFileSync(modelPath(`kq-${type}.gguf`));
    assert.equal(bytes.length, file.length, 'file size');
    assert.ok(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(file), 'file bytes');

    const expected = promptLogits(reference), actual = promptLogits(ours);
    const worst = expected.reduce((m, v, i) => Math.max(m, Math.abs(v - actual[i])), 0);
    t.diagnostic(`max |logit difference| over ${promptTokens.length} prompt positions: ${worst}`);
    assert.ok(worst <= LOGIT_TOLERANCE, `logits differ by ${worst}`);
  });
}

test('moe-f32 → Q8_0 (3-D expert tensors, router kept F32) matches llama-quantize', () => {
  const bytes = serializeGGUF(quantizeModel(loadGGUF(modelPath('moe-f32.gguf')), { ftype: fileTypeFromName('Q8_0') }));
  assert.ok(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(readFileSync(modelPath('moe-q8_0.gguf'))));
});
