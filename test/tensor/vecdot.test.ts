// Activation quantizers and weight·activation dot products: vecDot against float64 dots of the decoded rows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import {
  GGMLType, TensorDataError, UnknownTensorTypeError, activationRowBytes, dequantizeRow, fp16ToFp32, fp32ToFp16, fp32ToBf16,
  layout, quantizeRowForDot, rowBytes, typeInfo, typeName, vecDot, vecDotType,
} from '../../src/tensor/index.js';
import { mulberry32 } from '../helpers/random.js';

const WEIGHT_TYPES = [
  GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
];

/** Byte offsets of the fp16 scale fields in each block of the quantized weight types. */
const SCALE_FIELDS = new Map<GGMLType, number[]>([
  [GGMLType.Q4_0, [layout.Q4_0.d]], [GGMLType.Q4_1, [layout.Q4_1.d, layout.Q4_1.m]], [GGMLType.Q5_0, [layout.Q5_0.d]],
  [GGMLType.Q5_1, [layout.Q5_1.d, layout.Q5_1.m]], [GGMLType.Q8_0, [layout.Q8_0.d]],
  [GGMLType.Q2_K, [layout.Q2_K.d, layout.Q2_K.dmin]], [GGMLType.Q3_K, [layout.Q3_K.d]],
  [GGMLType.Q4_K, [layout.Q4_K.d, layout.Q4_K.dmin]], [GGMLType.Q5_K, [layout.Q5_K.d, layout.Q5_K.dmin]],
  [GGMLType.Q6_K, [layout.Q6_K.d]], [GGMLType.IQ4_NL, [layout.IQ4_NL.d]], [GGMLType.IQ4_XS, [layout.IQ4_XS.d]],
]);

const writeU16 = (bytes: Uint8Array, at: number, v: number) => { bytes[at] = v & 0xff; bytes[at + 1] = v >> 8; };

/** A random weight row: random quant bits with random finite scales, or random floats for the float types. */
function randomWeightRow(type: GGMLType, n: number, random: () => number): Uint8Array {
  const bytes = new Uint8Array(rowBytes(type, n));
  const value = () => (random() - 0.5) * 0.2;
  if (type === GGMLType.F32) {
    new Float32Array(bytes.buffer).set(Float32Array.from({ length: n }, value));
  } else if (type === GGMLType.F16 || type === GGMLType.BF16) {
    for (let i = 0; i < n; i++) writeU16(bytes, 2 * i, type === GGMLType.F16 ? fp32ToFp16(value()) : fp32ToBf16(value()));
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
    const { typeSize } = typeInfo(type);
    for (let at = 0; at < bytes.length; at += typeSize) {
      for (const field of SCALE_FIELDS.get(type)!) writeU16(bytes, at + field, fp32ToFp16(value() * 0.1));
    }
  }
  return bytes;
}

/** Activations: mostly small normal-ish values, some outliers, one all-zero stretch of 256. */
function randomActivations(n: number, random: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (random() + random() + random() - 1.5) * (random() < 0.02 ? 20 : 1);
  x.fill(0, 256, 512);
  return x;
}

function quantized(type: GGMLType, x: Float32Array): Uint8Array {
  const a = new Uint8Array(activationRowBytes(type, x.length) + 5);
  quantizeRowForDot(type, x, 0, x.length, a, 5); // at an odd offset: nothing may assume alignment
  return a.subarray(5);
}

/**
 * The dot product ggml's formula gives, in float64 from the decoded rows: Σ w_i·a_i, except that the _1 formats take the
 * activation block's stored s (fp16 of d·Σq) for the min term: Σ_blocks (Σ (w_i − m)·a_i + m·s).
 */
function referenceDot(type: GGMLType, w: Uint8Array, a: Uint8Array, n: number): { dot: number; magnitude: number } {
  const wv = new Float32Array(n);
  const av = new Float32Array(n);
  dequantizeRow(type, w, n, wv);
  dequantizeRow(vecDotType(type), a, n, av);
  let dot = 0, magnitude = 0;
  for (let i = 0; i < n; i++) magnitude += Math.abs(wv[i] * av[i]);
  if (type === GGMLType.Q4_1 || type === GGMLType.Q5_1) {
    const wl = type === GGMLType.Q4_1 ? layout.Q4_1 : layout.Q5_1;
    for (let b = 0; b < n / 32; b++) {
      const m = fp16ToFp32(w[b * wl.bytes + wl.m] | (w[b * wl.bytes + wl.m + 1] << 8));
      const s = fp16ToFp32(a[b * layout.Q8_1.bytes + layout.Q8_1.s] | (a[b * layout.Q8_1.bytes + layout.Q8_1.s + 1] << 8));
      for (let i = 32 * b; i < 32 * b + 32; i++) dot += (wv[i] - m) * av[i];
      dot += m * s;
      magnitude += Math.abs(m * s);
    }
  } else {
    for (let i = 0; i < n; i++) dot += wv[i] * av[i];
  }
  return { dot, magnitude };
}

