// Rope angles: plain, linear scaling, and YaRN (llama.cpp's rope_yarn: a ramp between extrapolated and interpolated
// frequencies over the pairs between ggml_rope_yarn_corr_dims' bounds, and a magnitude of 1 + 0.1·ln(factor)).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ropeAngles } from '../../src/kernels/rope.js';
import type { RopeParams } from '../../src/kernels/backend.js';

const positions = Int32Array.of(0, 1, 7, 1000);
const base: RopeParams = { nDims: 64, freqBase: 10000, freqScale: 1, neox: false };
const half = base.nDims / 2;
/** the angle of pair i at row t, recovered from cos and sin (divided by their magnitude) */
const angle = (a: { cos: Float64Array; sin: Float64Array }, t: number, i: number) => Math.atan2(a.sin[t * half + i], a.cos[t * half + i]);
const magnitude = (a: { cos: Float64Array; sin: Float64Array }, t: number, i: number) => Math.hypot(a.sin[t * half + i], a.cos[t * half + i]);
const wrap = (x: number) => Math.atan2(Math.sin(x), Math.cos(x));

test('plain and linearly scaled rope: θ = freqScale · pos · base^(−2i/nDims)', () => {
  for (const freqScale of [1, 0.25]) {
    const a = ropeAngles(positions, { ...base, freqScale });
    for (let t = 0; t < positions.length; t++) {
      for (const i of [0, 5, 31]) {
        const theta = freqScale * positions[t] * 10000 ** (-2 * i / 64);
        assert.ok(Math.abs(wrap(angle(a, t, i) - theta)) < 1e-9, `t ${t} pair ${i}`);
        assert.ok(Math.abs(magnitude(a, t, i) - 1) < 1e-12);
      }
    }
  }
});

test('YaRN: fast pairs extrapolate, slow pairs interpolate, magnitude 1 + 0.1·ln(factor)', () => {
  const factor = 40, originalContext = 4096;
  const yarn = { originalContext, extFactor: 1, attnFactor: 1, betaFast: 32, betaSlow: 1 };
  const a = ropeAngles(positions, { ...base, freqScale: 1 / factor, yarn });
  // the correction range by ggml_rope_yarn_corr_dims: pairs below `low` turn more than 32 times over the original context
  const corr = (rotations: number) => (64 * Math.log(originalContext / (rotations * 2 * Math.PI))) / (2 * Math.log(10000));
  const [low, high] = [Math.floor(corr(32)), Math.ceil(corr(1))];
  assert.ok(low > 0 && high < 31, `range [${low}, ${high}] lies inside the pairs`);
  const t = 3; // position 1000
  for (let i = 0; i < half; i++) {
    const extrapolated = 1000 * 10000 ** (-2 * i / 64);
    const expected = i <= low ? extrapolated : i >= high ? extrapolated / factor : undefined;
    if (expected !== undefined) assert.ok(Math.abs(wrap(angle(a, t, i) - expected)) < 1e-9, `pair ${i}`);
    assert.ok(Math.abs(magnitude(a, t, i) - (1 + 0.1 * Math.log(factor))) < 1e-12);
  }
  // without the extrapolation mix YaRN is linear scaling with attn_factor as magnitude
  const plain = ropeAngles(positions, { ...base, freqScale: 1 / factor, yarn: { ...yarn, extFactor: 0, attnFactor: 0.5 } });
  const linear = ropeAngles(positions, { ...base, freqScale: 1 / factor });
  for (let k = 0; k < plain.cos.length; k++) {
    assert.ok(Math.abs(plain.cos[k] - 0.5 * linear.cos[k]) < 1e-12 && Math.abs(plain.sin[k] - 0.5 * linear.sin[k]) < 1e-12);
  }
});

test('deepseek2 with YaRN: scores × mscale² (mscale = 1 + yarn_log_multiplier·ln(factor)), rope magnitude cancelled', async () => {
  const { readGGUFHeader } = await import('../../src/gguf/reader.js');
  const { metaF32, metaString, metaU32 } = await import('../../src/gguf/writer.js');
  const { deepseek2 } = await import('../../src/models/deepseek2.js');
  const { sharedPath } = await import('../shared.js');
  const meta = new Map(readGGUFHeader(sharedPath('conformance', 'models', 'deepseek2-f32.gguf')).metadata);
  meta.set('deepseek2.rope.scaling.type', metaString('yarn'));
  meta.set('deepseek2.rope.scaling.factor', metaF32(40));
  meta.set('deepseek2.rope.scaling.original_context_length', metaU32(4096));
  const hp = deepseek2.hparams(meta);
  const mscale = 1 + Math.fround(0.1) * Math.log(40);
  assert.ok(Math.abs(hp.attentionScale - (mscale * mscale) / Math.sqrt(24)) < 1e-9);
  assert.equal(hp.rope.freqScale, 1 / 40);
  assert.ok(Math.abs(hp.rope.yarn!.attnFactor * (1 + 0.1 * Math.log(40)) - 1) < 1e-12);
  const a = ropeAngles(Int32Array.of(5), hp.rope);
  assert.ok(Math.abs(Math.hypot(a.cos[0], a.sin[0]) - 1) < 1e-12, 'cos and sin keep magnitude 1');
});
