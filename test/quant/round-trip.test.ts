// dequantize(quantize(x)) on seeded random rows: every value must land on the level of its block's grid that
// is nearest to it (what the formats allow), and the relative RMS error must stay within each type's bound.
//
// Grids (q an integer in the type's range, s the block or sub-block scale read back from the stored bytes):
//   Q4_0 d·(q−8), q∈[0,15] | Q5_0 d·(q−16), q∈[0,31] | Q8_0 d·q, q∈[−127,127]
//   Q4_1 d·q+m, q∈[0,15]   | Q5_1 d·q+m, q∈[0,31]
//   Q2_K d·sc·q − dmin·mn, q∈[0,3] | Q4_K … q∈[0,15] | Q5_K … q∈[0,31]   (sc, mn per sub-block)
//   Q3_K d·(sc−32)·q, q∈[−4,3]     | Q6_K d·sc·q, q∈[−32,31]
//   IQ4_NL d·K[q], q∈[0,15]        | IQ4_XS d·(sc−32)·K[q]     (K: the 16 non-linear levels, from −127 to 113)
// Nearest-level bound: |x − x̂| ≤ min_q |x − level(q)| + tol·|step|, with tol = 1e-5 for the K-quants (they
// re-round with the stored f16 scales) and, for the 32-value types and IQ4_XS (rounded with the unrounded scale,
// stored as f16 with relative error ≤ 2^−11), tol = (largest |q|)·2^−10 plus 2^−10·|m| for the min.
// F16 / BF16: |x − x̂| ≤ 2^−11·|x| / 2^−8·|x| (half an ulp, normal range).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GGMLType, rowBytes, typeInfo, typeName } from '../../src/tensor/ggml-type.js';
import { dequantizeRow, fp16ToFp32, layout } from '../../src/tensor/index.js';
import { quantizeRow, quantizeRows } from '../../src/quant/ggml-quantize.js';
import { mulberry32 as rng } from '../helpers/random.js';

/** Rows of Gaussian values (Box–Muller) with a few large outliers, as weights have. */
function randomRows(seed: number, n: number): Float32Array {
  const next = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
    x[i] = next() < 0.01 ? 8 * g : g * 0.05;
  }
  return x;
}

const f16 = (b: Uint8Array, at: number) => fp16ToFp32(b[at] | (b[at + 1] << 8));

/** One sub-block's grid: values step·q + offset for q in [qMin, qMax] (step·levels[q] where the type has levels); tol in units of |step|. */
interface Grid { size: number; step: number; offset: number; qMin: number; qMax: number; tol: number; levels?: Int8Array }

