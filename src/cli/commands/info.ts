// `kiln info MODEL [--json] [--all]`: what a GGUF file holds (header, metadata, tensors) and what it costs in
// memory. Only the header is read, so this is instant even for a large model.

import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { readGGUFHeader } from '../../gguf/reader.js';
import { getArray, getNumber, getString, MetadataError, plainValue, type Metadata } from '../../gguf/metadata.js';
import { GGUFValueType, type GGUFHeader, type GGUFScalar, type GGUFValue } from '../../gguf/types.js';
import { typeName } from '../../tensor/ggml-type.js';
import { architectureOf } from '../../estimate/model.js';
import type { CacheRow } from '../../models/architecture.js';
import type { HParams } from '../../models/hparams.js';

/** Arrays longer than this are summarized unless --all is given. */
const ARRAY_SHOWN = 8;
/** Items shown at the head of a summarized array. */
const ARRAY_HEAD = 3;
/** Strings longer than this are cut in the text output unless --all is given. */
const STRING_SHOWN = 120;

const VALUE_TYPE_NAMES: Record<GGUFValueType, string> = {
  [GGUFValueType.UINT8]: 'u8', [GGUFValueType.INT8]: 'i8', [GGUFValueType.UINT16]: 'u16', [GGUFValueType.INT16]: 'i16',
  [GGUFValueType.UINT32]: 'u32', [GGUFValueType.INT32]: 'i32', [GGUFValueType.FLOAT32]: 'f32', [GGUFValueType.BOOL]: 'bool',
  [GGUFValueType.STRING]: 'string', [GGUFValueType.ARRAY]: 'array', [GGUFValueType.UINT64]: 'u64', [GGUFValueType.INT64]: 'i64',
  [GGUFValueType.FLOAT64]: 'f64',
};

export interface TypeTotals {
  type: string;
  tensors: number;
  parameters: number;
  bytes: number;
  bitsPerWeight: number;
}

export interface MemorySummary {
  parameters: number;
  tensorBytes: number;
  bitsPerWeight: number;
  /** per ggml type, largest share first */
  byType: TypeTotals[];
  /** F16 K and V for 1024 tokens of context; null when the metadata lacks the attention shape */
  kvCacheBytesPer1kTokens: number | null;
}

/** Σ over the first nLayer layers of `key`, which holds one number for every layer or an array of per-layer numbers. */
function sumOverLayers(meta: Metadata, key: string, nLayer: number): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type !== GGUFValueType.ARRAY) return nLayer * getNumber(meta, key)!;
  return getArray(meta, key)!.slice(0, nLayer).reduce<number>((sum, n) => sum + Number(n), 0);
}

/** The first layer's value of `key` (one number, or an array of per-layer numbers). */
function firstLayer(meta: Metadata, key: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined || v.type !== GGUFValueType.ARRAY) return getNumber(meta, key);
  const first = getArray(meta, key)![0];
  return first === undefined ? undefined : Number(first);
}

/**
 * F16 KV cache per token from the attention shape alone (for metadata kiln cannot read as an architecture):
 * Σ_layers n_head_kv × (key_length + value_length) × 2 B, which is 2 × n_layer × n_head_kv × head_dim × 2 B when keys
 * and values are head_dim = embedding_length / head_count wide. Null when the metadata does not give that shape.
 */
function attentionShapeKvBytesPerToken(meta: Metadata): number | null {
  try {
    const arch = getString(meta, 'general.architecture');
    const nLayer = arch === undefined ? undefined : getNumber(meta, `${arch}.block_count`);
    if (arch === undefined || nLayer === undefined) return null;
    const headsKV = sumOverLayers(meta, `${arch}.attention.head_count_kv`, nLayer) ?? sumOverLayers(meta, `${arch}.attention.head_count`, nLayer);
    const embedding = getNumber(meta, `${arch}.embedding_length`);
    const nHead = firstLayer(meta, `${arch}.attention.head_count`);
    const headDim = embedding === undefined || nHead === undefined ? undefined : embedding / nHead;
    const keyLength = getNumber(meta, `${arch}.attention.key_length`) ?? headDim;
    const valueLength = getNumber(meta, `${arch}.attention.value_length`) ?? headDim;
    if (headsKV === undefined || keyLength === undefined || valueLength === undefined) return null;
    const bytes = headsKV * (keyLength + valueLength) * 2;
    return Number.isFinite(bytes) ? bytes : null;
  } catch (e) {
    if (e instanceof MetadataError) return null; // a key of an unexpected type: the shape is unknown
    throw e;
  }
}

