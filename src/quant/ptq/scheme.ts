// A post-training quantization scheme: a number format (INT8/INT4/INT2, FP8 E4M3/E5M2), symmetric or
// asymmetric (scale + integer zero point), and the granularity one scale covers (the whole tensor, one output
// channel = one stored row, or a group of `groupSize` consecutive values of a row).
// Written as FORMAT[-sym|-asym][-tensor|-channel|-gN], e.g. "int8", "int4-asym-g32", "fp8-e4m3-tensor".

import { GGMLType } from '../../tensor/ggml-type.js';
import { E4M3, E5M2, type Fp8Format } from './fp8.js';

export type NumberFormat = 'int8' | 'int4' | 'int2' | 'fp8-e4m3' | 'fp8-e5m2';
export type Granularity = 'tensor' | 'channel' | 'group';

export interface QuantScheme {
  format: NumberFormat;
  symmetric: boolean;
  granularity: Granularity;
  /** values per group along a row (granularity 'group') */
  groupSize: number;
}

export class SchemeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemeError';
  }
}

const FORMATS: readonly NumberFormat[] = ['int8', 'int4', 'int2', 'fp8-e4m3', 'fp8-e5m2'];

/** Bits of an integer format, or undefined for FP8. */
export function integerBits(format: NumberFormat): number | undefined {
  return format.startsWith('int') ? Number(format.slice(3)) : undefined;
}

export function fp8FormatOf(format: NumberFormat): Fp8Format | undefined {
  return format === 'fp8-e4m3' ? E4M3 : format === 'fp8-e5m2' ? E5M2 : undefined;
}

/** Parses "int4-asym-g32" and the like (defaults: symmetric, per channel). */
export function parseScheme(text: string): QuantScheme {
  const lower = text.toLowerCase();
  const format = [...FORMATS].sort((a, b) => b.length - a.length).find((f) => lower === f || lower.startsWith(`${f}-`));
  if (!format) throw new SchemeError(`unknown scheme "${text}": it starts with one of ${FORMATS.join(', ')}`);
  const scheme: QuantScheme = { format, symmetric: true, granularity: 'channel', groupSize: 0 };
  for (const part of lower.slice(format.length).split('-').filter(Boolean)) {
    const group = /^g(\d+)$/.exec(part);
    if (part === 'sym' || part === 'asym') scheme.symmetric = part === 'sym';
    else if (part === 'tensor' || part === 'channel') scheme.granularity = part;
    else if (group && Number(group[1]) > 0) { scheme.granularity = 'group'; scheme.groupSize = Number(group[1]); }
    else throw new SchemeError(`scheme "${text}": unknown part "${part}" (sym, asym, tensor, channel or gN)`);
  }
  if (!scheme.symmetric && fp8FormatOf(format)) throw new SchemeError(`scheme "${text}": FP8 formats are symmetric only`);
  return scheme;
}

/** "int4 asym per-group 32" */
export function describeScheme(s: QuantScheme): string {
  const granularity = s.granularity === 'group' ? `per-group ${s.groupSize}` : `per-${s.granularity}`;
  return `${s.format} ${s.symmetric ? 'sym' : 'asym'} ${granularity}`;
}

/**
 * The GGUF type storing this scheme in its own block format, when one does: Q8_0 is INT8 symmetric in groups of
 * 32 (scale amax/127), Q4_0 INT4 symmetric in groups of 32 (llama.cpp's variant: grid −8..7, scale from the
 * signed extreme), Q4_1 INT4 asymmetric in groups of 32 (offset stored as a float minimum, not an integer zero
 * point). All keep their scales in f16.
 */
export function ggufTypeForScheme(s: QuantScheme): GGMLType | undefined {
  if (s.granularity !== 'group' || s.groupSize !== 32) return undefined;
  if (s.format === 'int8' && s.symmetric) return GGMLType.Q8_0;
  if (s.format === 'int4') return s.symmetric ? GGMLType.Q4_0 : GGMLType.Q4_1;
  return undefined;
}