/** get_scale_min_k4 */
function scaleMinK4(j: number, s: Uint8Array): [number, number] {
  if (j < 4) return [s[j] & 63, s[j + 4] & 63];
  return [(s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
}

/** The grids of one block, from its stored bytes. */
function blockGrids(type: GGMLType, b: Uint8Array): Grid[] {
  const K = 1e-5;
  switch (type) {
    case GGMLType.Q4_0: return [{ size: 32, step: f16(b, 0), offset: -8 * f16(b, 0), qMin: 0, qMax: 15, tol: 8 * 2 ** -10 }];
    case GGMLType.Q5_0: return [{ size: 32, step: f16(b, 0), offset: -16 * f16(b, 0), qMin: 0, qMax: 31, tol: 16 * 2 ** -10 }];
    case GGMLType.Q8_0: return [{ size: 32, step: f16(b, 0), offset: 0, qMin: -127, qMax: 127, tol: 127 * 2 ** -10 }];
    case GGMLType.Q4_1:
    case GGMLType.Q5_1: {
      const d = f16(b, 0), m = f16(b, 2), qMax = type === GGMLType.Q4_1 ? 15 : 31;
      return [{ size: 32, step: d, offset: m, qMin: 0, qMax, tol: qMax * 2 ** -10 + (d ? (Math.abs(m) * 2 ** -10) / d : 0) }];
    }
    case GGMLType.Q2_K: {
      const d = f16(b, 80), dmin = f16(b, 82);
      return Array.from({ length: 16 }, (_, j) => ({ size: 16, step: d * (b[j] & 0xf), offset: -dmin * (b[j] >> 4), qMin: 0, qMax: 3, tol: K }));
    }
    case GGMLType.Q3_K: {
      const d = f16(b, 108), s = b.subarray(96, 108);
      return Array.from({ length: 16 }, (_, j) => {
        const low = j < 8 ? s[j] & 0xf : s[j - 8] >> 4;
        const sc = (low | (((s[8 + (j % 4)] >> (2 * (j >> 2))) & 3) << 4)) - 32;
        return { size: 16, step: d * sc, offset: 0, qMin: -4, qMax: 3, tol: K };
      });
    }
    case GGMLType.Q4_K:
    case GGMLType.Q5_K: {
      const d = f16(b, 0), dmin = f16(b, 2), qMax = type === GGMLType.Q4_K ? 15 : 31;
      return Array.from({ length: 8 }, (_, j) => {
        const [sc, mn] = scaleMinK4(j, b.subarray(4, 16));
        return { size: 32, step: d * sc, offset: -dmin * mn, qMin: 0, qMax, tol: K };
      });
    }
    case GGMLType.Q6_K: {
      const d = f16(b, 208), scales = new Int8Array(b.buffer, b.byteOffset + 192, 16);
      return Array.from({ length: 16 }, (_, j) => ({ size: 16, step: d * scales[j], offset: 0, qMin: -32, qMax: 31, tol: K }));
    }
    case GGMLType.IQ4_NL: return [{ size: 32, step: f16(b, 0), offset: 0, qMin: 0, qMax: 15, tol: 127 * 2 ** -10, levels: layout.KVALUES_IQ4NL }];
    case GGMLType.IQ4_XS: {
      const d = f16(b, 0), high = b[2] | (b[3] << 8);
      return Array.from({ length: 8 }, (_, j) => {
        const sc = (((b[4 + (j >> 1)] >> (4 * (j & 1))) & 15) | (((high >> (2 * j)) & 3) << 4)) - 32;
        return { size: 32, step: d * sc, offset: 0, qMin: 0, qMax: 15, tol: 127 * 2 ** -10, levels: layout.KVALUES_IQ4NL };
      });
    }
    default: throw new Error(`no grid for ${typeName(type)}`);
  }
}

/** Distance from x to the nearest level of the grid. */
function nearestLevelDistance(x: number, g: Grid): number {
  if (g.step === 0) return Math.abs(x - g.offset);
  if (g.levels) return Math.min(...Array.from(g.levels, (level) => Math.abs(x - (g.step * level + g.offset))));
  const q = Math.min(g.qMax, Math.max(g.qMin, Math.round((x - g.offset) / g.step)));
  let best = Infinity;
  for (const k of [q - 1, q, q + 1]) if (k >= g.qMin && k <= g.qMax) best = Math.min(best, Math.abs(x - (g.step * k + g.offset)));
  return best;
}

const N_PER_ROW = 1024;
const N_ROWS = 8;

/** Relative RMS error bounds (RMS(x − x̂)/RMS(x)) on the test data (the 1% outliers dominate); measured in comments. */
const BLOCK_TYPES: [GGMLType, number][] = [
  [GGMLType.Q8_0, 0.02],  // 0.0122
  [GGMLType.Q4_0, 0.05],  // 0.0300
  [GGMLType.Q4_1, 0.11],  // 0.0733
  [GGMLType.Q5_0, 0.05],  // 0.0303
  [GGMLType.Q5_1, 0.07],  // 0.0470
  [GGMLType.Q2_K, 0.2],   // 0.1283
  [GGMLType.Q3_K, 0.09],  // 0.0583
  [GGMLType.Q4_K, 0.07],  // 0.0454
  [GGMLType.Q5_K, 0.05],  // 0.0331
  [GGMLType.Q6_K, 0.03],  // 0.0196
  [GGMLType.IQ4_NL, 0.08], // 0.0542 (the x²-weighted scale search favours the outliers over the bulk)
  [GGMLType.IQ4_XS, 0.1],  // 0.0672
];

function roundTrip(type: GGMLType, x: Float32Array, importance?: Float32Array): { bytes: Uint8Array; y: Float32Array } {
  const bytes = quantizeRows(type, x, N_PER_ROW, N_ROWS, importance);
  const y = new Float32Array(x.length);
  const rb = rowBytes(type, N_PER_ROW);
  for (let r = 0; r < N_ROWS; r++) dequantizeRow(type, bytes.subarray(r * rb, (r + 1) * rb), N_PER_ROW, y, r * N_PER_ROW);
  return { bytes, y };
}

function relativeRms(x: Float32Array, y: Float32Array): number {
  let e = 0, s = 0;
  for (let i = 0; i < x.length; i++) { e += (x[i] - y[i]) ** 2; s += x[i] ** 2; }
  return Math.sqrt(e / s);
}

for (const [type, rmsBound] of BLOCK_TYPES) {
  test(`${typeName(type)} round trip: nearest level of each block's grid, relative RMS ≤ ${rmsBound}`, (t) => {
    const x = randomRows(1000 + type, N_PER_ROW * N_ROWS);
    const { bytes, y } = roundTrip(type, x);
    const rb = rowBytes(type, N_PER_ROW);
    const valuesPerBlock = typeInfo(type).blockSize;
    const blockBytes = rowBytes(type, valuesPerBlock);
    let checked = 0;
    for (let r = 0; r < N_ROWS; r++) {
      for (let blk = 0; blk < N_PER_ROW / valuesPerBlock; blk++) {
        const at = r * rb + blk * blockBytes;
        let i = r * N_PER_ROW + blk * valuesPerBlock;
        for (const g of blockGrids(type, bytes.subarray(at, at + blockBytes))) {
          for (let k = 0; k < g.size; k++, i++) {
            const err = Math.abs(x[i] - y[i]);
            const allowed = nearestLevelDistance(x[i], g) + g.tol * Math.abs(g.step) + 1e-7 * Math.abs(x[i]);
            assert.ok(err <= allowed, `value ${i}: x=${x[i]} x̂=${y[i]} error ${err} > ${allowed} (step ${g.step})`);
            checked++;
          }
        }
      }
    }
    assert.equal(checked, x.length);
    const rms = relativeRms(x, y);
    t.diagnostic(`relative RMS error ${rms.toFixed(4)}`);
    assert.ok(rms <= rmsBound, `relative RMS error ${rms} > ${rmsBound}`);
  });
}

test('F16 and BF16 round trip within half an ulp', () => {
  const x = randomRows(7, 4096);
  for (const [type, ulp] of [[GGMLType.F16, 2 ** -11], [GGMLType.BF16, 2 ** -8]] as const) {
    const bytes = new Uint8Array(rowBytes(type, x.length));
    quantizeRow(type, x, 0, x.length, bytes, 0);
    const y = new Float32Array(x.length);
    dequantizeRow(type, bytes, x.length, y);
    for (let i = 0; i < x.length; i++) {
      if (Math.abs(x[i]) < 2 ** -14) continue; // fp16 subnormals have a fixed step
      assert.ok(Math.abs(x[i] - y[i]) <= ulp * Math.abs(x[i]), `${typeName(type)} value ${i}: ${x[i]} → ${y[i]}`);
    }
  }
});

test('an imatrix lowers the error where it puts the weight', () => {
  const x = randomRows(42, N_PER_ROW * N_ROWS);
  // the first 8 of every 32 columns matter 100× more
  const importance = new Float32Array(N_PER_ROW).map((_, i) => (i % 32 < 8 ? 100 : 1));
  const weightedError = (y: Float32Array) => {
    let e = 0;
    for (let i = 0; i < x.length; i++) e += importance[i % N_PER_ROW] * (x[i] - y[i]) ** 2;
    return e;
  };
  for (const type of [GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.IQ4_XS]) {
    const plain = weightedError(roundTrip(type, x).y);
    const weighted = weightedError(roundTrip(type, x, importance).y);
    assert.ok(weighted < plain, `${typeName(type)}: weighted error with imatrix ${weighted} ≥ without ${plain}`);
  }
});

test('an imatrix of ones for Q8_0 changes nothing (ggml ignores it)', () => {
  const x = randomRows(5, N_PER_ROW * N_ROWS);
  const ones = new Float32Array(N_PER_ROW).fill(1);
  assert.deepEqual(roundTrip(GGMLType.Q8_0, x, ones).bytes, roundTrip(GGMLType.Q8_0, x).bytes);
});
