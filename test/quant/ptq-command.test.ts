// kiln quantize --scheme / --target-bpw end to end: the written files' tensor types, metadata and size, and the
// usage errors of the new options.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { getArray, getNumber, getString } from '../../src/gguf/metadata.js';
import { GGMLType } from '../../src/tensor/ggml-type.js';
import { kiln } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-ptq-command-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kq = sharedPath('conformance', 'models', 'kq-f32.gguf');
const stories = sharedPath('data', 'models', 'stories260K.gguf');
const text = sharedPath('data', 'text', 'tinystories-sample-197k.txt');

/** what `kiln quantize ...argv` prints on stdout, which must succeed */
async function quantize(argv: string[]): Promise<string> {
  const { stdout, stderr, status } = await kiln('quantize', ...argv);
  assert.equal(status, 0, stderr);
  return stdout;
}

test('--scheme int8-g32 writes Q8_0 matrices; --scheme fp8-e4m3 with --calibrate kl records the activation ranges', async () => {
  const q8 = join(dir, 'q8.gguf');
  assert.match(await quantize([kq, q8, '--scheme', 'int8-g32']), /int8 sym per-group 32; stored as Q8_0/);
  const file = loadGGUF(q8);
  assert.equal(file.tensor('blk.0.attn_q.weight').type, GGMLType.Q8_0);
  assert.equal(file.tensor('output_norm.weight').type, GGMLType.F32);
  assert.equal(getNumber(file.metadata, 'general.file_type'), 7);

  const fp8 = join(dir, 'fp8.gguf');
  await quantize([stories, fp8, '--scheme', 'fp8-e4m3-channel', '--calibrate', 'kl', '--act-format', 'fp8-e4m3', '-f', text, '-c', '32', '--chunks', '2']);
  const simulated = loadGGUF(fp8);
  assert.equal(simulated.tensor('blk.0.ffn_down.weight').type, GGMLType.F32);
  assert.equal(getString(simulated.metadata, 'kiln.quant.activation.format'), 'fp8-e4m3');
  const tensors = getArray<string>(simulated.metadata, 'kiln.quant.activation.tensors')!;
  const clips = getArray<number>(simulated.metadata, 'kiln.quant.activation.clip')!;
  assert.equal(tensors.length, 5 * 7 + 1);
  assert.ok(clips.every((c) => c > 0));
});

test('--target-bpw 9 on stories260K (random calibration tokens) stays within 9 bits per weight', async () => {
  const out = join(dir, 'bpw.gguf');
  const line = await quantize([stories, out, '--target-bpw', '9', '-c', '16', '--chunks', '1']);
  const bpw = Number(/\(([0-9.]+) bits per weight\)/.exec(line)![1]);
  assert.ok(bpw <= 9 && bpw > 8, line);
  const file = loadGGUF(out);
  assert.equal(getNumber(file.metadata, 'general.file_type'), 1024);
  const bits = file.tensorInfos.reduce((s, t) => s + 8 * t.nBytes, 0) / file.tensorInfos.reduce((s, t) => s + t.nElements, 0);
  assert.ok(bits <= 9, `file ${bits} bits per weight`);
  assert.equal(file.tensor('blk.0.ffn_down.weight').type, GGMLType.F16); // rows of 172: the only candidate that fits
});

test('usage errors of the PTQ options (status 2, saying what is wrong)', async () => {
  const out = join(dir, 'never.gguf');
  for (const [argv, message] of [
    [[kq, out, 'Q8_0', '--scheme', 'int8'], /with --scheme or --target-bpw: kiln quantize IN\.gguf OUT\.gguf \(no TYPE\)/],
    [[kq, out, '--scheme', 'int5'], /int5/],
    [[kq, out, '--scheme', 'int8', '--calibrate', 'kl'], /needs a calibration text/],
    [[kq, out, '--scheme', 'int8', '--target-bpw', '4'], /--scheme and --target-bpw do not go together/],
    [[kq, out, '--target-bpw', '-1'], /--target-bpw must be positive/],
    [[kq, out, '--scheme', 'int8', '--calibrate', 'percentile', '--percentile', '150', '-f', text], /--percentile must be in/],
    [[kq, out, '--target-bpw', '6', '--chunks', '0'], /option '--chunks <n>' argument '0' is invalid/],
    [[kq, out, '--scheme', 'int8', '--calibrate', 'mse'], /argument 'mse' is invalid. Allowed choices are/],
  ] as const) {
    const { status, stderr } = await kiln('quantize', ...argv);
    assert.equal(status, 2, argv.join(' '));
    assert.match(stderr, message, argv.join(' '));
  }
});
