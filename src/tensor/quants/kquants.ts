// The K-quant super-block formats Q2_K … Q6_K, IQ4_XS and the Q8_K activations (ggml-quants.c, ggml-cpu quants.c):
// decoding to float32, the Q8_K quantizer and the integer dot products with it.
// A super-block of 256 values is 16 groups of 16; every format decodes to 256 integer quants q and, per group,
// an integer scale s and min m (m = 0 where the format has none), so that a value is d·s·q − dmin·m.

import { int8Alias, readF16, readF32, readInt8, readInt16, writeF32, writeUint16 } from '../bytes.js';
import { roundHalfEven } from './block32.js';
import { IQ4_XS, KVALUES_IQ4NL, QK_K, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K } from './layout.js';

/** Values per group sharing one scale (and min). */
const GROUP = 16;
const GROUPS = QK_K / GROUP;

/** How a super-block's bytes turn into quants q[256], scales s[16] and mins m[16]. */
type Unpack = (src: Uint8Array, at: number, q: Int8Array, scales: Int32Array, mins: Int32Array) => void;

export interface KQuantFormat {
  readonly bytes: number;
  /** byte offset of the fp16 super-block scale d */
  readonly d: number;
  /** byte offset of the fp16 super-block min scale dmin, or −1 */
  readonly dmin: number;
  readonly unpack: Unpack;
}

/** Q2_K: q = 2 bits; value 128h + 32g + i is bits 2g of qs[32h + i]; group scale/min are the nibbles of scales[group]. */
function unpackQ2_K(src: Uint8Array, at: number, q: Int8Array, scales: Int32Array, mins: Int32Array): void {
  const qs = at + Q2_K.qs;
  for (let h = 0; h < 2; h++) {
    for (let g = 0; g < 4; g++) {
      for (let i = 0; i < 32; i++) q[128 * h + 32 * g + i] = (src[qs + 32 * h + i] >> (2 * g)) & 3;
    }
  }
  for (let group = 0; group < GROUPS; group++) {
    const byte = src[at + Q2_K.scales + group];
    scales[group] = byte & 15;
    mins[group] = byte >> 4;
  }
}

/**
 * Q3_K: q = (2 low bits as Q2_K) − 4 unless bit (4h + g) of hmask[i] is set; group scales are 6 bits minus 32,
 * low 4 bits from scales[j] (j < 8) or the high nibble of scales[j − 8], high 2 bits from scales[8 + j%4] >> 2·(j/4).
 */
function unpackQ3_K(src: Uint8Array, at: number, q: Int8Array, scales: Int32Array, mins: Int32Array): void {
  const qs = at + Q3_K.qs;
  const hmask = at + Q3_K.hmask;
  for (let h = 0; h < 2; h++) {
    for (let g = 0; g < 4; g++) {
      const bit = 4 * h + g;
      for (let i = 0; i < 32; i++) {
        const low = (src[qs + 32 * h + i] >> (2 * g)) & 3;
        q[128 * h + 32 * g + i] = low - (((src[hmask + i] >> bit) & 1) ? 0 : 4);
      }
    }
  }
  const packed = at + Q3_K.scales;
  for (let j = 0; j < GROUPS; j++) {
    const low = j < 8 ? src[packed + j] & 15 : src[packed + j - 8] >> 4;
    const high = (src[packed + 8 + (j % 4)] >> (2 * (j >> 2))) & 3;
    scales[j] = (low | (high << 4)) - 32;
    mins[j] = 0;
  }
}

/**
 * Scale and min j (0…7) of the 12 packed bytes of Q4_K/Q5_K (ggml's get_scale_min_k4): j < 4 in the low 6 bits of
 * bytes j and j+4; j ≥ 4 as the nibbles of byte j+4 with high bits from the top 2 bits of bytes j−4 and j.
 * Writes them to scales/mins at groups 2j and 2j+1 (one 32-value sub-block is two groups of 16).
 */
function unpackScaleMinK4(src: Uint8Array, packed: number, scales: Int32Array, mins: Int32Array): void {
  for (let j = 0; j < 8; j++) {
    let scale: number, min: number;
    if (j < 4) {
      scale = src[packed + j] & 63;
      min = src[packed + j + 4] & 63;
    } else {
      scale = (src[packed + j + 4] & 15) | ((src[packed + j - 4] >> 6) << 4);
      min = (src[packed + j + 4] >> 4) | ((src[packed + j] >> 6) << 4);
    }
    scales[2 * j] = scales[2 * j + 1] = scale;
    mins[2 * j] = mins[2 * j + 1] = min;
  }
}

