// `kiln quantize` end to end and the model-level rules around it: requantizing refused unless allowed,
// imatrix files (legacy .dat and GGUF) read and recorded in the metadata, wrong-sized imatrix entries refused,
// the IQ4_NL fallback of rows that do not split into 256-blocks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { GGUFModelFile, loadGGUF } from '../../src/gguf/model-file.js';
import { metaArray, metaString, metaU32, serializeGGUF } from '../../src/gguf/writer.js';
import { GGUFValueType } from '../../src/gguf/types.js';
import { GGMLType, typeName } from '../../src/tensor/ggml-type.js';
import { dequantizeTensor } from '../../src/tensor/codec.js';
import { quantizeRows } from '../../src/quant/ggml-quantize.js';
import { LlamaFileType } from '../../src/quant/mix.js';
import { ImatrixError, readImatrix, type Imatrix } from '../../src/quant/imatrix.js';
import { quantizeModel, QuantizeError } from '../../src/quant/quantize-model.js';
import { tensorLogLine } from '../../src/cli/commands/quantize.js';
import { kiln } from '../helpers/cli.js';
import { columnImportance, legacyImatrixBytes } from '../helpers/imatrix.js';

const modelPath = (name: string) => sharedPath('conformance', 'models', name);
const dir = mkdtempSync(join(tmpdir(), 'kiln-quantize-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** `kiln quantize ...argv`, which must succeed; what it wrote to stderr */
async function runQuantize(argv: string[]): Promise<string> {
  const { stderr, status } = await kiln('quantize', ...argv);
  assert.equal(status, 0, stderr);
  return stderr;
}

const kqImportance = () => columnImportance(loadGGUF(modelPath('kq-f32.gguf')));

test('kiln quantize writes the llama-quantize file (Q8_0) and logs each tensor, with progress lines from the start', async () => {
  const out = join(dir, 'q8.gguf');
  const text = await runQuantize([modelPath('kq-f32.gguf'), out, 'q8_0']);
  assert.ok(readFileSync(out).equals(readFileSync(modelPath('kq-Q8_0.gguf'))));
  assert.match(text, /\[ 4\/21\] blk\.0\.attn_k\.weight +f32 → q8_0  \[256, 128\]  131072 → 34816 bytes/);
  assert.match(text, /\[ 2\/21\] output_norm\.weight  +f32 \(copied\)  \[256\]  1024 → 1024 bytes/);
  // not a terminal: a plain progress line after the first tensor and after the last
  const lines = text.trimEnd().split('\n');
  assert.match(lines[1], /^tensor 1\/21 \| \d+m\d\ds elapsed, ETA \d+m\d\ds$/);
  assert.match(lines.at(-1)!, /^tensor 21\/21 \| /);
});

test('kiln quantize: usage errors (status 2)', async () => {
  for (const [argv, message] of [
    [[modelPath('kq-f32.gguf'), join(dir, 'x.gguf')], /TYPE is required/],
    [[modelPath('kq-f32.gguf'), join(dir, 'x.gguf'), 'Q9_9'], /Q9_9/],
    [[modelPath('kq-f32.gguf'), join(dir, 'x.gguf'), 'Q4_0', '--output-type', 'q8_k'], /--output-type: kiln cannot quantize to Q8_K/],
    [[modelPath('kq-f32.gguf'), join(dir, 'x.gguf'), 'Q4_0', '--pur'], /unknown option '--pur'\n\(Did you mean --pure\?\)/],
  ] as const) {
    const { status, stderr } = await kiln('quantize', ...argv);
    assert.equal(status, 2, argv.join(' '));
    assert.match(stderr, message);
  }
});

test('already quantized input is refused unless requantizing is allowed', () => {
  const q8 = loadGGUF(modelPath('kq-Q8_0.gguf'));
  assert.throws(() => quantizeModel(q8, { ftype: LlamaFileType.MOSTLY_Q4_0 }), QuantizeError);
  const result = quantizeModel(q8, { ftype: LlamaFileType.MOSTLY_Q4_0, allowRequantize: true });
  const types = new Map(result.tensors.map((t) => [t.name, typeName(t.type)]));
  assert.equal(types.get('blk.0.ffn_up.weight'), 'Q4_0');
  assert.equal(types.get('output.weight'), 'Q6_K');
  // converting to the type a tensor already has copies it
  const same = quantizeModel(q8, { ftype: LlamaFileType.MOSTLY_Q8_0 });
  assert.deepEqual(same.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.data, q8.tensor('blk.0.attn_q.weight').data);
});

test('F16 input converts without --allow-requantize (F16 → Q8_0 equals quantizing its float values)', () => {
  const input = loadGGUF(modelPath('kq-F16.gguf'));
  const converted = quantizeModel(input, { ftype: LlamaFileType.MOSTLY_Q8_0 }).tensors.find((t) => t.name === 'blk.1.ffn_down.weight')!;
  assert.equal(converted.type, GGMLType.Q8_0);
  const source = input.tensor('blk.1.ffn_down.weight');
  assert.deepEqual(converted.data, quantizeRows(GGMLType.Q8_0, dequantizeTensor(source), source.dims[0], source.dims[1]));
});

test('imatrix (.dat and GGUF) is used for the weighted quantizers and recorded in the metadata', async () => {
  const entries = kqImportance();
  const datPath = join(dir, 'kq.imatrix.dat');
  writeFileSync(datPath, legacyImatrixBytes(entries, 10, 7, 'calibration.txt'));
  const dat = readImatrix(datPath);
  assert.equal(dat.entries.size, entries.size);
  assert.equal(dat.chunkCount, 7);
  assert.equal(dat.dataset, 'calibration.txt');
  const name = 'blk.0.ffn_down.weight';
  dat.entries.get(name)!.forEach((v, i) => assert.ok(Math.abs(v - entries.get(name)![i]) < 1e-6));

  // the same statistics as a GGUF imatrix: in_sum2 = mean·count
  const tensors = [...entries].flatMap(([n, values]) => [
    { name: `${n}.in_sum2`, dims: [values.length, 1], type: GGMLType.F32, data: new Uint8Array(new Float32Array(values.map((v) => v * 4)).buffer) },
    { name: `${n}.counts`, dims: [1, 1], type: GGMLType.F32, data: new Uint8Array(new Float32Array([4]).buffer) },
  ]);
  const ggufPath = join(dir, 'kq.imatrix.gguf');
  writeFileSync(ggufPath, serializeGGUF({
    metadata: new Map([['general.type', metaString('imatrix')], ['imatrix.chunk_count', metaU32(7)], ['imatrix.datasets', metaArray(GGUFValueType.STRING, ['calibration.txt'])]]),
    tensors,
  }));
  const gguf = readImatrix(ggufPath);
  assert.equal(gguf.chunkCount, 7);
  assert.deepEqual(gguf.entries.get(name), dat.entries.get(name));

  const source = loadGGUF(modelPath('kq-f32.gguf'));
  const used: string[] = [];
  const weighted = quantizeModel(source, {
    ftype: LlamaFileType.MOSTLY_Q4_K_M, imatrix: dat, imatrixPath: datPath, onTensor: (p) => { if (p.usedImatrix) used.push(p.name); },
  });
  const plain = quantizeModel(source, { ftype: LlamaFileType.MOSTLY_Q4_K_M });
  assert.equal(used.length, entries.size);
  const data = (r: typeof plain, n: string) => r.tensors.find((t) => t.name === n)!.data;
  assert.notDeepEqual(data(weighted, name), data(plain, name));
  assert.deepEqual(data(weighted, 'token_embd.weight'), data(plain, 'token_embd.weight')); // no entry: unweighted
  const keys = [...weighted.metadata.keys()];
  assert.deepEqual(keys.slice(-6), [
    'general.quantization_version', 'general.file_type', 'quantize.imatrix.file', 'quantize.imatrix.dataset',
    'quantize.imatrix.entries_count', 'quantize.imatrix.chunks_count',
  ]);
  assert.equal(weighted.metadata.get('quantize.imatrix.entries_count')!.value, entries.size);
});

test('an imatrix entry of the wrong size is refused; a broken imatrix file is a clear error', () => {
  const bad: Imatrix = { entries: new Map([['blk.0.attn_q.weight', new Float32Array(100)]]), chunkCount: 0 };
  assert.throws(() => quantizeModel(loadGGUF(modelPath('kq-f32.gguf')), { ftype: LlamaFileType.MOSTLY_Q4_0, imatrix: bad }), QuantizeError);
  const truncated = join(dir, 'truncated.dat');
  writeFileSync(truncated, legacyImatrixBytes(kqImportance(), 1, 1, 'x').subarray(0, 50));
  assert.throws(() => readImatrix(truncated), ImatrixError);
  assert.throws(() => readImatrix(join(dir, 'missing.dat')), ImatrixError);
});

test('log line format', () => {
  const line = tensorLogLine({
    index: 3, count: 21, name: 'blk.0.attn_k.weight', dims: [256, 128], from: GGMLType.F32, to: GGMLType.Q4_K,
    fromBytes: 131072, toBytes: 18432, converted: true, usedImatrix: false,
  }, 19);
  assert.equal(line, '[ 3/21] blk.0.attn_k.weight  f32 → q4_K  [256, 128]  131072 → 18432 bytes');
});

test('non-finite weights are refused', () => {
  const file = loadGGUF(modelPath('kq-f32.gguf'));
  const data = new Uint8Array(file.data);
  const info = file.tensorInfos.find((t) => t.name === 'blk.1.attn_q.weight')!;
  new DataView(data.buffer).setFloat32(info.offset + 4 * 1000, NaN, true);
  const broken = new GGUFModelFile(file.path, file.header, data);
  assert.throws(() => quantizeModel(broken, { ftype: LlamaFileType.MOSTLY_Q4_0 }), /blk\.1\.attn_q\.weight contains NaN/);
});

test('kiln quantize --imatrix --pure --output-type --token-embedding-type', async () => {
  const datPath = join(dir, 'cli.imatrix.dat');
  writeFileSync(datPath, legacyImatrixBytes(kqImportance(), 2, 3, 'calib.txt'));
  const out = join(dir, 'cli-imatrix.gguf');
  await runQuantize([modelPath('kq-f32.gguf'), out, 'Q4_K_M', '--imatrix', datPath, '--pure', '--output-type', 'q8_0', '--token-embedding-type', 'F16']);
  const result = loadGGUF(out);
  const types = new Map(result.tensorInfos.map((t) => [t.name, typeName(t.type)]));
  assert.equal(types.get('output.weight'), 'Q8_0');
  assert.equal(types.get('token_embd.weight'), 'F16');
  assert.equal(types.get('blk.1.attn_v.weight'), 'Q4_K'); // --pure: no Q6_K bump
  assert.equal(types.get('blk.1.ffn_norm.weight'), 'F32');
  assert.equal(result.metadata.get('general.file_type')!.value, LlamaFileType.MOSTLY_Q4_K_M);
  assert.equal(result.metadata.get('quantize.imatrix.file')!.value, datPath);
  assert.equal(result.metadata.get('quantize.imatrix.dataset')!.value, 'calib.txt');
  assert.equal(result.metadata.get('quantize.imatrix.chunks_count')!.value, 3);
});

test('kiln quantize Q2_K on a model with rows of 64 and 172 (stories260K): IQ4_NL and F16 fallbacks', async () => {
  const out = join(dir, 'stories-q2_k.gguf');
  const write = process.stderr.write, log = console.log;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  console.log = () => undefined;
  try {
    await runQuantize([sharedPath('data', 'models', 'stories260K.gguf'), out, 'Q2_K']);
  } finally {
    process.stderr.write = write;
    console.log = log;
  }
  const types = new Map(loadGGUF(out).tensorInfos.map((t) => [t.name, typeName(t.type)]));
  assert.equal(types.get('blk.0.attn_q.weight'), 'IQ4_NL'); // Q2_K → IQ4_NL
  assert.equal(types.get('blk.4.attn_v.weight'), 'IQ4_NL'); // Q3_K → IQ4_NL
  assert.equal(types.get('blk.0.ffn_down.weight'), 'F16'); // rows of 172: Q3_K → IQ4_NL → F16
  assert.equal(types.get('output.weight'), 'Q8_0');
  // IQ4_NL itself has no fallback for rows of 172: the error names the tensor and the cause
  await assert.rejects(runQuantize([sharedPath('data', 'models', 'stories260K.gguf'), join(dir, 'x.gguf'), 'IQ4_NL']),
    /blk\.0\.ffn_down\.weight: rows of 172 values do not split into IQ4_NL blocks/);
});