/** The file's architecture as kiln reads it. */
export interface ArchitectureSummary {
  /** `general.architecture` */
  name: string | null;
  /** the typed hyper-parameters the architecture's `hparams()` returns (the base ones where kiln does not know it); null when unreadable */
  hparams: HParams | null;
  /** f16 values one position takes in one layer's KV cache (the architecture's `cacheRow`) */
  cacheRow: CacheRow | null;
  /** f16 KV cache bytes one token takes over all layers */
  kvCacheBytesPerToken: number | null;
  /** what kiln had to assume, or why it could not read the hyper-parameters */
  note?: string;
}

export function summarizeArchitecture(meta: Metadata): ArchitectureSummary {
  try {
    const { hparams, cacheRow, note } = architectureOf(meta);
    return { name: hparams.arch, hparams, cacheRow, kvCacheBytesPerToken: 2 * hparams.blockCount * (cacheRow.keys + cacheRow.values), note };
  } catch (e) {
    if (!(e instanceof MetadataError)) throw e;
    const name = meta.get('general.architecture')?.value;
    return {
      name: typeof name === 'string' ? name : null, hparams: null, cacheRow: null, kvCacheBytesPerToken: attentionShapeKvBytesPerToken(meta),
      note: `kiln cannot read the hyper-parameters: ${e.message}`,
    };
  }
}

/** F16 KV cache for 1024 tokens of context: the architecture's per-token figure × 1024; null when unknown. */
export function kvCacheBytesPer1kTokens(meta: Metadata): number | null {
  const perToken = summarizeArchitecture(meta).kvCacheBytesPerToken;
  return perToken === null ? null : perToken * 1024;
}

export function summarizeMemory(header: GGUFHeader): MemorySummary {
  const byType = new Map<string, TypeTotals>();
  for (const t of header.tensors) {
    const name = typeName(t.type);
    const totals = byType.get(name) ?? { type: name, tensors: 0, parameters: 0, bytes: 0, bitsPerWeight: 0 };
    totals.tensors++;
    totals.parameters += t.nElements;
    totals.bytes += t.nBytes;
    byType.set(name, totals);
  }
  const bits = (bytes: number, n: number) => (n === 0 ? 0 : (bytes * 8) / n);
  for (const totals of byType.values()) totals.bitsPerWeight = bits(totals.bytes, totals.parameters);
  const parameters = header.tensors.reduce((n, t) => n + t.nElements, 0);
  const tensorBytes = header.tensors.reduce((n, t) => n + t.nBytes, 0);
  return {
    parameters, tensorBytes, bitsPerWeight: bits(tensorBytes, parameters),
    byType: [...byType.values()].sort((a, b) => b.bytes - a.bytes),
    kvCacheBytesPer1kTokens: kvCacheBytesPer1kTokens(header.metadata),
  };
}

// ---- values ----