/** Q4_K: chunk c of 64 values: values 64c + i are the low nibbles of qs[32c + i], values 64c + 32 + i the high. */
function unpackQ4_K(src: Uint8Array, at: number, q: Int8Array, scales: Int32Array, mins: Int32Array): void {
  const qs = at + Q4_K.qs;
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < 32; i++) {
      const byte = src[qs + 32 * c + i];
      q[64 * c + i] = byte & 15;
      q[64 * c + 32 + i] = byte >> 4;
    }
  }
  unpackScaleMinK4(src, at + Q4_K.scales, scales, mins);
}

/** Q5_K: as Q4_K, plus bit 4 from qh[i]: bit 2c for the low-nibble values of chunk c, bit 2c+1 for the high. */
function unpackQ5_K(src: Uint8Array, at: number, q: Int8Array, scales: Int32Array, mins: Int32Array): void {
  const qs = at + Q5_K.qs;
  const qh = at + Q5_K.qh;
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < 32; i++) {
      const byte = src[qs + 32 * c + i];
      const high = src[qh + i] >> (2 * c);
      q[64 * c + i] = (byte & 15) | ((high & 1) << 4);
      q[64 * c + 32 + i] = (byte >> 4) | ((high & 2) << 3);
    }
  }
  unpackScaleMinK4(src, at + Q5_K.scales, scales, mins);
}

/**
 * Q6_K: value 128h + 32k + l (l < 32) = (nibble k>>1 of ql[64h + 32(k&1) + l]) | (bits 2k of qh[32h + l]) << 4, − 32;
 * group scales are int8.
 */
function unpackQ6_K(src: Uint8Array, at: number, q: Int8Array, scales: Int32Array, mins: Int32Array): void {
  const ql = at + Q6_K.ql;
  const qh = at + Q6_K.qh;
  for (let h = 0; h < 2; h++) {
    for (let k = 0; k < 4; k++) {
      const lowShift = 4 * (k >> 1);
      for (let l = 0; l < 32; l++) {
        const low = (src[ql + 64 * h + 32 * (k & 1) + l] >> lowShift) & 15;
        const high = (src[qh + 32 * h + l] >> (2 * k)) & 3;
        q[128 * h + 32 * k + l] = (low | (high << 4)) - 32;
      }
    }
  }
  for (let group = 0; group < GROUPS; group++) {
    scales[group] = readInt8(src, at + Q6_K.scales + group);
    mins[group] = 0;
  }
}

/**
 * IQ4_XS: sub-block j of 32 (groups 2j, 2j+1) holds values 32j + l (l < 16) in the low nibbles of qs[16j + l] and
 * 32j + 16 + l in the high ones, as indices into KVALUES_IQ4NL; its scale is 6 bits minus 32, the low nibble from
 * scales_l[j/2] (high nibble for j odd), the high 2 bits from bits 2j of scales_h.
 */
function unpackIQ4_XS(src: Uint8Array, at: number, q: Int8Array, scales: Int32Array, mins: Int32Array): void {
  const qs = at + IQ4_XS.qs;
  for (let j = 0; j < QK_K / 32; j++) {
    for (let l = 0; l < 16; l++) {
      const byte = src[qs + 16 * j + l];
      q[32 * j + l] = KVALUES_IQ4NL[byte & 15];
      q[32 * j + 16 + l] = KVALUES_IQ4NL[byte >> 4];
    }
    const low = (src[at + IQ4_XS.scalesL + (j >> 1)] >> (4 * (j & 1))) & 15;
    const high = ((src[at + IQ4_XS.scalesH] | (src[at + IQ4_XS.scalesH + 1] << 8)) >> (2 * j)) & 3;
    scales[2 * j] = scales[2 * j + 1] = (low | (high << 4)) - 32;
    mins[2 * j] = mins[2 * j + 1] = 0;
  }
}

export const Q2_K_FORMAT: KQuantFormat = { bytes: Q2_K.bytes, d: Q2_K.d, dmin: Q2_K.dmin, unpack: unpackQ2_K };
export const Q3_K_FORMAT: KQuantFormat = { bytes: Q3_K.bytes, d: Q3_K.d, dmin: -1, unpack: unpackQ3_K };
export const Q4_K_FORMAT: KQuantFormat = { bytes: Q4_K.bytes, d: Q4_K.d, dmin: Q4_K.dmin, unpack: unpackQ4_K };
export const Q5_K_FORMAT: KQuantFormat = { bytes: Q5_K.bytes, d: Q5_K.d, dmin: Q5_K.dmin, unpack: unpackQ5_K };
export const Q6_K_FORMAT: KQuantFormat = { bytes: Q6_K.bytes, d: Q6_K.d, dmin: -1, unpack: unpackQ6_K };
export const IQ4_XS_FORMAT: KQuantFormat = { bytes: IQ4_XS.bytes, d: IQ4_XS.d, dmin: -1, unpack: unpackIQ4_XS };

