// `kiln info`'s architecture section: the typed hyper-parameters each architecture reads, and its KV cache per token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { infoJSON, infoText, summarizeArchitecture } from '../../src/cli/commands/info.js';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { metaString } from '../../src/gguf/writer.js';
import { Model } from '../../src/generate/model.js';

const fixture = (name: string) => sharedPath('conformance', 'models', `${name}.gguf`);

interface ArchitectureJSON {
  name: string;
  hparams: Record<string, unknown> & { rope?: Record<string, unknown> };
  cache_row: { keys: number; values: number };
  kv_cache_f16_bytes_per_token: number;
  note: string | null;
}
const architecture = (name: string) => (infoJSON(fixture(name), readGGUFHeader(fixture(name)), false) as { architecture: ArchitectureJSON }).architecture;

test('--json: every architecture\'s own hyper-parameters, and the KV cache per token its Model allocates', () => {
  for (const name of ['gpt2-f16', 'bert-f16', 'gemma2-f32', 'phi3-f32', 'deepseek2-f32', 'qwen2-f16']) {
    const a = architecture(name);
    const model = Model.load(fixture(name));
    assert.equal(a.name, model.hparams.arch);
    assert.deepEqual(Object.keys(a.hparams), Object.keys(model.hparams).filter((k) => (model.hparams as unknown as Record<string, unknown>)[k] !== undefined), name);
    assert.equal(a.kv_cache_f16_bytes_per_token, 2 * model.cacheValuesPerPosition, name);
    assert.equal(a.note, null);
  }
  const gemma2 = architecture('gemma2-f32');
  assert.deepEqual([gemma2.hparams.attnSoftcap, gemma2.hparams.finalSoftcap, gemma2.hparams.slidingWindow], [10, 20, 8]);
  assert.deepEqual([gemma2.hparams.keyLength, gemma2.hparams.rmsEps, gemma2.hparams.rope!.neox], [32, 1e-6, true]);
  const deepseek2 = architecture('deepseek2-f32');
  assert.deepEqual([deepseek2.hparams.qLoraRank, deepseek2.hparams.kvLoraRank, deepseek2.hparams.rope!.nDims], [32, 16, 8]);
  assert.deepEqual(deepseek2.cache_row, { keys: 24, values: 0 });
  assert.equal(architecture('bert-f16').hparams.pooling, 'mean');
  assert.equal(architecture('phi3-f32').hparams.slidingWindow, 8);
});

test('text: the hyper-parameters by name, rope settings flattened, and the cache row behind the per-token figure', () => {
  const text = infoText('phi3-f32.gguf', readGGUFHeader(fixture('phi3-f32')), false);
  assert.match(text, /\narchitecture: phi3, hyper-parameters as kiln reads them\n/);
  assert.match(text, /\n {2}headDim +16\n/);
  assert.match(text, /\n {2}rope\.neox +true\n/);
  assert.match(text, /KV cache per token \(F16\): 256 bytes = 2 layers × \(32 keys \+ 32 values\) × 2 B/);
  const deepseek2 = infoText('deepseek2-f32.gguf', readGGUFHeader(fixture('deepseek2-f32')), false);
  assert.match(deepseek2, /\n {2}kvLoraRank +16\n/);
  assert.match(deepseek2, /KV cache per token \(F16\): 96 bytes = 2 layers × 24 values \(one row for keys and values\) × 2 B/);
  assert.match(deepseek2, /KV cache \(F16\): 98,304 bytes/); // the memory section's 1k-token figure agrees
});

test('an architecture kiln does not know shows its base hyper-parameters and says so', () => {
  const header = readGGUFHeader(fixture('kq-f32'));
  const metadata = new Map([...header.metadata].map(([key, v]) => [key.replace(/^llama\./, 'mpt.'), v]));
  metadata.set('general.architecture', metaString('mpt'));
  const a = summarizeArchitecture(metadata);
  assert.equal(a.name, 'mpt');
  assert.match(a.note!, /kiln does not know the mpt architecture/);
  assert.equal(a.hparams!.headCountKv, 2);
  assert.equal(a.kvCacheBytesPerToken, 2 * 2 * 128 * 2);
  assert.match(infoText('mpt.gguf', { ...header, metadata }, false), /\narchitecture: mpt, hyper-parameters as kiln reads them\n {2}note: kiln does not know/);
});
