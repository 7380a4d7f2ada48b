// Byte layouts of ggml's quantized blocks (ggml-common.h), shared by the decoders here and the encoders in src/quant.
// Each constant gives the block's size in bytes and the byte offset of each field; fp16 fields are 2 bytes.

/** Values per block of the 32-value formats (QK4_0 = QK4_1 = QK5_0 = QK5_1 = QK8_0 = QK8_1). */
export const QK32 = 32;

/** Layout of a 32-value block: scale d, optional min m or sum s (−1 when absent), optional 5th bits qh, quants qs. */
export interface Block32Layout {
  readonly bytes: number;
  /** fp16 scale */
  readonly d: number;
  /** fp16 min added to every value (Q4_1, Q5_1), or −1 */
  readonly m: number;
  /** u32 holding bit 4 of each of the 32 quants (Q5_0, Q5_1), or −1 */
  readonly qh: number;
  /** the quants: 16 bytes of nibble pairs (value j low nibble, j+16 high nibble), or 32 int8 */
  readonly qs: number;
}

/** x = d·(q − 8), q 4 bits */
export const Q4_0: Block32Layout = { bytes: 18, d: 0, m: -1, qh: -1, qs: 2 };
/** x = d·q + m, q 4 bits */
export const Q4_1: Block32Layout = { bytes: 20, d: 0, m: 2, qh: -1, qs: 4 };
/** x = d·(q − 16), q 5 bits */
export const Q5_0: Block32Layout = { bytes: 22, d: 0, m: -1, qh: 2, qs: 6 };
/** x = d·q + m, q 5 bits */
export const Q5_1: Block32Layout = { bytes: 24, d: 0, m: 2, qh: 4, qs: 8 };
/** x = d·q, q int8 */
export const Q8_0: Block32Layout = { bytes: 34, d: 0, m: -1, qh: -1, qs: 2 };
/** x = d·q, q int8; s (fp16, at offset 2) = d·Σq, used by the Q4_1/Q5_1 dot products */
export const Q8_1: Block32Layout & { readonly s: number } = { bytes: 36, d: 0, m: -1, qh: -1, qs: 4, s: 2 };
/** x = d·KVALUES_IQ4NL[q], q 4 bits (nibbles as Q4_0) */
export const IQ4_NL: Block32Layout = { bytes: 18, d: 0, m: -1, qh: -1, qs: 2 };

/** The 16 non-linear levels the 4-bit indices of IQ4_NL and IQ4_XS select (ggml-common.h kvalues_iq4nl). */
export const KVALUES_IQ4NL: Int8Array = Int8Array.of(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

/** Values per K-quant super-block (QK_K). */
export { QK_K } from '../ggml-type.js';

// K-quant super-blocks of 256 values, split in 16 groups of 16 (or 8 of 32) with their own small scales.

/** scales[16]: low nibble scale, high nibble min of each group of 16 | qs[64]: 2-bit quants | fp16 d | fp16 dmin */
export const Q2_K = { bytes: 84, scales: 0, qs: 16, d: 80, dmin: 82 } as const;
/** hmask[32]: bit 2 of each quant | qs[64]: low 2 bits | scales[12]: 16 6-bit scales | fp16 d */
export const Q3_K = { bytes: 110, hmask: 0, qs: 32, scales: 96, d: 108 } as const;
/** fp16 d | fp16 dmin | scales[12]: 8 6-bit scales and 8 6-bit mins | qs[128]: 4-bit quants */
export const Q4_K = { bytes: 144, d: 0, dmin: 2, scales: 4, qs: 16 } as const;
/** fp16 d | fp16 dmin | scales[12] as Q4_K | qh[32]: bit 4 of each quant | qs[128]: low 4 bits */
export const Q5_K = { bytes: 176, d: 0, dmin: 2, scales: 4, qh: 16, qs: 48 } as const;
/** ql[128]: low 4 bits | qh[64]: high 2 bits | scales[16]: int8 | fp16 d */
export const Q6_K = { bytes: 210, ql: 0, qh: 128, scales: 192, d: 208 } as const;
/**
 * fp16 d | scales_h: u16, bits 2j…2j+1 the high bits of sub-block j's scale | scales_l[4]: its low nibble (j even: low
 * nibble of byte j/2) | qs[128]: 16 bytes of IQ4_NL nibbles per sub-block of 32; x = d·(scale − 32)·KVALUES_IQ4NL[q]
 */
export const IQ4_XS = { bytes: 136, d: 0, scalesH: 2, scalesL: 4, qs: 8 } as const;
/** f32 d | qs[256]: int8 | bsums[16]: int16 sums of each group of 16 quants (activations only) */
export const Q8_K = { bytes: 292, d: 0, qs: 4, bsums: 260 } as const;