/** Float32 accumulation over `steps` additions: at most (steps + 2)·2^-24·Σ|terms| away from the exact sum. */
function float32Tolerance(type: GGMLType, n: number, magnitude: number): number {
  return (n / typeInfo(type).blockSize + 2) * 2 ** -24 * magnitude;
}

/** Largest |x − decoded(quantized x)| allowed for a value x of a block whose largest magnitude is amax. */
function activationErrorBound(type: GGMLType, x: number, amax: number): number {
  switch (type) {
    case GGMLType.F32: return 0;
    case GGMLType.F16: return Math.abs(x) * 2 ** -11 + 2 ** -25;
    case GGMLType.BF16: return Math.abs(x) * 2 ** -8;
    // half a step d = amax/127, plus d's fp16 rounding over up to 127 steps
    case GGMLType.Q8_0: case GGMLType.Q8_1: return (amax / 127) * (0.5 + 127 * 2 ** -11) * 1.0001;
    default: return (amax / 127) * 0.5 * 1.0001; // Q8_K: d kept in float32
  }
}

test('vec_dot_type of every weight type is ggml\'s', () => {
  const expected: [GGMLType, GGMLType][] = [
    [GGMLType.F32, GGMLType.F32], [GGMLType.F16, GGMLType.F16], [GGMLType.BF16, GGMLType.BF16],
    [GGMLType.Q4_0, GGMLType.Q8_0], [GGMLType.Q5_0, GGMLType.Q8_0], [GGMLType.Q8_0, GGMLType.Q8_0],
    [GGMLType.Q4_1, GGMLType.Q8_1], [GGMLType.Q5_1, GGMLType.Q8_1],
    [GGMLType.Q2_K, GGMLType.Q8_K], [GGMLType.Q3_K, GGMLType.Q8_K], [GGMLType.Q4_K, GGMLType.Q8_K],
    [GGMLType.Q5_K, GGMLType.Q8_K], [GGMLType.Q6_K, GGMLType.Q8_K], [GGMLType.IQ4_NL, GGMLType.Q8_0], [GGMLType.IQ4_XS, GGMLType.Q8_K],
  ];
  for (const [weight, activation] of expected) assert.equal(typeName(vecDotType(weight)), typeName(activation));
  assert.equal(activationRowBytes(GGMLType.Q8_K, 512), 2 * 292);
  assert.equal(activationRowBytes(GGMLType.Q8_0, 64), 2 * 34);
  assert.equal(activationRowBytes(GGMLType.F16, 64), 128);
});

for (const type of WEIGHT_TYPES) {
  test(`vecDot ${typeName(type)} on random rows`, () => {
    const random = mulberry32(1000 + type);
    const n = 1024;
    const dotType = vecDotType(type);
    for (let trial = 0; trial < 20; trial++) {
      const w = randomWeightRow(type, n, random);
      const x = randomActivations(n, random);
      const a = quantized(dotType, x);
      const got = vecDot(type, w, 0, a, 0, n);

      // tight: the same arithmetic in float64 on the decoded rows
      const { dot, magnitude } = referenceDot(type, w, a, n);
      assert.ok(Math.abs(got - dot) <= float32Tolerance(type, n, magnitude), `trial ${trial}: ${got} vs ${dot}`);

      // loose: against the unquantized activations, within the activation rounding error
      const wv = new Float32Array(n);
      const av = new Float32Array(n);
      dequantizeRow(type, w, n, wv);
      dequantizeRow(dotType, a, n, av);
      const block = typeInfo(dotType).blockSize;
      let exact = 0, allowed = float32Tolerance(type, n, magnitude) + Math.abs(dot - sumProducts(wv, av));
      for (let b = 0; b < n; b += block) {
        let amax = 0;
        for (let i = b; i < b + block; i++) amax = Math.max(amax, Math.abs(x[i]));
        for (let i = b; i < b + block; i++) {
          const bound = activationErrorBound(dotType, x[i], amax);
          if (Math.abs(x[i] - av[i]) > bound) assert.fail(`activation ${i}: ${x[i]} → ${av[i]}`);
          exact += wv[i] * x[i];
          allowed += Math.abs(wv[i]) * bound;
        }
      }
      assert.ok(Math.abs(got - exact) <= allowed, `trial ${trial}: ${got} vs unquantized ${exact}`);
    }
  });
}

