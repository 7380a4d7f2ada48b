// DPO: the loss and its gradient against the closed form, response-only log-probs, JSONL errors, and on a tiny
// model a synthetic rule (chosen responses end "!!", rejected ".."): the margin rises and held-out accuracy improves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backward, leaf } from '../../src/train/autograd.js';
import { dpoLoss, preferenceStats, readPreferences, PreferenceDataError, trainDpo, type TokenizedPair } from '../../src/train/dpo.js';
import { bindModel, createModel } from '../../src/train/llama-model.js';
import { Param } from '../../src/train/autograd.js';
import { Rng } from '../../src/generate/rng.js';

test('DPO loss: −log σ(β·margin) averaged over pairs, gradient ∓β·σ(−β·margin)/B', () => {
  // policy [πw0, πw1, πl0, πl1], reference likewise
  const policy = leaf(Float32Array.of(-3, -5, -4, -2), 4, 1), reference = Float32Array.of(-3.5, -5, -3, -2.5);
  const beta = 0.5, margins = [(-3 + 3.5) - (-4 + 3), (-5 + 5) - (-2 + 2.5)]; // 1.5, −0.5
  const sigma = (x: number) => 1 / (1 + Math.exp(-x));
  const loss = dpoLoss(policy, reference, beta);
  assert.ok(Math.abs(loss.value[0] - margins.reduce((s, m) => s - Math.log(sigma(beta * m)), 0) / 2) < 1e-6);
  backward(loss);
  margins.forEach((m, i) => {
    const k = (beta * sigma(-beta * m)) / 2;
    assert.ok(Math.abs(policy.grad![i] + k) < 1e-6);
    assert.ok(Math.abs(policy.grad![2 + i] - k) < 1e-6);
  });
});

test('readPreferences: one pair per line; a bad line is a typed error naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-dpo-'));
  writeFileSync(join(dir, 'ok.jsonl'), '{"prompt":"a","chosen":"b","rejected":"c"}\n\n{"prompt":"d","chosen":"e","rejected":"f"}\n');
  assert.deepEqual(readPreferences(join(dir, 'ok.jsonl')).map((p) => p.prompt), ['a', 'd']);
  writeFileSync(join(dir, 'bad.jsonl'), '{"prompt":"a","chosen":"b","rejected":"c"}\n{"prompt":"a","chosen":3}\n');
  assert.throws(() => readPreferences(join(dir, 'bad.jsonl')), (e: Error) => e instanceof PreferenceDataError && /bad\.jsonl:2:/.test(e.message));
});

// prompts of random lowercase letters; the rule: the response "!!" is preferred to ".."
function rulePairs(rng: Rng, n: number): TokenizedPair[] {
  const bytes = (s: string) => Array.from(Buffer.from(s, 'latin1'));
  return Array.from({ length: n }, () => {
    const prompt = Array.from({ length: 6 }, () => String.fromCharCode(97 + Math.floor(rng.nextFloat() * 26))).join('') + ' ';
    return { prompt: bytes(prompt), chosen: bytes('!!'), rejected: bytes('..') };
  });
}

test('DPO on a synthetic rule: margin rises, held-out preference accuracy improves, the reference is untouched', () => {
  const shape = { dim: 16, layers: 1, heads: 2, kvHeads: 2, ffn: 32, vocab: 256, ctx: 16 };
  const policy = createModel(shape, new Rng(11));
  const reference = bindModel(shape, policy.params.map((p) => new Param(p.name, p.dims, p.value)));
  const rng = new Rng(5);
  const trainPairs = rulePairs(rng, 32), heldOut = rulePairs(rng, 16);
  const beta = 0.5;
  const before = preferenceStats(policy, reference, heldOut, beta, 8);
  // policy = reference: every margin 0, the loss log 2
  assert.ok(Math.abs(before.margin) < 1e-6 && Math.abs(before.loss - Math.LN2) < 1e-5, JSON.stringify(before));
  const refBefore = reference.params.map((p) => Float32Array.from(p.value));
  trainDpo(policy, reference, trainPairs, { beta, steps: 15, batchSize: 8, lr: 1e-2, seed: 1, gradClip: 1 });
  const after = preferenceStats(policy, reference, heldOut, beta, 8);
  assert.ok(after.margin > 1, `margin ${after.margin}`);
  assert.ok(after.loss < before.loss, `loss ${before.loss} → ${after.loss}`);
  assert.equal(after.accuracy, 1);
  assert.ok(before.accuracy < 1, `accuracy before ${before.accuracy}`);
  reference.params.forEach((p, i) => assert.deepEqual(p.value, refBefore[i], p.name));
});