// the super-block being worked on: q[256], scales[16], mins[16]
const quants = new Int8Array(QK_K);
const groupScales = new Int32Array(GROUPS);
const groupMins = new Int32Array(GROUPS);

/** out[outAt + 256·b + v] = (d·s)·q − dmin·m for value v of super-block b, as ggml's dequantize_row_q*_K. */
export function dequantizeBlocksK(format: KQuantFormat, src: Uint8Array, at: number, nBlocks: number, out: Float32Array, outAt: number): void {
  for (let b = 0; b < nBlocks; b++, at += format.bytes, outAt += QK_K) {
    format.unpack(src, at, quants, groupScales, groupMins);
    const d = readF16(src, at + format.d);
    const dmin = format.dmin < 0 ? 0 : readF16(src, at + format.dmin);
    for (let group = 0; group < GROUPS; group++) {
      // every product here is exact in float32, so one rounding per value, as in C
      const dl = d * groupScales[group];
      const ml = dmin * groupMins[group];
      const v0 = group * GROUP;
      for (let i = 0; i < GROUP; i++) out[outAt + v0 + i] = dl * quants[v0 + i] - ml;
    }
  }
}

/**
 * Σ over super-blocks of d_a·d_w·Σ_groups s·(Σ q_w·q_a) − d_a·dmin_w·Σ_groups m·bsum_a
 * (ggml_vec_dot_q2_K_q8_K … q6_K_q8_K, iq4_xs_q8_K): integer sums per super-block, super-blocks accumulated in float32.
 */
export function dotBlocksK(format: KQuantFormat, w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, nBlocks: number): number {
  const a8 = int8Alias(a);
  let sum = 0;
  for (let b = 0; b < nBlocks; b++, wAt += format.bytes, aAt += Q8_K.bytes) {
    format.unpack(w, wAt, quants, groupScales, groupMins);
    const aqs = a.byteOffset + aAt + Q8_K.qs; // index of the activation quants in a8
    let isum = 0;
    let msum = 0;
    for (let group = 0; group < GROUPS; group++) {
      const v0 = group * GROUP;
      let part = 0;
      for (let i = 0; i < GROUP; i++) part += quants[v0 + i] * a8[aqs + v0 + i];
      isum += groupScales[group] * part;
      msum += groupMins[group] * readInt16(a, aAt + Q8_K.bsums + 2 * group);
    }
    const ad = readF32(a, aAt + Q8_K.d);
    const d = Math.fround(ad * readF16(w, wAt + format.d));
    const dmin = format.dmin < 0 ? 0 : Math.fround(ad * readF16(w, wAt + format.dmin));
    sum = Math.fround(sum + (d * isum - dmin * msum));
  }
  return sum;
}

/**
 * Activation quantizer Q8_K as ggml's quantize_row_q8_K_ref: per super-block, max = the value of largest magnitude,
 * iscale = −127/max, q = min(127, round-half-even(iscale·x)), d = 1/iscale, bsums = sums of each 16 quants.
 */
export function quantizeBlocksQ8_K(x: Float32Array, xAt: number, nBlocks: number, out: Uint8Array, outAt: number): void {
  for (let b = 0; b < nBlocks; b++, xAt += QK_K, outAt += Q8_K.bytes) {
    let max = 0;
    let amax = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[xAt + j]);
      if (ax > amax) {
        amax = ax;
        max = x[xAt + j];
      }
    }
    const qs = outAt + Q8_K.qs;
    if (amax === 0) {
      writeF32(out, outAt + Q8_K.d, 0);
      out.fill(0, qs, outAt + Q8_K.bytes); // quants and bsums
      continue;
    }
    const iscale = Math.fround(-127 / max);
    for (let group = 0; group < GROUPS; group++) {
      let bsum = 0;
      for (let i = 0; i < GROUP; i++) {
        const j = group * GROUP + i;
        const q = Math.min(127, roundHalfEven(Math.fround(iscale * x[xAt + j])));
        out[qs + j] = q;
        bsum += q;
      }
      writeUint16(out, outAt + Q8_K.bsums + 2 * group, bsum);
    }
    writeF32(out, outAt + Q8_K.d, 1 / iscale);
  }
}

/** out[outAt + 256·b + j] = d·q_j of Q8_K super-block b. */
export function dequantizeBlocksQ8_K(src: Uint8Array, at: number, nBlocks: number, out: Float32Array, outAt: number): void {
  for (let b = 0; b < nBlocks; b++, at += Q8_K.bytes, outAt += QK_K) {
    const d = readF32(src, at + Q8_K.d);
    for (let j = 0; j < QK_K; j++) out[outAt + j] = d * readInt8(src, at + Q8_K.qs + j);
  }
}
