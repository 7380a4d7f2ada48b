// Typed access to GGUF metadata values, with errors that name the key.

import { GGUFValueType, type GGUFScalar, type GGUFValue } from './types.js';

export type Metadata = ReadonlyMap<string, GGUFValue>;

export class MetadataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataError';
  }
}

function scalar(meta: Metadata, key: string): GGUFScalar | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type === GGUFValueType.ARRAY) throw new MetadataError(`metadata "${key}" is an array, expected a single value`);
  return v.value;
}

export function getString(meta: Metadata, key: string): string | undefined {
  const v = scalar(meta, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new MetadataError(`metadata "${key}" is not a string`);
  return v;
}

export function getNumber(meta: Metadata, key: string): number | undefined {
  const v = scalar(meta, key);
  if (v === undefined) return undefined;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'number') throw new MetadataError(`metadata "${key}" is not a number`);
  return v;
}

export function getBool(meta: Metadata, key: string): boolean | undefined {
  const v = scalar(meta, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new MetadataError(`metadata "${key}" is not a bool`);
  return v;
}

export function requireString(meta: Metadata, key: string): string {
  const v = getString(meta, key);
  if (v === undefined) throw new MetadataError(`metadata "${key}" is missing`);
  return v;
}

export function requireNumber(meta: Metadata, key: string): number {
  const v = getNumber(meta, key);
  if (v === undefined) throw new MetadataError(`metadata "${key}" is missing`);
  return v;
}

/** A flat array of scalars (strings, numbers, bools); undefined when absent. */
export function getArray<T extends GGUFScalar = GGUFScalar>(meta: Metadata, key: string): T[] | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type !== GGUFValueType.ARRAY || v.itemType === GGUFValueType.ARRAY) {
    throw new MetadataError(`metadata "${key}" is not a flat array`);
  }
  return v.value as T[];
}

/** Metadata value as plain JSON-friendly data (bigint as number when exact, else string). */
export function plainValue(v: GGUFValue): unknown {
  if (v.type === GGUFValueType.ARRAY) {
    return v.itemType === GGUFValueType.ARRAY ? (v.value as GGUFValue[]).map(plainValue) : (v.value as GGUFScalar[]).map(plainScalar);
  }
  return plainScalar(v.value);
}

function plainScalar(s: GGUFScalar): unknown {
  if (typeof s !== 'bigint') return s;
  return s <= BigInt(Number.MAX_SAFE_INTEGER) && s >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s.toString();
}