/** An f32 shown with the fewest digits that read back as the same f32 (1e-5 rather than 0.000009999999747378752). */
function shortestF32(x: number): number {
  for (let digits = 1; digits < 9; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

/** a fraction shown as the f32 it was read from (1e-5); integers as they are */
const plainNumber = (v: unknown): unknown => (typeof v === 'number' && !Number.isInteger(v) ? shortestF32(v) : v);

function jsonScalar(type: GGUFValueType, s: GGUFScalar): unknown {
  if (type === GGUFValueType.FLOAT32 && typeof s === 'number') return shortestF32(s);
  return plainValue({ type, value: s } as GGUFValue);
}

function textScalar(type: GGUFValueType, s: GGUFScalar, all: boolean): string {
  if (typeof s === 'string') {
    const cut = !all && s.length > STRING_SHOWN;
    return cut ? `${JSON.stringify(s.slice(0, STRING_SHOWN))}… (${s.length.toLocaleString('en-US')} chars)` : JSON.stringify(s);
  }
  return String(jsonScalar(type, s));
}

function arrayLabel(v: Extract<GGUFValue, { type: GGUFValueType.ARRAY }>): string {
  const n = v.value.length;
  if (v.itemType === GGUFValueType.STRING) return `${n} strings`;
  if (v.itemType === GGUFValueType.ARRAY) return `${n} arrays`;
  return `${n} ${VALUE_TYPE_NAMES[v.itemType]} values`;
}

/** One metadata value as text; arrays longer than ARRAY_SHOWN become `[N strings: "a", "b", "c", ...]` unless `all`. */
function textValue(v: GGUFValue, all: boolean): string {
  if (v.type !== GGUFValueType.ARRAY) return textScalar(v.type, v.value, all);
  const item = (x: GGUFValue | GGUFScalar): string =>
    typeof x === 'object' ? textValue(x, all) : textScalar(v.itemType, x, all);
  const items = v.value as (GGUFValue | GGUFScalar)[];
  if (all || items.length <= ARRAY_SHOWN) return `[${items.map(item).join(', ')}]`;
  return `[${arrayLabel(v)}: ${items.slice(0, ARRAY_HEAD).map(item).join(', ')}, ...]`;
}

/** One metadata value as JSON data; long arrays become {item_type, count, first} unless `all`. */
function jsonValue(v: GGUFValue, all: boolean): unknown {
  if (v.type !== GGUFValueType.ARRAY) return jsonScalar(v.type, v.value);
  const items = (v.value as (GGUFValue | GGUFScalar)[]);
  const item = (x: GGUFValue | GGUFScalar): unknown => (typeof x === 'object' ? jsonValue(x, all) : jsonScalar(v.itemType, x));
  if (all || items.length <= ARRAY_SHOWN) return items.map(item);
  return { item_type: VALUE_TYPE_NAMES[v.itemType], count: items.length, first: items.slice(0, ARRAY_HEAD).map(item) };
}

// ---- reports ----

const count = (n: number): string => n.toLocaleString('en-US');
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
const shape = (dims: readonly number[]): string => `[${dims.join(', ')}]`;

function table(rows: string[][], rightAligned: boolean[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => `  ${r.map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ')}`.trimEnd());
}

/** The hyper-parameters as [name, value] rows; nested settings (rope) as `rope.nDims`. */
function hparamRows(values: object, prefix = ''): [string, unknown][] {
  return Object.entries(values).flatMap(([key, v]): [string, unknown][] => {
    if (v === undefined) return [];
    return typeof v === 'object' && v !== null ? hparamRows(v, `${prefix}${key}.`) : [[prefix + key, v]];
  });
}

/** "6,656 bytes = 26 layers × (64 keys + 64 values) × 2 B" */
function kvPerTokenText(a: ArchitectureSummary): string {
  const bytes = a.kvCacheBytesPerToken;
  if (bytes === null) return 'unknown (no attention shape in the metadata)';
  if (!a.hparams || !a.cacheRow) return `${count(bytes)} bytes`;
  const row = a.cacheRow.values ? `(${a.cacheRow.keys} keys + ${a.cacheRow.values} values)` : `${a.cacheRow.keys} values (one row for keys and values)`;
  return `${count(bytes)} bytes = ${a.hparams.blockCount} layers × ${row} × 2 B`;
}

function architectureLines(a: ArchitectureSummary): string[] {
  const lines = [`architecture: ${a.name ?? 'unknown'}${a.hparams ? ', hyper-parameters as kiln reads them' : ''}`];
  if (a.note) lines.push(`  note: ${a.note}`);
  if (a.hparams) lines.push(...table(hparamRows(a.hparams).map(([key, v]) => [key, String(plainNumber(v))]), [false, false]));
  lines.push(`  KV cache per token (F16): ${kvPerTokenText(a)}`);
  return lines;
}

function architectureJSON(a: ArchitectureSummary): object {
  return {
    name: a.name,
    hparams: a.hparams && JSON.parse(JSON.stringify(a.hparams, (_key, v) => plainNumber(v))),
    cache_row: a.cacheRow,
    kv_cache_f16_bytes_per_token: a.kvCacheBytesPerToken,
    note: a.note ?? null,
  };
}

export function infoText(path: string, header: GGUFHeader, all: boolean): string {
  const memory = summarizeMemory(header);
  const lines = [
    `file      ${path}`,
    `format    GGUF v${header.version}, ${count(header.fileSize)} bytes (${mib(header.fileSize)}), alignment ${header.alignment}, data at offset ${count(header.dataOffset)}`,
    '',
    `metadata: ${header.metadata.size} keys`,
  ];
  if (header.metadata.size > 0) {
    lines.push(...table([...header.metadata].map(([key, v]) => [key, VALUE_TYPE_NAMES[v.type], textValue(v, all)]), [false, false, false]));
  }
  lines.push('', `tensors: ${header.tensors.length}`);
  if (header.tensors.length > 0) {
    const rows = header.tensors.map((t) => [t.name, typeName(t.type), shape(t.dims), count(t.nBytes)]);
    lines.push(...table([['name', 'type', 'shape', 'bytes'], ...rows], [false, false, false, true]));
  }
  lines.push('', ...architectureLines(summarizeArchitecture(header.metadata)));
  lines.push('', 'memory');
  const typeRows = memory.byType.map((t) => [t.type, `${count(t.tensors)} tensors`, `${count(t.parameters)} params`, `${count(t.bytes)} bytes`, `${t.bitsPerWeight.toFixed(2)} bits/weight`]);
  const totalRow = ['total', `${count(header.tensors.length)} tensors`, `${count(memory.parameters)} params`, `${count(memory.tensorBytes)} bytes`, `${memory.bitsPerWeight.toFixed(2)} bits/weight`];
  lines.push(...table([...typeRows, totalRow], [false, true, true, true, true]));
  lines.push(`  parameters: ${count(memory.parameters)}, weights: ${mib(memory.tensorBytes)}`);
  const kv = memory.kvCacheBytesPer1kTokens;
  lines.push(`  KV cache (F16): ${kv === null ? 'unknown (no attention shape in the metadata)' : `${count(kv)} bytes (${mib(kv)}) per 1k tokens of context`}`);
  return lines.join('\n');
}

export function infoJSON(path: string, header: GGUFHeader, all: boolean): object {
  const memory = summarizeMemory(header);
  return {
    path,
    version: header.version,
    file_size: header.fileSize,
    alignment: header.alignment,
    data_offset: header.dataOffset,
    metadata: Object.fromEntries([...header.metadata].map(([key, v]) => [key, jsonValue(v, all)])),
    tensors: header.tensors.map((t) => ({ name: t.name, type: typeName(t.type), shape: t.dims, bytes: t.nBytes })),
    architecture: architectureJSON(summarizeArchitecture(header.metadata)),
    memory: {
      parameters: memory.parameters,
      tensor_bytes: memory.tensorBytes,
      bits_per_weight: memory.bitsPerWeight,
      by_type: memory.byType.map((t) => ({ type: t.type, tensors: t.tensors, parameters: t.parameters, bytes: t.bytes, bits_per_weight: t.bitsPerWeight })),
      kv_cache_f16_bytes_per_1k_tokens: memory.kvCacheBytesPer1kTokens,
    },
  };
}

export function infoCommand(): CommandUnknownOpts {
  return new Command('info')
    .summary('show a GGUF file: header, metadata, tensors and memory needs')
    .description('Show what a GGUF file (a model, an adapter or an imatrix) holds: header, metadata, tensors and memory needs. Only the header is read.')
    .argument('<FILE>', 'a GGUF file')
    .option('--json', 'print one JSON object')
    .option('--all', 'print arrays and long strings in full')
    .action((path, o) => {
      const header = readGGUFHeader(path);
      const all = o.all ?? false;
      console.log(o.json ? JSON.stringify(infoJSON(path, header, all), null, 2) : infoText(path, header, all));
    });
}
