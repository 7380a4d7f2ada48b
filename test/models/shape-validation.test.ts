// Load-time shape checks: in each architecture's fixture, one tensor's dims are permuted (same byte size, so the
// container is still valid) — loading must fail with a TensorShapeError naming the tensor and both shapes, and
// `kiln serve` on such a file must exit non-zero before it listens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { serializeGGUF } from '../../src/gguf/writer.js';
import { Model } from '../../src/generate/model.js';
import { TensorShapeError } from '../../src/models/architecture.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';

const CASES: [file: string, tensor: string][] = [
  ['kq-f32.gguf', 'blk.1.ffn_down.weight'],
  ['qwen2-f16.gguf', 'blk.0.attn_q.bias'],
  ['moe-f32.gguf', 'blk.1.ffn_down_exps.weight'],
  ['gpt2-f16.gguf', 'blk.1.attn_qkv.weight'],
  ['bert-f16.gguf', 'blk.0.ffn_up.weight'],
  ['gemma2-f32.gguf', 'blk.4.ffn_down.weight'],
  ['phi3-f32.gguf', 'blk.1.ffn_up.weight'],
  ['deepseek2-f32.gguf', 'blk.0.attn_kv_b.weight'],
];

const dir = mkdtempSync(join(tmpdir(), 'kiln-shapes-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** The fixture with `tensor`'s dims rotated ([a, b] → [b, a]; a vector [n] → [n/2, 2]), written to a temporary file. */
function corrupted(file: string, tensor: string): { path: string; dims: number[]; wrong: number[] } {
  const source = loadGGUF(sharedPath('conformance', 'models', file));
  const info = source.tensorInfos.find((t) => t.name === tensor);
  assert.ok(info, `${file} has ${tensor}`);
  const dims = [...info.dims];
  const wrong = dims.length === 1 ? [dims[0] / 2, 2] : [...dims.slice(1), dims[0]];
  const tensors = source.tensorInfos.map((t) => ({
    name: t.name, type: t.type, data: source.tensor(t.name).data, dims: t.name === tensor ? wrong : [...t.dims],
  }));
  const path = join(dir, `bad-${file}`);
  writeFileSync(path, serializeGGUF({ metadata: source.metadata, tensors, alignment: source.header.alignment }));
  return { path, dims, wrong };
}

for (const [file, tensor] of CASES) {
  test(`${file}: a misshapen ${tensor} fails at load with a TensorShapeError`, () => {
    const { path, dims, wrong } = corrupted(file, tensor);
    assert.throws(() => new Model(loadGGUF(path), new ReferenceBackend()), (error: unknown) => {
      assert.ok(error instanceof TensorShapeError, String(error));
      assert.equal(error.tensorName, tensor);
      assert.deepEqual(error.expected, dims);
      assert.deepEqual(error.actual, wrong);
      assert.match(error.message, new RegExp(`${tensor.replace(/\./g, '\\.')}.*\\[${wrong.join(', ')}\\].*\\[${dims.join(', ')}\\]`));
      return true;
    });
  });
}

test('kiln serve on a misshapen model exits non-zero before listening, naming the tensor', () => {
  const { path } = corrupted('gpt2-f16.gguf', 'blk.1.attn_qkv.weight');
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', 'serve', path, '--port', '0'], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /blk\.1\.attn_qkv\.weight/);
  assert.doesNotMatch(result.stderr, /http:\/\//);
});