function sumProducts(u: Float32Array, v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < u.length; i++) s += u[i] * v[i];
  return s;
}

test('vecDot on the rows of the quantized conformance models', () => {
  const random = mulberry32(7);
  const seen = new Set<GGMLType>();
  for (const name of ['kq-Q2_K', 'kq-Q3_K_M', 'kq-Q4_0', 'kq-Q4_1', 'kq-Q5_0', 'kq-Q5_1', 'kq-Q4_K_M', 'kq-Q5_K_M', 'kq-Q8_0', 'kq-BF16', 'kq-F16', 'kq-f32']) {
    const model = loadGGUF(sharedPath('conformance', 'models', `${name}.gguf`));
    for (const info of model.tensorInfos) {
      if (info.dims.length !== 2) continue;
      const t = model.tensor(info.name);
      const n = t.dims[0];
      const bytesPerRow = rowBytes(t.type, n);
      const x = randomActivations(Math.max(n, 512), random).subarray(0, n);
      const a = quantized(vecDotType(t.type), x);
      for (const row of [0, t.dims[1] - 1]) {
        const got = vecDot(t.type, t.data, row * bytesPerRow, a, 0, n);
        const { dot, magnitude } = referenceDot(t.type, t.data.subarray(row * bytesPerRow), a, n);
        assert.ok(Math.abs(got - dot) <= float32Tolerance(t.type, n, magnitude), `${name} ${info.name} row ${row}: ${got} vs ${dot}`);
      }
      seen.add(t.type);
    }
  }
  // every type but the IQ4 ones, which no conformance model holds
  assert.equal(seen.size, WEIGHT_TYPES.length - 2, `types covered: ${[...seen].map(typeName)}`);
});

test('Q8_0 / Q8_1 activations: d = amax/127, ties round to even, s = d·Σq', () => {
  const x = new Float32Array(32);
  x.set([127, 2.5, 3.5, -2.5, -3.5, 0.5, 1.5, -0.5, 126.5, -127]);
  for (const type of [GGMLType.Q8_0, GGMLType.Q8_1]) {
    const a = quantized(type, x);
    const l = type === GGMLType.Q8_0 ? layout.Q8_0 : layout.Q8_1;
    assert.equal(fp16ToFp32(a[l.d] | (a[l.d + 1] << 8)), 1);
    const q = [...new Int8Array(a.buffer, a.byteOffset + l.qs, 10)];
    assert.deepEqual(q, [127, 2, 4, -2, -4, 0, 2, 0, 126, -127]);
    if (type === GGMLType.Q8_1) {
      const s = fp16ToFp32(a[layout.Q8_1.s] | (a[layout.Q8_1.s + 1] << 8));
      assert.equal(s, q.reduce((p, v) => p + v, 0));
    }
  }
  // x86 ggml multiplies by 127/amax (not by 1/d as the scalar reference): here the two round to different quants
  const near = new Float32Array(32);
  near.set([0.699866533279419, 0.008266139775514603]);
  const nearQuants = quantized(GGMLType.Q8_0, near);
  assert.equal(new Int8Array(nearQuants.buffer, nearQuants.byteOffset + layout.Q8_0.qs, 2)[1], 1);
  const zeros = quantized(GGMLType.Q8_0, new Float32Array(32));
  assert.ok(zeros.every((byte) => byte === 0));
});

