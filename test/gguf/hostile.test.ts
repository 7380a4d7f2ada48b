// Malformed GGUF files, built with the writer and patched or built by hand: the reader must answer each with a
// GGUFError carrying the right code (never another exception, a hang or an allocation sized by a bogus number),
// both for bytes in memory (parseGGUF) and for a file on disk (readGGUFHeader).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseGGUF, readGGUFHeader } from '../../src/gguf/reader.js';
import { GGUFError, GGUFValueType, type GGUFErrorCode, type GGUFHeader } from '../../src/gguf/types.js';
import { serializeGGUF, metaArray, metaBool, metaString, metaU32, metaU8 } from '../../src/gguf/writer.js';
import { GGMLType } from '../../src/tensor/ggml-type.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const onDisk = join(dir, 'hostile.gguf');

// ---- little-endian building blocks ----
const utf8 = new TextEncoder();
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
function u32(n: number): Uint8Array { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; }
function u64(n: number | bigint): Uint8Array { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; }
/** a GGUF string: u64 length + bytes */
const str = (s: string): Uint8Array => cat(u64(utf8.encode(s).length), utf8.encode(s));
const fileHeader = (tensorCount: number | bigint, kvCount: number | bigint): Uint8Array =>
  cat(utf8.encode('GGUF'), u32(3), u64(tensorCount), u64(kvCount));

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error('needle not found');
}
/** A copy of `bytes` with `replacement` written at `at`. */
function patched(bytes: Uint8Array, at: number, replacement: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  copy.set(replacement, at);
  return copy;
}

// ---- a small valid file: tensor.a F32 [4, 2] at data offset 0, tensor.b Q8_0 [32] at 32 (34 bytes) ----
const small = serializeGGUF({
  metadata: new Map([
    ['general.architecture', metaString('llama')],
    ['general.alignment', metaU32(32)],
    ['test.flag', metaBool(true)],
    ['test.list', metaArray(GGUFValueType.STRING, ['a', 'bc'])],
    ['test.nest', metaArray(GGUFValueType.ARRAY, [metaArray(GGUFValueType.UINT8, [1, 2])])],
    ['test.byte', metaU8(7)],
  ]),
  tensors: [
    { name: 'tensor.a', dims: [4, 2], type: GGMLType.F32, data: new Uint8Array(32).fill(1) },
    { name: 'tensor.b', dims: [32], type: GGMLType.Q8_0, data: new Uint8Array(34).fill(2) },
  ],
});
const smallHeader = parseGGUF(small);
const dataOffset = smallHeader.dataOffset;
// where fields of the small file lie
const keyAt = (key: string): number => indexOf(small, str(key));
const valueAt = (key: string): number => keyAt(key) + str(key).length + 4; // after key and u32 type
const infoA = indexOf(small, str('tensor.a'));
const infoB = indexOf(small, str('tensor.b'));
const nameLength = str('tensor.a').length;
const dimsA = infoA + nameLength + 4;
const typeB = infoB + nameLength + 4 + 8;
const offsetB = typeB + 4;
const infosEnd = offsetB + 8;

function readBoth(bytes: Uint8Array): Array<[string, () => GGUFHeader]> {
  return [
    ['parseGGUF', () => parseGGUF(bytes)],
    ['readGGUFHeader', () => { writeFileSync(onDisk, bytes); return readGGUFHeader(onDisk); }],
  ];
}

/** Asserts that both readers refuse `bytes` with a GGUFError whose code is one of `codes`. */
function refuses(bytes: Uint8Array, codes: GGUFErrorCode | GGUFErrorCode[], what: string): void {
  const allowed = Array.isArray(codes) ? codes : [codes];
  for (const [how, read] of readBoth(bytes)) {
    let error: unknown;
    try { read(); } catch (e) { error = e; }
    assert.ok(error !== undefined, `${what} (${how}): read without error`);
    assert.ok(error instanceof GGUFError, `${what} (${how}): escaped as ${String(error)}`);
    assert.ok(allowed.includes(error.code), `${what} (${how}): ${error.code} "${error.message}", expected ${allowed.join(' or ')}`);
  }
}

test('the small file itself reads back', () => {
  for (const [, read] of readBoth(small)) {
    const h = read();
    assert.deepEqual(h.tensors.map((t) => [t.name, t.offset, t.nBytes]), [['tensor.a', 0, 32], ['tensor.b', 32, 34]]);
    assert.equal(h.metadata.get('test.byte')?.value, 7);
  }
  assert.equal(small.length, dataOffset + 96);
});

test('truncation at every byte of the header', { timeout: 600_000 }, () => {
  for (let cut = 0; cut < dataOffset; cut++) {
    const bytes = small.subarray(0, cut);
    // before the counts are complete nothing but TRUNCATED makes sense; later a count may no longer fit
    // the bytes left; in the padding after the tensor infos the tensors lie beyond the end of the file
    const expected: GGUFErrorCode[] = cut < 24 ? ['TRUNCATED'] : cut < infosEnd ? ['TRUNCATED', 'ABSURD_COUNT'] : ['TENSOR_OUT_OF_BOUNDS'];
    refuses(bytes, expected, `cut at ${cut}`);
  }
});

