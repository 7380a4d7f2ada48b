// The 32-value block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 (ggml-quants.c, ggml-cpu quants.c):
// decoding to float32, the activation quantizers Q8_0/Q8_1, and the integer dot products with them.
// Every block decodes to 32 integer quants q; a value is d·q (+ m for the _1 formats).

import { readF16, readInt8, readUint32, writeF16 } from '../bytes.js';
import { QK32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, type Block32Layout } from './layout.js';

/** How a block's bytes turn into its 32 signed integer quants. */
type Unpack = (src: Uint8Array, at: number, q: Int8Array) => void;

export interface Block32Format {
  readonly layout: Block32Layout;
  readonly unpack: Unpack;
  /** the layout of the activation blocks this format is multiplied with (its vec_dot_type) */
  readonly activation: Block32Layout;
}

/** Quants stored as nibbles (plus bit 4 from qh when the layout has it), minus `offset`. */
function unpackNibbles(layout: Block32Layout, offset: number): Unpack {
  return (src, at, q) => {
    const qh = layout.qh < 0 ? 0 : readUint32(src, at + layout.qh);
    const qs = at + layout.qs;
    for (let j = 0; j < 16; j++) {
      const byte = src[qs + j];
      q[j] = ((byte & 15) | (((qh >>> j) & 1) << 4)) - offset;
      q[j + 16] = ((byte >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - offset;
    }
  };
}

function unpackInt8(layout: Block32Layout): Unpack {
  return (src, at, q) => {
    const qs = at + layout.qs;
    for (let j = 0; j < QK32; j++) q[j] = readInt8(src, qs + j);
  };
}

export const Q4_0_FORMAT: Block32Format = { layout: Q4_0, unpack: unpackNibbles(Q4_0, 8), activation: Q8_0 };
export const Q4_1_FORMAT: Block32Format = { layout: Q4_1, unpack: unpackNibbles(Q4_1, 0), activation: Q8_1 };
export const Q5_0_FORMAT: Block32Format = { layout: Q5_0, unpack: unpackNibbles(Q5_0, 16), activation: Q8_0 };
export const Q5_1_FORMAT: Block32Format = { layout: Q5_1, unpack: unpackNibbles(Q5_1, 0), activation: Q8_1 };
export const Q8_0_FORMAT: Block32Format = { layout: Q8_0, unpack: unpackInt8(Q8_0), activation: Q8_0 };
export const Q8_1_FORMAT: Block32Format = { layout: Q8_1, unpack: unpackInt8(Q8_1), activation: Q8_1 };

// the quants of the block being worked on: q[32]
const quants = new Int8Array(QK32);

/** out[outAt + 32·b + j] = d·q_j (+ m) of block b, for nBlocks blocks starting at src[at]. */
export function dequantizeBlocks32(format: Block32Format, src: Uint8Array, at: number, nBlocks: number, out: Float32Array, outAt: number): void {
  const { layout, unpack } = format;
  for (let b = 0; b < nBlocks; b++, at += layout.bytes, outAt += QK32) {
    unpack(src, at, quants);
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
 * …_q5_0_q8_0, …_q5_1_q8_1, …_q8_0_q8_0): integer sums per block, blocks accumulated in float32.
 */
export function dotBlocks32(format: Block32Format, w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, nBlocks: number): number {
  const { layout, unpack, activation } = format;
  let sum = 0;
  for (let b = 0; b < nBlocks; b++, wAt += layout.bytes, aAt += activation.bytes) {
    unpack(w, wAt, quants);
    const aqs = aAt + activation.qs;
    let sumi = 0;
    for (let j = 0; j < QK32; j++) sumi += quants[j] * readInt8(a, aqs + j);
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