test('Q8_K activations: d = max/−127 with the sign of the largest-magnitude value, bsums, zero blocks', () => {
  const random = mulberry32(3);
  const x = Float32Array.from({ length: 512 }, () => random() * 2 - 1);
  x[17] = 3; // block 0: largest is positive → d negative and q = −127 there
  x[256 + 40] = -4; // block 1: largest is negative → d positive
  const a = quantized(GGMLType.Q8_K, x);
  const f32 = (at: number) => new DataView(a.buffer, a.byteOffset).getFloat32(at, true);
  const s8 = (at: number) => new DataView(a.buffer, a.byteOffset).getInt8(at);
  const s16 = (at: number) => new DataView(a.buffer, a.byteOffset).getInt16(at, true);
  const Q = layout.Q8_K;
  assert.equal(f32(Q.d), Math.fround(1 / Math.fround(-127 / 3)));
  assert.equal(s8(Q.qs + 17), -127);
  assert.equal(f32(Q.bytes + Q.d), Math.fround(1 / Math.fround(127 / 4)));
  assert.equal(s8(Q.bytes + Q.qs + 40), -127);
  for (let b = 0; b < 2; b++) {
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) sum += s8(b * Q.bytes + Q.qs + 16 * g + i);
      assert.equal(s16(b * Q.bytes + Q.bsums + 2 * g), sum);
    }
  }
  const zeros = quantized(GGMLType.Q8_K, new Float32Array(256));
  assert.ok(zeros.every((byte) => byte === 0));
});

test('bad arguments give typed errors', () => {
  const a = quantized(GGMLType.Q8_0, new Float32Array(64));
  const w = new Uint8Array(rowBytes(GGMLType.Q4_0, 64));
  assert.equal(vecDot(GGMLType.Q4_0, w, 0, a, 0, 64), 0);
  assert.throws(() => vecDot(GGMLType.Q4_0, w, 0, a, 0, 48), TensorDataError); // not whole blocks
  assert.throws(() => vecDot(GGMLType.Q4_0, w, 1, a, 0, 64), TensorDataError); // runs past the weights
  assert.throws(() => vecDot(GGMLType.Q4_0, w, 0, a.subarray(1), 0, 64), TensorDataError); // activations too short
  assert.throws(() => vecDot(GGMLType.Q8_1, w, 0, a, 0, 32), UnknownTensorTypeError); // not a weight type
  assert.throws(() => vecDotType(GGMLType.I32), UnknownTensorTypeError);
  assert.throws(() => quantizeRowForDot(GGMLType.Q4_0, new Float32Array(32), 0, 32, new Uint8Array(64), 0), UnknownTensorTypeError);
  assert.throws(() => quantizeRowForDot(GGMLType.Q8_0, new Float32Array(32), 8, 32, new Uint8Array(64), 0), TensorDataError);
  assert.throws(() => dequantizeRow(GGMLType.Q6_K, new Uint8Array(100), 256, new Float32Array(256)), TensorDataError);
});

test('F32 rows give the same dot product read in place (aligned) or byte by byte (unaligned)', () => {
  const random = mulberry32(11);
  const x = Float32Array.from({ length: 100 }, () => random() - 0.5);
  const w = randomWeightRow(GGMLType.F32, 100, random);
  const unaligned = quantized(GGMLType.F32, x);
  const aligned = new Uint8Array(unaligned);
  assert.equal(aligned.byteOffset % 4, 0);
  assert.notEqual(unaligned.byteOffset % 4, 0);
  const expected = vecDot(GGMLType.F32, w, 0, aligned, 0, 100);
  assert.equal(vecDot(GGMLType.F32, w, 0, unaligned, 0, 100), expected);
  assert.ok(Math.abs(expected - sumProducts(new Float32Array(w.buffer), x)) < 1e-5);
});

test('block layouts agree with the type table\'s block sizes', () => {
  const sizes: [GGMLType, number][] = [
    [GGMLType.Q4_0, layout.Q4_0.bytes], [GGMLType.Q4_1, layout.Q4_1.bytes], [GGMLType.Q5_0, layout.Q5_0.bytes],
    [GGMLType.Q5_1, layout.Q5_1.bytes], [GGMLType.Q8_0, layout.Q8_0.bytes], [GGMLType.Q8_1, layout.Q8_1.bytes],
    [GGMLType.Q2_K, layout.Q2_K.bytes], [GGMLType.Q3_K, layout.Q3_K.bytes], [GGMLType.Q4_K, layout.Q4_K.bytes],
    [GGMLType.Q5_K, layout.Q5_K.bytes], [GGMLType.Q6_K, layout.Q6_K.bytes], [GGMLType.Q8_K, layout.Q8_K.bytes],
    [GGMLType.IQ4_NL, layout.IQ4_NL.bytes], [GGMLType.IQ4_XS, layout.IQ4_XS.bytes],
  ];
  for (const [type, bytes] of sizes) assert.equal(bytes, typeInfo(type).typeSize, typeName(type));
});
