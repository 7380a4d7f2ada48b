// Every GGUF file in the shared data, re-serialized from its parsed header and tensor bytes, must come back
// byte for byte; and the writer's own values (every type, nested arrays) must read back unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { sharedPath } from '../shared.js';
import { parseGGUF } from '../../src/gguf/reader.js';
import { GGUFError, GGUFValueType, type GGUFHeader, type GGUFValue } from '../../src/gguf/types.js';
import {
  serializeGGUF, writeGGUF, metaArray, metaBool, metaF32, metaF64, metaI16, metaI32, metaI64, metaI8, metaString,
  metaU16, metaU32, metaU64, metaU8, type GGUFWriteInput,
} from '../../src/gguf/writer.js';
import { GGMLType } from '../../src/tensor/ggml-type.js';

function ggufFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return ggufFiles(path);
    return name.endsWith('.gguf') ? [path] : [];
  });
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** What the writer needs to reproduce a parsed file: its header and a view of each tensor's bytes. */
function writeInputOf(header: GGUFHeader, file: Uint8Array): GGUFWriteInput {
  return {
    version: header.version,
    metadata: header.metadata,
    tensors: header.tensors.map((t) => ({
      name: t.name, dims: t.dims, type: t.type,
      data: file.subarray(header.dataOffset + t.offset, header.dataOffset + t.offset + t.nBytes),
    })),
  };
}

const files = ['conformance/models', 'conformance/tokenizers', 'data/models'].flatMap((d) => ggufFiles(sharedPath(d)));
// an old vocab file whose metadata holds general.file_type twice; llama.cpp's loader refuses it as well
const DUPLICATE_KEY_FILE = 'ggml-vocab-dbrx.gguf';

test('every shared GGUF file re-serializes byte-identically', () => {
  assert.ok(files.length >= 40, `expected the shared GGUF files, found ${files.length}`);
  for (const path of files) {
    const bytes = readFileSync(path);
    if (path.endsWith(DUPLICATE_KEY_FILE)) {
      assert.throws(() => parseGGUF(bytes), (e) => e instanceof GGUFError && e.code === 'DUPLICATE_NAME', path);
      continue;
    }
    const again = serializeGGUF(writeInputOf(parseGGUF(bytes), bytes));
    assert.equal(again.length, bytes.length, path);
    assert.equal(sha256(again), sha256(bytes), path);
  }
});

