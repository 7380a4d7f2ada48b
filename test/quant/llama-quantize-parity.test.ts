// kiln quantize against llama.cpp's llama-quantize: kq-f32.gguf quantized to every conformance type must
// give the same tensor names, types, shapes and order, blocks identical to kq-TYPE.gguf (≥ 99.5% per tensor
// required; measured: 100% for every tensor of every type), the same metadata in the same order, the whole
// file byte for byte, and the same logits. The MoE fixture (moe-q8_0.gguf) is checked byte for byte too, and
// the IQ4 types and the fallbacks to IQ4_NL against pinned hashes of llama-quantize's files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { ggufFromBytes, loadGGUF, type GGUFModelFile } from '../../src/gguf/model-file.js';
import { plainValue } from '../../src/gguf/metadata.js';
import { serializeGGUF } from '../../src/gguf/writer.js';
import { typeInfo, typeName } from '../../src/tensor/ggml-type.js';
import { fileTypeFromName, QuantMixError } from '../../src/quant/mix.js';
import { readImatrix } from '../../src/quant/imatrix.js';
import { quantizeModel } from '../../src/quant/quantize-model.js';
import { Model } from '../../src/generate/model.js';
import { SingleSequence } from '../../src/generate/generate.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';
import { columnImportance, legacyImatrixBytes } from '../helpers/imatrix.js';

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

// sha256 of llama-quantize's output for files ../shared does not hold. Made once with llama.cpp c392e509
// (../shared/peers/llama.cpp/bin; that build's llama-quantize never loads its CPU backends and crashes, so it ran
// with LD_PRELOAD of a one-line library whose constructor calls ggml_backend_load_all()):
//   llama-quantize [--imatrix NAME.imatrix.dat] MODEL.gguf OUT.gguf TYPE
// in a folder holding NAME.imatrix.dat = legacyImatrixBytes(columnImportance(MODEL), 10, 7, 'calibration.txt').
const PINNED: { model: string; type: string; imatrix?: string; sha256: string; what: string }[] = [
  { model: 'kq-f32', type: 'IQ4_NL', sha256: '32085c8ab54e0c265a08af09115edfd6932c6f87a3945abe4cb067e8b7be2da6', what: 'output Q6_K, the rest IQ4_NL' },
  { model: 'kq-f32', type: 'IQ4_XS', sha256: '3be993d2f15a6c8dcc833985e844b5a22618ef1192257990c9bc90fbd6af9ab2', what: 'output Q6_K, the rest IQ4_XS' },
  { model: 'kq-f32', type: 'IQ4_NL', imatrix: 'kq', sha256: '9389cd6f60a6ee7feeaec250e107a3ba6eb25069edc27701b250502173985150', what: 'weighted search' },
  { model: 'kq-f32', type: 'IQ4_XS', imatrix: 'kq', sha256: 'caa05505b13d8a3adf2f434391bb7dc4cc0bba7be2e7d4b8c27a11b2cbc5a8c4', what: 'weighted search' },
  { model: 'stories260K', type: 'Q2_K', sha256: 'cde7e9520495a6f8ae3f3a8bda69982b9c6fa159fc29ef93a9d092d6b365658e', what: 'rows of 64 → IQ4_NL, of 172 → F16' },
  { model: 'stories260K', type: 'Q2_K', imatrix: 'stories', sha256: 'c03da171533d773c73c66d9d79885ccc3b4faabe9ffad6b941bdfceb8cf4392d', what: 'IQ4_NL fallback with an imatrix' },
  { model: 'stories260K', type: 'Q3_K_S', sha256: '69ee8bab5840a3166749017fa4bc4ecfb441941cfd5fd8042c92874a658b8ad4', what: 'Q3_K → IQ4_NL' },
  { model: 'stories260K', type: 'IQ4_XS', sha256: '4d8614ce3f2eb632bfe3f11e8746469c50bd3d3570b4cb480bd19fade988bcde', what: 'IQ4_XS → IQ4_NL, rows of 172 → F16' },
];

const anyModelPath = (name: string) => (name === 'stories260K' ? sharedPath('data', 'models', `${name}.gguf`) : modelPath(`${name}.gguf`));

for (const { model, type, imatrix, sha256, what } of PINNED) {
  test(`${model} → ${type}${imatrix ? ' with an imatrix' : ''} is llama-quantize's file (${what})`, () => {
    const source = loadGGUF(anyModelPath(model));
    const options = { ftype: fileTypeFromName(type), imatrix: undefined as ReturnType<typeof readImatrix> | undefined, imatrixPath: undefined as string | undefined };
    if (imatrix) {
      const dir = mkdtempSync(join(tmpdir(), 'kiln-iq4-'));
      try {
        const path = join(dir, `${imatrix}.imatrix.dat`);
        writeFileSync(path, legacyImatrixBytes(columnImportance(source), 10, 7, 'calibration.txt'));
        options.imatrix = readImatrix(path);
        options.imatrixPath = `${imatrix}.imatrix.dat`; // as llama-quantize was given it
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const bytes = serializeGGUF(quantizeModel(source, options));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), sha256);
  });
}

test('stories260K → IQ4_NL fails as llama-quantize does, naming the tensor (rows of 172 have no IQ4_NL fallback)', () => {
  assert.throws(() => quantizeModel(loadGGUF(anyModelPath('stories260K')), { ftype: fileTypeFromName('IQ4_NL') }),
    (e: Error) => e instanceof QuantMixError && /blk\.0\.ffn_down\.weight: rows of 172 values do not split into IQ4_NL blocks/.test(e.message));
});