test('truncation inside the data section', () => {
  const endOfB = dataOffset + 32 + 34;
  for (let cut = dataOffset; cut < endOfB; cut++) refuses(small.subarray(0, cut), 'TENSOR_OUT_OF_BOUNDS', `cut at ${cut}`);
  // only the last tensor's trailing padding is missing: every tensor is still there
  for (let cut = endOfB; cut < small.length; cut++) assert.equal(parseGGUF(small.subarray(0, cut)).tensors.length, 2);
});

test('bad magic and unsupported versions', () => {
  refuses(patched(small, 0, utf8.encode('GGML')), 'BAD_MAGIC', 'magic GGML');
  refuses(new Uint8Array(0), 'TRUNCATED', 'empty file');
  for (const version of [0, 1, 4, 0xffffffff]) refuses(patched(small, 4, u32(version)), 'UNSUPPORTED_VERSION', `version ${version}`);
});

test('absurd counts and lengths', () => {
  refuses(patched(small, 8, u64(2n ** 63n)), 'ABSURD_COUNT', 'tensor count 2^63');
  refuses(patched(small, 8, u64(2n ** 40n)), 'ABSURD_COUNT', 'tensor count 2^40');
  refuses(patched(small, 16, u64(2n ** 40n)), 'ABSURD_COUNT', 'kv count 2^40');
  refuses(patched(small, 16, u64(2n ** 64n - 1n)), 'ABSURD_COUNT', 'kv count 2^64-1');
  refuses(patched(small, 24, u64(2n ** 62n)), 'ABSURD_COUNT', 'key length 2^62');
  refuses(patched(small, 24, u64(2n ** 40n)), 'TRUNCATED', 'key length 2^40');
  refuses(patched(small, valueAt('general.architecture'), u64(2n ** 62n)), 'ABSURD_COUNT', 'string value length 2^62');
  refuses(patched(small, infoA, u64(2n ** 62n)), 'ABSURD_COUNT', 'tensor name length 2^62');
  refuses(patched(small, valueAt('test.list') + 4, u64(2n ** 50n)), 'ABSURD_COUNT', 'array count 2^50');
  refuses(patched(small, valueAt('test.list') + 4, u64(2n ** 63n)), 'ABSURD_COUNT', 'array count 2^63');
  refuses(patched(small, valueAt('test.nest') + 4, u64(2n ** 50n)), 'ABSURD_COUNT', 'array-of-arrays count 2^50');
  refuses(patched(small, valueAt('test.nest') + 4 + 8 + 4, u64(2n ** 50n)), 'ABSURD_COUNT', 'inner array count 2^50');
});

test('nested array bombs', { timeout: 600_000 }, () => {
  const arrayKV = (key: string, body: Uint8Array): Uint8Array => cat(fileHeader(0, 1), str(key), u32(GGUFValueType.ARRAY), body);
  // 100,000 levels of array-of-one-array: refused at the nesting limit, without recursing 100,000 deep
  const level = cat(u32(GGUFValueType.ARRAY), u64(1));
  const deep = new Uint8Array(level.length * 100_000).map((_, i) => level[i % level.length]);
  refuses(arrayKV('bomb.deep', cat(deep, u32(GGUFValueType.UINT8), u64(0))), 'BAD_VALUE_TYPE', 'deep nesting');
  // an array claiming 2^40 arrays, and 1000 arrays each claiming 2^40 bytes
  refuses(arrayKV('bomb.wide', cat(u32(GGUFValueType.ARRAY), u64(2n ** 40n))), 'ABSURD_COUNT', 'wide array of arrays');
  const claim = cat(u32(GGUFValueType.UINT8), u64(2n ** 40n));
  const claims = new Uint8Array(claim.length * 1000).map((_, i) => claim[i % claim.length]);
  refuses(arrayKV('bomb.fan', cat(u32(GGUFValueType.ARRAY), u64(1000), claims)), 'ABSURD_COUNT', 'fan of huge arrays');
  // 8 levels are allowed, 9 are not
  const nested = (levels: number) => cat(...Array.from({ length: levels - 1 }, () => level), u32(GGUFValueType.UINT8), u64(1), new Uint8Array([5]));
  assert.equal(parseGGUF(arrayKV('ok', nested(8))).metadata.size, 1);
  refuses(arrayKV('too.deep', nested(9)), 'BAD_VALUE_TYPE', '9 levels');
});

