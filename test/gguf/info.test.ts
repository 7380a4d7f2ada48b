// `kiln info` on stories260K.gguf (llama: 5 layers, 8 heads, 4 KV heads, embedding 64, 48 F32 tensors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { kvCacheBytesPer1kTokens } from '../../src/cli/commands/info.js';
import { GGUFValueType, type GGUFValue } from '../../src/gguf/types.js';
import { metaArray, metaString, metaU32 } from '../../src/gguf/writer.js';
import { kiln } from '../helpers/cli.js';

const STORIES = sharedPath('data/models/stories260K.gguf');

/** What `kiln info ARGS` prints. */
async function info(...argv: string[]): Promise<string> {
  const { stdout, stderr, status } = await kiln('info', ...argv);
  assert.equal(status, 0, stderr);
  return stdout;
}

// 2 (K and V) × 5 layers × 4 KV heads × head_dim 64/8 × 1024 tokens × 2 bytes
const STORIES_KV_BYTES = 2 * 5 * 4 * 8 * 1024 * 2;

test('text report: file, summarized metadata, tensor table and memory figures', async () => {
  const text = await info(STORIES);
  assert.match(text, /GGUF v3, 1,185,376 bytes/);
  assert.match(text, /metadata: 19 keys/);
  assert.match(text, /tokenizer\.ggml\.tokens +array +\[512 strings: "<unk>", "<s>", "<\/s>", \.\.\.\]/);
  assert.match(text, /llama\.attention\.layer_norm_rms_epsilon +f32 +0\.00001\n/);
  assert.match(text, /tensors: 48\n/);
  assert.match(text, /token_embd\.weight +F32 +\[64, 512\] +131,072\n/);
  assert.match(text, /blk\.4\.ffn_down\.weight +F32 +\[172, 64\] +44,032\n/);
  assert.match(text, /F32 +48 tensors +292,800 params +1,171,200 bytes +32\.00 bits\/weight/);
  assert.match(text, /parameters: 292,800/);
  assert.match(text, new RegExp(`KV cache \\(F16\\): ${STORIES_KV_BYTES.toLocaleString('en-US')} bytes`));
  assert.equal(STORIES_KV_BYTES, 655_360);
});

test('--all prints arrays in full', async () => {
  const line = (await info(STORIES, '--all')).split('\n').find((l) => l.includes('tokenizer.ggml.tokens'))!;
  assert.equal(line.match(/", "/g)?.length, 511);
});

test('--json prints one object with the same figures', async () => {
  const report = JSON.parse(await info(STORIES, '--json'));
  assert.equal(report.version, 3);
  assert.equal(report.file_size, 1_185_376);
  assert.equal(report.tensors.length, 48);
  assert.deepEqual(report.tensors[0], { name: 'token_embd.weight', type: 'F32', shape: [64, 512], bytes: 131_072 });
  assert.equal(report.memory.parameters, 292_800);
  assert.equal(report.memory.tensor_bytes, 1_171_200);
  assert.equal(report.memory.bits_per_weight, 32);
  assert.deepEqual(report.memory.by_type, [{ type: 'F32', tensors: 48, parameters: 292_800, bytes: 1_171_200, bits_per_weight: 32 }]);
  assert.equal(report.memory.kv_cache_f16_bytes_per_1k_tokens, STORIES_KV_BYTES);
  assert.equal(report.metadata['llama.block_count'], 5);
  assert.deepEqual(report.metadata['tokenizer.ggml.tokens'], { item_type: 'string', count: 512, first: ['<unk>', '<s>', '</s>'] });
  const full = JSON.parse(await info(STORIES, '--json', '--all'));
  assert.equal(full.metadata['tokenizer.ggml.tokens'].length, 512);
  assert.deepEqual(full.metadata['tokenizer.ggml.tokens'].slice(0, 3), report.metadata['tokenizer.ggml.tokens'].first);
});

test('KV cache estimate from per-layer head counts and explicit key/value lengths', () => {
  const meta = (entries: [string, GGUFValue][]) => new Map<string, GGUFValue>([['general.architecture', metaString('x')], ...entries]);
  const perLayer = meta([
    ['x.block_count', metaU32(3)], ['x.embedding_length', metaU32(128)], ['x.attention.head_count', metaU32(4)],
    ['x.attention.head_count_kv', metaArray(GGUFValueType.INT32, [1, 2, 4])],
  ]);
  assert.equal(kvCacheBytesPer1kTokens(perLayer), (1 + 2 + 4) * (32 + 32) * 1024 * 2);
  const explicit = meta([
    ['x.block_count', metaU32(2)], ['x.attention.head_count', metaU32(4)],
    ['x.attention.key_length', metaU32(24)], ['x.attention.value_length', metaU32(16)],
  ]);
  assert.equal(kvCacheBytesPer1kTokens(explicit), 2 * 4 * (24 + 16) * 1024 * 2);
  assert.equal(kvCacheBytesPer1kTokens(meta([['x.block_count', metaU32(2)]])), null);
  assert.equal(kvCacheBytesPer1kTokens(meta([['x.block_count', metaString('two')], ['x.attention.head_count', metaU32(4)]])), null);
});

test('bad invocations: no FILE is a usage error (status 2); a folder is an IO error (status 1)', async () => {
  const missing = await kiln('info');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /error: missing required argument 'FILE'/);
  const folder = await kiln('info', sharedPath('data'));
  assert.equal(folder.status, 1);
  assert.match(folder.stderr, /^kiln info: .*is not a regular file/);
});
