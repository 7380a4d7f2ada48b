// PTQ library: FP8 codes of known values, round trips of every scheme on seeded random data within their error
// bounds, activation calibration on known distributions, and a scheme applied to a model (GGUF-mapped and simulated).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { loadGGUF, ggufFromBytes } from '../../src/gguf/model-file.js';
import { serializeGGUF } from '../../src/gguf/writer.js';
import { getString } from '../../src/gguf/metadata.js';
import { GGMLType } from '../../src/tensor/ggml-type.js';
import { dequantizeTensor } from '../../src/tensor/codec.js';
import { quantizeRows } from '../../src/quant/ggml-quantize.js';
import { decodeFp8, E4M3, E5M2, encodeFp8, roundToFp8 } from '../../src/quant/ptq/fp8.js';
import { parseScheme, SchemeError, ggufTypeForScheme, describeScheme } from '../../src/quant/ptq/scheme.js';
import { fakeQuantize } from '../../src/quant/ptq/fake-quant.js';
import { calibrateThreshold } from '../../src/quant/ptq/calibrate.js';
import { quantizeWithScheme } from '../../src/quant/ptq/quantize-model.js';
import { calibrateActivations, withActivationQuantization } from '../../src/quant/ptq/activations.js';
import { Model } from '../../src/generate/model.js';
import { createBackend } from '../../src/kernels/select.js';
import { compareWithBase, scoredLogits } from '../../src/quant/compare.js';

/** Seeded uniform [0, 1) (LCG) and standard normal (Box–Muller). */
function randomSource(seed: number) {
  let s = seed >>> 0;
  const uniform = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

test('FP8 E4M3 and E5M2 encode and decode known values', () => {
  // E4M3: 0x7e = 0.1111.110 = 1.75·2^8, 0x7f NaN, 0x01 = 2^-9 (smallest subnormal), 0x08 = 2^-6 (smallest normal)
  assert.equal(decodeFp8(0x7e, E4M3), 448);
  assert.ok(Number.isNaN(decodeFp8(0x7f, E4M3)));
  assert.equal(decodeFp8(0x01, E4M3), 2 ** -9);
  assert.equal(decodeFp8(0x07, E4M3), 7 * 2 ** -9);
  assert.equal(decodeFp8(0x08, E4M3), 2 ** -6);
  assert.equal(decodeFp8(0xb8, E4M3), -1);
  assert.equal(encodeFp8(448, E4M3), 0x7e);
  assert.equal(encodeFp8(-448, E4M3), 0xfe);
  assert.equal(encodeFp8(1, E4M3), 0x38);
  // E5M2: 0x7b = 1.75·2^15, 0x7c inf, 0x01 = 2^-16, 0x04 = 2^-14
  assert.equal(decodeFp8(0x7b, E5M2), 57344);
  assert.equal(decodeFp8(0x7c, E5M2), Infinity);
  assert.ok(Number.isNaN(decodeFp8(0x7d, E5M2)));
  assert.equal(decodeFp8(0x01, E5M2), 2 ** -16);
  assert.equal(decodeFp8(0x04, E5M2), 2 ** -14);
  assert.equal(encodeFp8(57344, E5M2), 0x7b);
  // saturation instead of overflow
  assert.equal(roundToFp8(1000, E4M3), 448);
  assert.equal(roundToFp8(-1e9, E4M3), -448);
  assert.equal(roundToFp8(1e6, E5M2), 57344);
  // subnormal rounding (ties to even) and underflow to zero
  assert.equal(roundToFp8(1.5 * 2 ** -9, E4M3), 2 * 2 ** -9);
  assert.equal(roundToFp8(2.5 * 2 ** -9, E4M3), 2 * 2 ** -9);
  assert.equal(roundToFp8(0.4 * 2 ** -9, E4M3), 0);
  assert.equal(roundToFp8(0.3, E4M3), 0.3125);
  assert.equal(roundToFp8(0.3, E5M2), 0.3125);
  // every finite code decodes and encodes back to itself
  for (const f of [E4M3, E5M2]) {
    for (let code = 0; code < 256; code++) {
      const v = decodeFp8(code, f);
      if (Number.isFinite(v) && code !== 0x80) assert.equal(encodeFp8(v, f), code, `${f.name} code ${code}`);
    }
  }
});

test('scheme names parse, map to GGUF block formats only where exact, and refuse nonsense', () => {
  assert.deepEqual(parseScheme('int4-asym-g32'), { format: 'int4', symmetric: false, granularity: 'group', groupSize: 32 });
  assert.deepEqual(parseScheme('fp8-e4m3-tensor'), { format: 'fp8-e4m3', symmetric: true, granularity: 'tensor', groupSize: 0 });
  assert.equal(describeScheme(parseScheme('int8')), 'int8 sym per-channel');
  assert.equal(ggufTypeForScheme(parseScheme('int8-g32')), GGMLType.Q8_0);
  assert.equal(ggufTypeForScheme(parseScheme('int4-sym-g32')), GGMLType.Q4_0);
  assert.equal(ggufTypeForScheme(parseScheme('int4-asym-g32')), GGMLType.Q4_1);
  assert.equal(ggufTypeForScheme(parseScheme('int4-g64')), undefined);
  assert.equal(ggufTypeForScheme(parseScheme('int8-channel')), undefined);
  assert.throws(() => parseScheme('int3'), SchemeError);
  assert.throws(() => parseScheme('fp8-e4m3-asym'), SchemeError);
  assert.throws(() => parseScheme('int8-g0'), SchemeError);
});

/** rows × cols values whose row r has magnitude 2^(r mod 6) */
function varyingRows(rows: number, cols: number, seed: number): Float32Array {
  const { normal } = randomSource(seed);
  return Float32Array.from({ length: rows * cols }, (_, i) => normal() * 2 ** (Math.floor(i / cols) % 6));
}

function rmsError(x: Float32Array, y: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - y[i]) ** 2;
  return Math.sqrt(s / x.length);
}