test('bad metadata values', () => {
  const typeOf = (key: string) => keyAt(key) + str(key).length;
  refuses(patched(small, typeOf('test.byte'), u32(13)), 'BAD_VALUE_TYPE', 'value type 13');
  refuses(patched(small, valueAt('test.list'), u32(99)), 'BAD_VALUE_TYPE', 'array item type 99');
  refuses(patched(small, valueAt('test.flag'), new Uint8Array([2])), 'BAD_VALUE_TYPE', 'bool byte 2');
  refuses(patched(small, valueAt('test.flag'), new Uint8Array([0xff])), 'BAD_VALUE_TYPE', 'bool byte 255');
  refuses(patched(small, valueAt('general.architecture') + 8, new Uint8Array([0xff])), 'BAD_STRING', 'invalid UTF-8 value');
  refuses(patched(small, valueAt('general.architecture') + 8, new Uint8Array([0xed, 0xa0, 0x80])), 'BAD_STRING', 'UTF-8 surrogate');
  refuses(patched(small, valueAt('general.architecture') + 8, new Uint8Array([0xc0, 0x80])), 'BAD_STRING', 'overlong UTF-8');
  refuses(patched(small, keyAt('test.flag') + 8, new Uint8Array([0xc3])), 'BAD_STRING', 'invalid UTF-8 key');
  refuses(patched(small, valueAt('test.list') + 12 + 8, new Uint8Array([0x80])), 'BAD_STRING', 'invalid UTF-8 array item');
  refuses(patched(small, infoA + 8, new Uint8Array([0xfe])), 'BAD_STRING', 'invalid UTF-8 tensor name');
});

test('bad general.alignment', () => {
  const at = valueAt('general.alignment');
  for (const a of [0, 3, 48, 0x80000001]) refuses(patched(small, at, u32(a)), 'BAD_ALIGNMENT', `alignment ${a}`);
  refuses(patched(small, at - 4, u32(GGUFValueType.INT32)), 'BAD_ALIGNMENT', 'alignment as i32');
  refuses(patched(small, at - 4, u32(GGUFValueType.FLOAT32)), 'BAD_ALIGNMENT', 'alignment as f32');
  const asString = cat(fileHeader(0, 1), str('general.alignment'), u32(GGUFValueType.STRING), str('32'));
  refuses(asString, 'BAD_ALIGNMENT', 'alignment as string');
  const asU64 = cat(fileHeader(0, 1), str('general.alignment'), u32(GGUFValueType.UINT64), u64(32));
  refuses(asU64, 'BAD_ALIGNMENT', 'alignment as u64');
});

test('duplicate keys and tensor names', () => {
  refuses(patched(small, keyAt('test.list'), str('test.flag')), 'DUPLICATE_NAME', 'duplicate key');
  refuses(patched(small, infoB, str('tensor.a')), 'DUPLICATE_NAME', 'duplicate tensor name');
});

test('bad tensor shapes and types', () => {
  refuses(patched(small, dimsA - 4, u32(0)), 'BAD_DIMS', 'n_dims 0');
  refuses(patched(small, dimsA - 4, u32(5)), 'BAD_DIMS', 'n_dims 5');
  refuses(patched(small, dimsA - 4, u32(0xffffffff)), 'BAD_DIMS', 'n_dims 2^32-1');
  refuses(patched(small, dimsA, cat(u64(2n ** 32n), u64(2n ** 32n))), 'BAD_DIMS', 'dims product 2^64');
  refuses(patched(small, dimsA, cat(u64(2n ** 52n), u64(3))), 'BAD_DIMS', 'dims product beyond 2^53');
  refuses(patched(small, dimsA, u64(2n ** 63n)), 'ABSURD_COUNT', 'ne[0] = 2^63');
  refuses(patched(small, dimsA, cat(u64(2n ** 26n), u64(2n ** 26n))), 'BAD_DIMS', '2^52 values, 2^54 bytes');
  refuses(patched(small, dimsA, cat(u64(2n ** 26n), u64(2n ** 20n))), 'TENSOR_OUT_OF_BOUNDS', '2^46 values');
  refuses(patched(small, typeB - 8, u64(33)), 'BAD_DIMS', 'row not a multiple of the block size');
  refuses(patched(small, typeB, u32(99)), 'UNKNOWN_TENSOR_TYPE', 'type 99');
  refuses(patched(small, typeB, u32(4)), 'UNKNOWN_TENSOR_TYPE', 'removed type Q4_2');
});

test('bad tensor offsets', () => {
  refuses(patched(small, offsetB, u64(33)), 'MISALIGNED_TENSOR', 'offset 33');
  refuses(patched(small, offsetB, u64(64)), 'TENSOR_OUT_OF_BOUNDS', 'offset past the end');
  refuses(patched(small, offsetB, u64(1 << 30)), 'TENSOR_OUT_OF_BOUNDS', 'offset 2^30');
  refuses(patched(small, offsetB, u64(2n ** 52n)), 'TENSOR_OUT_OF_BOUNDS', 'offset 2^52');
  refuses(patched(small, offsetB, u64(2n ** 63n)), 'ABSURD_COUNT', 'offset 2^63');
  refuses(patched(small, offsetB, u64(0)), 'OVERLAPPING_TENSORS', 'both tensors at 0');
});

test('readGGUFHeader on paths that are not GGUF files', () => {
  for (const path of [join(dir, 'does-not-exist.gguf'), dir]) {
    assert.throws(() => readGGUFHeader(path), (e) => e instanceof GGUFError && e.code === 'IO', path);
  }
});
