// The 32-value block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, IQ4_NL (ggml-quants.c, ggml-cpu quants.c):
// decoding to float32, the activation quantizers Q8_0/Q8_1, and the integer dot products with them.
// Every block decodes to 32 integer quants q; a value is d·q (+ m for the _1 formats).

import { int8Alias, readF16, readUint32, writeF16 } from '../bytes.js';
import { KVALUES_IQ4NL, QK32, IQ4_NL, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, type Block32Layout } from './layout.js';

export interface Block32Format {
  readonly layout: Block32Layout;
  /** true: the quants are 32 int8; false: nibbles (plus bit 4 from qh where the layout has it) minus `offset` */
  readonly int8: boolean;
  readonly offset: number;
  /** the levels the nibbles index (IQ4_NL), instead of the nibbles themselves */
  readonly levels?: Int8Array;
  /** the layout of the activation blocks this format is multiplied with (its vec_dot_type) */
  readonly activation: Block32Layout;
}

export const Q4_0_FORMAT: Block32Format = { layout: Q4_0, int8: false, offset: 8, activation: Q8_0 };
export const Q4_1_FORMAT: Block32Format = { layout: Q4_1, int8: false, offset: 0, activation: Q8_1 };
export const Q5_0_FORMAT: Block32Format = { layout: Q5_0, int8: false, offset: 16, activation: Q8_0 };
export const Q5_1_FORMAT: Block32Format = { layout: Q5_1, int8: false, offset: 0, activation: Q8_1 };
export const Q8_0_FORMAT: Block32Format = { layout: Q8_0, int8: true, offset: 0, activation: Q8_0 };
export const Q8_1_FORMAT: Block32Format = { layout: Q8_1, int8: true, offset: 0, activation: Q8_1 };
export const IQ4_NL_FORMAT: Block32Format = { layout: IQ4_NL, int8: false, offset: 0, levels: KVALUES_IQ4NL, activation: Q8_0 };

// the quants of the block being worked on: q[32]
const quants = new Int8Array(QK32);

/** The 32 signed integer quants of the block at src[at], into q. */
function unpack(format: Block32Format, src: Uint8Array, at: number, q: Int8Array): void {
  const { layout } = format;
  const qs = at + layout.qs;
  if (format.int8) {
    for (let j = 0; j < QK32; j++) q[j] = src[qs + j]; // the Int8Array store reinterprets the byte
    return;
  }
  const levels = format.levels;
  if (levels) {
    for (let j = 0; j < 16; j++) {
      q[j] = levels[src[qs + j] & 15];
      q[j + 16] = levels[src[qs + j] >> 4];
    }
    return;
  }
  const qh = layout.qh < 0 ? 0 : readUint32(src, at + layout.qh);
  const offset = format.offset;
  for (let j = 0; j < 16; j++) {
    const byte = src[qs + j];
    q[j] = ((byte & 15) | (((qh >>> j) & 1) << 4)) - offset;
    q[j + 16] = ((byte >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - offset;
  }
}

/** out[outAt + 32·b + j] = d·q_j (+ m) of block b, for nBlocks blocks starting at src[at]. */
export function dequantizeBlocks32(format: Block32Format, src: Uint8Array, at: number, nBlocks: number, out: Float32Array, outAt: number): void {
  const { layout } = format;
  for (let b = 0; b < nBlocks; b++, at += layout.bytes, outAt += QK32) {
    unpack(format, src, at, quants);
    const d = readF16(src, at + layout.d);
    if (layout.m < 0) {
      for (let j = 0; j < QK32; j++) out[outAt + j] = d * quants[j];
    } else {
      const m = readF16(src, at + layout.m);
      for (let j = 0; j < QK32; j++) out[outAt + j] = d * quants[j] + m;
    }
  }
}

/**
 * Σ over blocks of (d_w·d_a)·Σ_j q_w·q_a, plus m_w·s_a for the formats with a min (ggml_vec_dot_q4_0_q8_0, …_q4_1_q8_1,
 * …_q5_0_q8_0, …_q5_1_q8_1, …_q8_0_q8_0, …_iq4_nl_q8_0): integer sums per block, blocks accumulated in float32.
 */
export function dotBlocks32(format: Block32Format, w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, nBlocks: number): number {
  const { layout, activation } = format;
  const a8 = int8Alias(a);
  let sum = 0;
  for (let b = 0; b < nBlocks; b++, wAt += layout.bytes, aAt += activation.bytes) {
    unpack(format, w, wAt, quants);
    const aqs = a.byteOffset + aAt + activation.qs; // index of the activation quants in a8
    let sumi = 0;
    for (let j = 0; j < QK32; j++) sumi += quants[j] * a8[aqs + j];
    let block = Math.fround(readF16(w, wAt + layout.d) * readF16(a, aAt + activation.d)) * sumi;
    if (layout.m >= 0) block += readF16(w, wAt + layout.m) * readF16(a, aAt + Q8_1.s);
    sum = Math.fround(sum + block);
  }
  return sum;
}

/**
 * Activation quantizer Q8_0 or Q8_1 as ggml's x86 (AVX/AVX2) quantize_row_q8_0/_q8_1: per block
 * d = amax/127, q = round-half-even(x·(127/amax)); Q8_1 also stores s = d·Σq.
 */
export function quantizeBlocksQ8(layout: typeof Q8_0 | typeof Q8_1, x: Float32Array, xAt: number, nBlocks: number, out: Uint8Array, outAt: number): void {
  for (let b = 0; b < nBlocks; b++, xAt += QK32, outAt += layout.bytes) {
    let amax = 0;
    for (let j = 0; j < QK32; j++) amax = Math.max(amax, Math.abs(x[xAt + j]));
    const d = Math.fround(amax / 127);
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    const qs = outAt + layout.qs;
    let sum = 0;
    for (let j = 0; j < QK32; j++) {
      const q = roundHalfEven(Math.fround(x[xAt + j] * id));
      out[qs + j] = q;
      sum += q;
    }
    writeF16(out, outAt + layout.d, d);
    if (layout === Q8_1) writeF16(out, outAt + Q8_1.s, d * sum);
  }
}

/** Nearest integer, ties to even (|v| < 2^51): adding 1.5·2^52 leaves no fraction bits in a double. */
export function roundHalfEven(v: number): number {
  return (v + 6755399441055744) - 6755399441055744;
}
