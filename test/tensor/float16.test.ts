// fp16 / bf16 conversions: round trips, edge values, and float32 → fp16 against an independent nearest-value search.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16ToFp32, bf16ToFp32Array, fp16ToFp32, fp16ToFp32Array, fp32ToBf16, fp32ToBf16Array, fp32ToFp16, fp32ToFp16Array,
} from '../../src/tensor/index.js';
import { mulberry32 } from '../helpers/random.js';

function floatFromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

const hex = (h: number) => `0x${h.toString(16).padStart(4, '0')}`;

test('fp16: every pattern decodes and encodes back to itself (NaN to the quiet NaN 0x7e00)', () => {
  for (let h = 0; h < 65536; h++) {
    const x = fp16ToFp32(h);
    const isNaNPattern = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    assert.equal(Number.isNaN(x), isNaNPattern, hex(h));
    const back = fp32ToFp16(x);
    if (isNaNPattern) assert.equal(back & 0x7fff, 0x7e00, hex(h));
    else if (back !== h) assert.fail(`${hex(h)} → ${x} → ${hex(back)}`);
  }
});

test('fp16: known values and rounding edges', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff],
    [65519.99, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [Infinity, 0x7c00], [-Infinity, 0xfc00], [NaN, 0x7e00],
    [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -25 * 1.0000001, 0x0001],
    [2 ** -14 - 2 ** -25, 0x0400], // tie between the largest subnormal (odd) and the smallest normal: even wins
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -20, 0x3c01], [-(1 + 2 ** -11), 0xbc00],
    [1e-10, 0x0000], [-1e-10, 0x8000], [0.1, 0x2e66], [3.14159265, 0x4248],
  ];
  for (const [x, h] of cases) assert.equal(hex(fp32ToFp16(x)), hex(h), `fp32ToFp16(${x})`);
  assert.equal(fp16ToFp32(0x0001), 2 ** -24);
  assert.equal(fp16ToFp32(0x7bff), 65504);
  assert.equal(fp16ToFp32(0xfc00), -Infinity);
  assert.ok(Object.is(fp16ToFp32(0x8000), -0));
});

// Independent oracle: the nearest of all finite fp16 values (sorted), ties to the even pattern, overflow past 65520 to inf.
const positiveHalves = Array.from({ length: 0x7c00 }, (_, h) => fp16ToFp32(h)); // increasing with h
function nearestFp16(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0, hi = positiveHalves.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positiveHalves[mid] <= a) lo = mid; else hi = mid;
  }
  const dLo = a - positiveHalves[lo], dHi = positiveHalves[hi] - a;
  const h = dLo < dHi ? lo : dHi < dLo ? hi : (lo % 2 === 0 ? lo : hi);
  return sign | h;
}

test('fp16: float32 → fp16 agrees with a nearest-value search on random values and on every exact tie', () => {
  const random = mulberry32(1);
  for (let i = 0; i < 100000; i++) {
    // exponents spread over the whole fp16 range and beyond
    const signAndMantissa = ((random() * 0x100000000) >>> 0) & 0x807fffff;
    const x = floatFromBits((signAndMantissa | ((95 + Math.floor(random() * 50)) << 23)) >>> 0);
    if (fp32ToFp16(x) !== nearestFp16(x)) assert.fail(`${x}: ${hex(fp32ToFp16(x))} vs ${hex(nearestFp16(x))}`);
  }
  for (let h = 0; h < 0x7bff; h++) {
    const mid = (fp16ToFp32(h) + fp16ToFp32(h + 1)) / 2; // exact in float32
    for (const x of [mid, floatFromBits(new Uint32Array(new Float32Array([mid]).buffer)[0] + 1)]) {
      if (fp32ToFp16(x) !== nearestFp16(x)) assert.fail(`${x}: ${hex(fp32ToFp16(x))} vs ${hex(nearestFp16(x))}`);
      if (fp32ToFp16(-x) !== nearestFp16(-x)) assert.fail(`${-x}`);
    }
  }
});

test('bf16: round trip of every pattern, rounding and NaN as ggml_compute_fp32_to_bf16', () => {
  for (let b = 0; b < 65536; b++) {
    const x = bf16ToFp32(b);
    if ((b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0) assert.ok(Number.isNaN(x));
    else if (fp32ToBf16(x) !== b) assert.fail(`${hex(b)} → ${x} → ${hex(fp32ToBf16(x))}`);
  }
  const cases: [number, number][] = [
    [1, 0x3f80], [-1, 0xbf80], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [Infinity, 0x7f80], [-Infinity, 0xff80], [3.4028234663852886e38, 0x7f80], [-0, 0x8000], [NaN, 0x7fc0],
  ];
  for (const [x, b] of cases) assert.equal(hex(fp32ToBf16(x)), hex(b), `fp32ToBf16(${x})`);
  // a signalling NaN (only reachable through the array form, which reads the bits) stays NaN with the quiet bit forced
  const bits = new Uint32Array([0x7f800001, 0xff800001, 0x7fffffff]);
  const out = new Uint16Array(3);
  fp32ToBf16Array(new Float32Array(bits.buffer), out);
  assert.deepEqual([...out].map(hex), ['0x7fc0', '0xffc0', '0x7fff']);
});

test('array conversions agree with the scalar ones', () => {
  const random = mulberry32(2);
  const x = Float32Array.from({ length: 1000 }, () => (random() - 0.5) * 2 ** (random() * 40 - 20));
  const halves = new Uint16Array(x.length);
  const back = new Float32Array(x.length);
  fp32ToFp16Array(x, halves);
  fp16ToFp32Array(halves, back);
  for (let i = 0; i < x.length; i++) {
    assert.equal(halves[i], fp32ToFp16(x[i]));
    assert.equal(back[i], fp16ToFp32(halves[i]));
  }
  fp32ToBf16Array(x, halves);
  bf16ToFp32Array(halves, back);
  for (let i = 0; i < x.length; i++) {
    assert.equal(halves[i], fp32ToBf16(x[i]));
    assert.equal(back[i], bf16ToFp32(halves[i]));
    assert.ok(Math.abs(back[i] - x[i]) <= Math.abs(x[i]) * 2 ** -8);
  }
  assert.throws(() => fp32ToFp16Array(x, new Uint16Array(10)), RangeError);
});