test('integer schemes round trip within half a step of their group\'s scale', () => {
  const cols = 64, rows = 12;
  const x = varyingRows(rows, cols, 7);
  for (const name of ['int8-sym-tensor', 'int8-asym-tensor', 'int8-sym-channel', 'int4-asym-channel', 'int4-sym-g16', 'int2-asym-g8', 'int2-sym-g32']) {
    const scheme = parseScheme(name);
    const q = fakeQuantize(x, cols, scheme);
    assert.equal(q.scales.length, x.length / q.groupLength, name);
    assert.equal(q.zeroPoints.length, scheme.symmetric ? 0 : q.scales.length, name);
    for (let i = 0; i < x.length; i++) {
      const scale = q.scales[Math.floor(i / q.groupLength)];
      assert.ok(Math.abs(x[i] - q.values[i]) <= scale / 2 * (1 + 1e-6), `${name} value ${i}: |${x[i]} − ${q.values[i]}| > ${scale / 2}`);
      // the value is on the grid: an integer multiple of the scale away from the zero point
      const steps = q.values[i] / scale;
      assert.ok(Math.abs(steps - Math.round(steps)) < 1e-4, `${name} value ${i} off the grid`);
    }
    const bits = Number(name.slice(3, 4));
    const levels = new Set(q.values.subarray(0, q.groupLength)).size;
    assert.ok(levels <= 2 ** bits, `${name}: ${levels} levels in one group`);
  }
  // finer granularity is tighter on rows of different magnitudes
  const err = (name: string) => rmsError(x, fakeQuantize(x, cols, parseScheme(name)).values);
  assert.ok(err('int4-sym-g16') < err('int4-sym-channel') && err('int4-sym-channel') < 0.5 * err('int4-sym-tensor'),
    `per-group ${err('int4-sym-g16')}, per-channel ${err('int4-sym-channel')}, per-tensor ${err('int4-sym-tensor')}`);
  assert.ok(err('int4-asym-g16') < err('int4-sym-tensor'));
  assert.ok(err('int8-sym-channel') < err('int4-sym-channel') / 8);
});

test('FP8 schemes scale each group\'s amax to the format\'s largest value', () => {
  const cols = 32;
  const x = varyingRows(4, cols, 3);
  for (const [name, max, mantissaBits] of [['fp8-e4m3-channel', 448, 3], ['fp8-e5m2-channel', 57344, 2]] as const) {
    const q = fakeQuantize(x, cols, parseScheme(name));
    for (let r = 0; r < 4; r++) {
      let amax = 0;
      for (let i = r * cols; i < (r + 1) * cols; i++) amax = Math.max(amax, Math.abs(x[i]));
      assert.ok(Math.abs(q.scales[r] - amax / max) <= 1e-6 * q.scales[r], name);
      // relative error of a normal value is at most half an ulp: 2^-(mantissaBits+1)
      for (let i = r * cols; i < (r + 1) * cols; i++) {
        if (Math.abs(x[i]) / q.scales[r] >= 2 ** (mantissaBits === 3 ? -6 : -14)) {
          assert.ok(Math.abs(q.values[i] - x[i]) <= Math.abs(x[i]) * 2 ** -(mantissaBits + 1) * (1 + 1e-6), `${name} value ${i}`);
        }
      }
    }
  }
});

test('int8 sym per-group 32 matches Q8_0 up to Q8_0\'s f16 scale', () => {
  const x = varyingRows(4, 64, 11);
  const q = fakeQuantize(x, 64, parseScheme('int8-sym-g32'));
  const q8 = dequantizeTensor({ name: 'x', type: GGMLType.Q8_0, dims: [64, 4], data: quantizeRows(GGMLType.Q8_0, x, 64, 4) });
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(q.values[i] - q8[i]) <= 2e-3 * q.scales[Math.floor(i / 32)] * 127, `value ${i}`);
});

