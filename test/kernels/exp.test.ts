// expF64: the exponential both backends evaluate silu with (the WASM kernels step for step, checked bit for bit in
// consistency.test.ts). Here: its accuracy against Math.exp, its edges, and the f32 silu it gives.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expF64, ReferenceBackend } from '../../src/kernels/reference.js';

test('expF64 is within 2 ulp (4.5e-16 relative) of Math.exp over its whole range', () => {
  let worst = 0;
  for (let i = 0; i <= 200_000; i++) {
    const t = -708 + (1417 * i) / 200_000;
    worst = Math.max(worst, Math.abs(expF64(t) / Math.exp(t) - 1));
  }
  assert.ok(worst <= 4.5e-16, `worst relative error ${worst}`);
  assert.equal(expF64(0), 1);
});

test('expF64 clamps its argument to [−708, 709] and keeps NaN', () => {
  assert.equal(expF64(-1000), expF64(-708));
  assert.equal(expF64(1000), expF64(709));
  assert.ok(Number.isFinite(expF64(709)) && expF64(-708) > 2.2250738585072014e-308, 'both ends stay finite and normal');
  assert.ok(Number.isNaN(expF64(NaN)));
});

test('swiglu rounds silu(g)·u to the same f32 as the formula with Math.exp', () => {
  const backend = new ReferenceBackend();
  const gate = Float32Array.from({ length: 40_001 }, (_, i) => -100 + i / 200);
  const up = Float32Array.from(gate, (_, i) => (i % 7) - 3.25);
  const out = new Float32Array(gate.length);
  backend.swiglu(out, gate, up, gate.length);
  const exact = Float32Array.from(gate, (g, i) => (g / (1 + Math.exp(-g))) * up[i]);
  assert.deepEqual(out, exact);
});