test('writeGGUF streams the same bytes as serializeGGUF, atomically, reporting progress', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-gguf-'));
  try {
    for (const name of ['data/models/stories260K.gguf', 'conformance/tokenizers/ggml-vocab-gpt-2.gguf']) {
      const bytes = readFileSync(sharedPath(name));
      const out = join(dir, 'out.gguf');
      const progress: number[] = [];
      let total = 0;
      await writeGGUF(out, writeInputOf(parseGGUF(bytes), bytes), { onProgress: (done, all) => { progress.push(done); total = all; } });
      assert.equal(sha256(readFileSync(out)), sha256(bytes), name);
      assert.equal(existsSync(`${out}.tmp`), false);
      assert.equal(total, bytes.length);
      assert.equal(progress.at(-1), bytes.length);
      assert.ok(progress.every((p, i) => i === 0 || p > progress[i - 1]), 'progress only grows');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed writeGGUF leaves neither the target nor the temporary file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-gguf-'));
  try {
    const out = join(dir, 'bad.gguf');
    const bad: GGUFWriteInput = { metadata: new Map(), tensors: [{ name: 'w', dims: [4], type: GGMLType.F32, data: new Uint8Array(15) }] };
    await assert.rejects(writeGGUF(out, bad), (e) => e instanceof GGUFError && e.code === 'BAD_TENSOR_DATA');
    await assert.rejects(writeGGUF(join(dir, 'missing-dir', 'x.gguf'), { metadata: new Map(), tensors: [] }),
      (e) => e instanceof GGUFError && e.code === 'IO');
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every metadata type and nested arrays read back unchanged', () => {
  const metadata = new Map<string, GGUFValue>([
    ['t.u8', metaU8(255)], ['t.i8', metaI8(-128)], ['t.u16', metaU16(65535)], ['t.i16', metaI16(-32768)],
    ['t.u32', metaU32(4294967295)], ['t.i32', metaI32(-2147483648)], ['t.u64', metaU64(2n ** 64n - 1n)],
    ['t.i64', metaI64(-(2n ** 63n))], ['t.f32', metaF32(0.5)], ['t.f64', metaF64(Math.PI)], ['t.bool', metaBool(true)],
    ['t.string', metaString('héllo ✓ 🔥')], ['t.bom', metaString('\uFEFF')], ['t.empty', metaArray(GGUFValueType.STRING, [])],
    ['t.nested', metaArray(GGUFValueType.ARRAY, [
      metaArray(GGUFValueType.INT32, [1, -2, 3]),
      metaArray(GGUFValueType.ARRAY, [metaArray(GGUFValueType.STRING, ['a', 'bc'])]),
    ])],
  ]);
  const data = new Uint8Array(34).map((_, i) => i + 1);
  const bytes = serializeGGUF({ version: 2, metadata, alignment: 64, tensors: [
    { name: 'a', dims: [3], type: GGMLType.I8, data: data.subarray(0, 3) },
    { name: 'q', dims: [32, 1], type: GGMLType.Q8_0, data },
  ] });
  const header = parseGGUF(bytes);
  assert.equal(header.version, 2);
  assert.equal(header.alignment, 64);
  assert.deepEqual([...header.metadata.keys()], [...metadata.keys(), 'general.alignment']);
  for (const [key, value] of metadata) assert.deepEqual(header.metadata.get(key), value, key);
  assert.deepEqual(header.tensors.map((t) => [t.name, t.offset, t.nBytes]), [['a', 0, 3], ['q', 64, 34]]);
  assert.equal(header.dataOffset % 64, 0);
  assert.equal(bytes.length, header.dataOffset + 128);
  assert.deepEqual(bytes.subarray(header.dataOffset + 64, header.dataOffset + 98), data);
  assert.ok(bytes.subarray(header.dataOffset + 3, header.dataOffset + 64).every((b) => b === 0), 'padding is zero');
});

test('the writer refuses input that its reader would refuse', () => {
  const f32 = (name: string, dims: number[], n = dims.reduce((a, b) => a * b, 1) * 4) => ({ name, dims, type: GGMLType.F32, data: new Uint8Array(n) });
  const refuses = (input: Partial<GGUFWriteInput>, code: string) => assert.throws(
    () => serializeGGUF({ metadata: new Map(), tensors: [], ...input }),
    (e) => e instanceof GGUFError && e.code === code, code);
  refuses({ version: 1 }, 'UNSUPPORTED_VERSION');
  refuses({ alignment: 24 }, 'BAD_ALIGNMENT');
  refuses({ metadata: new Map([['general.alignment', metaU32(64)]]), alignment: 32 }, 'BAD_ALIGNMENT');
  refuses({ metadata: new Map([['general.alignment', metaU64(32)]]) }, 'BAD_ALIGNMENT');
  refuses({ metadata: new Map([['k', metaU8(256)]]) }, 'BAD_VALUE_TYPE');
  refuses({ metadata: new Map([['k', metaU32(1.5)]]) }, 'BAD_VALUE_TYPE');
  refuses({ metadata: new Map([['k', metaArray(GGUFValueType.STRING, ['a', 3] as string[])]]) }, 'BAD_VALUE_TYPE');
  refuses({ metadata: new Map([['k', metaArray(GGUFValueType.ARRAY, ['a'])]]) }, 'BAD_VALUE_TYPE');
  refuses({ metadata: new Map([['k', metaArray(GGUFValueType.UINT64, [metaU64(1)] as unknown as bigint[])]]) }, 'BAD_VALUE_TYPE');
  refuses({ metadata: new Map([['k', metaString('a\uD800b')]]) }, 'BAD_STRING');
  refuses({ metadata: new Map([['k\uDC00', metaU8(1)]]) }, 'BAD_STRING');
  refuses({ tensors: [f32('w\uD800', [2])] }, 'BAD_STRING');
  let deep = metaArray(GGUFValueType.UINT8, []);
  for (let i = 0; i < 8; i++) deep = metaArray(GGUFValueType.ARRAY, [deep]);
  refuses({ metadata: new Map([['k', deep]]) }, 'BAD_VALUE_TYPE');
  refuses({ tensors: [f32('w', [2]), f32('w', [2])] }, 'DUPLICATE_NAME');
  refuses({ tensors: [f32('w', [])] }, 'BAD_DIMS');
  refuses({ tensors: [f32('w', [1, 1, 1, 1, 1])] }, 'BAD_DIMS');
  refuses({ tensors: [{ ...f32('w', [2]), type: 99 as GGMLType }] }, 'UNKNOWN_TENSOR_TYPE');
  refuses({ tensors: [{ name: 'q', dims: [16], type: GGMLType.Q4_0, data: new Uint8Array(9) }] }, 'BAD_DIMS');
  refuses({ tensors: [f32('w', [2], 7)] }, 'BAD_TENSOR_DATA');
});