test('calibration: KL and percentile clip Gaussian outliers below min-max; uniform data keeps ≈ max', () => {
  const { normal, uniform } = randomSource(12345);
  const n = 100_000;
  const gaussian = Float32Array.from({ length: n }, normal);
  for (let i = 0; i < 10; i++) gaussian[i * 997] = (i % 2 ? 1 : -1) * 40; // planted outliers
  const minmax = calibrateThreshold(gaussian, { method: 'minmax' });
  const pct = calibrateThreshold(gaussian, { method: 'percentile', percentile: 99.99 });
  const kl = calibrateThreshold(gaussian, { method: 'kl' });
  assert.equal(minmax, 40);
  // |x| of a standard normal: 99.99th percentile ≈ 3.89; the outliers are 0.01 % of the data
  assert.ok(pct > 3 && pct < 5, `percentile ${pct}`);
  assert.ok(kl > 2 && kl < 10, `KL ${kl}`);
  const flat = Float32Array.from({ length: n }, () => 2 * uniform() - 1);
  const flatMax = calibrateThreshold(flat, { method: 'minmax' });
  assert.ok(calibrateThreshold(flat, { method: 'percentile', percentile: 99.99 }) > 0.999 * flatMax);
  assert.ok(calibrateThreshold(flat, { method: 'kl' }) > 0.95 * flatMax, 'KL on uniform data');
});

test('a scheme applied to kq-f32: int4-asym-g32 is stored as Q4_1, int4-g64 simulated in F32, with activation ranges', () => {
  const model = loadGGUF(sharedPath('conformance', 'models', 'kq-f32.gguf'));
  const mapped = ggufFromBytes(serializeGGUF(quantizeWithScheme(model, parseScheme('int4-asym-g32'))));
  assert.equal(mapped.tensor('blk.0.ffn_up.weight').type, GGMLType.Q4_1);
  assert.equal(mapped.tensor('blk.0.attn_norm.weight').type, GGMLType.F32);
  assert.equal(getString(mapped.metadata, 'kiln.quant.scheme'), 'int4 asym per-group 32; stored as Q4_1');

  const chunks = [[1, ...Array.from({ length: 15 }, (_, i) => (i * 37) % 512)]];
  const ranges = calibrateActivations(model, chunks, { method: 'percentile', percentile: 99 });
  assert.equal(ranges.length, 2 * 7 + 1); // 7 matrix products per layer and output
  for (const r of ranges) assert.ok(r.clip > 0 && r.clip <= r.amax, `${r.tensor}: clip ${r.clip}, amax ${r.amax}`);
  const simulated = ggufFromBytes(serializeGGUF(quantizeWithScheme(model, parseScheme('int4-g64'), { activations: { method: 'percentile', format: 'int8', ranges } })));
  const w = simulated.tensor('blk.1.attn_q.weight');
  assert.equal(w.type, GGMLType.F32);
  const expected = fakeQuantize(dequantizeTensor(model.tensor('blk.1.attn_q.weight')), 256, parseScheme('int4-g64')).values;
  assert.deepEqual(dequantizeTensor(w), expected);
  assert.equal(getString(simulated.metadata, 'kiln.quant.scheme'), 'int4 sym per-group 64; stored as dequantized F32 (simulated)');
  assert.equal(getString(simulated.metadata, 'kiln.quant.activation.method'), 'percentile');
});

test('calibrated activation ranges quantize matmul inputs at run time (W8A8 on stories260K)', () => {
  const base = loadGGUF(sharedPath('data', 'models', 'stories260K.gguf'));
  const backend = createBackend();
  const chunks = [[1, ...Array.from({ length: 31 }, (_, i) => 30 + ((i * 53) % 400))]];
  const baseScored = scoredLogits(new Model(base, backend), chunks);
  const ranges = calibrateActivations(base, chunks, { method: 'minmax' });
  const withRanges = (scale: number) => ggufFromBytes(serializeGGUF(quantizeWithScheme(base, parseScheme('int8-channel'),
    { activations: { method: 'minmax', format: 'int8', ranges: ranges.map((r) => ({ ...r, clip: r.clip * scale })) } })));
  const kld = (model: Model) => compareWithBase(model, chunks, (c) => baseScored[c]).meanKld;
  const weightsOnly = kld(new Model(withRanges(1), backend));
  const w8a8 = kld(withActivationQuantization(new Model(withRanges(1), backend)));
  const clipped = kld(withActivationQuantization(new Model(withRanges(0.05), backend)));
  assert.ok(weightsOnly > 0 && w8a8 > weightsOnly && clipped > 10 * w8a8, `KLD weights only ${weightsOnly}, W8A8 ${w8a8}, clipped to 5 % ${clipped}`);
  // a file without ranges runs unchanged
  const plain = new Model(base, backend);
  assert.equal(withActivationQuantization(plain), plain);
});
