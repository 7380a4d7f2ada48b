import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Sampler, SamplingError, DEFAULT_SAMPLING_PARAMS, explainSampling, logSoftmax, topLogprobs, type SamplingParams,
} from '../../src/generate/sampler.js';
import { Rng } from '../../src/generate/rng.js';

/** Every filter off, temperature 1: the draw follows softmax(logits) exactly. */
const PLAIN: Partial<SamplingParams> = { temperature: 1, top_k: 0, top_p: 1, min_p: 0 };

/** Logits whose softmax is exactly `probs`. */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => Math.log(p));
}

function stage(logits: Float32Array, params: Partial<SamplingParams>, name: string, history: number[] = [], k = 100) {
  const found = explainSampling(logits, params, history, k).find((s) => s.stage === name);
  assert.ok(found, `stage ${name}`);
  return found;
}

const sortedIds = (ids: number[]) => [...ids].sort((a, b) => a - b);

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected} ± ${tolerance}`);
}

/** n logits from a seeded generator: a spread like a real model's (a few large, a long tail). */
function randomLogits(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => {
    const u = rng.nextFloat();
    return 12 * u * u * u - 4 + rng.nextFloat();
  });
}

test('defaults are the llama.cpp ones', () => {
  assert.deepEqual({ ...DEFAULT_SAMPLING_PARAMS }, {
    temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, repeat_penalty: 1, repeat_last_n: 64,
    presence_penalty: 0, frequency_penalty: 0,
  });
});

test('greedy: temperature ≤ 0 or top_k = 1 picks the argmax, ties to the lowest id, without using randomness', () => {
  const logits = Float32Array.from([0.1, 2.5, -1, 2.5, 2.4]);
  for (const params of [{ temperature: 0 }, { temperature: -1 }, { temperature: 0.8, top_k: 1 }]) {
    const sampler = new Sampler({ ...params, seed: 7 }, logits.length);
    const before = sampler.state();
    for (let i = 0; i < 20; i++) {
      assert.equal(sampler.sample(logits, []), 1);
      sampler.accept(1);
    }
    assert.deepEqual(sampler.state(), before);
  }
  const greedy = stage(logits, { temperature: 0 }, 'temperature');
  assert.equal(greedy.kept, 1);
  assert.equal(greedy.top[0].prob, 1);
});

test('top-k keeps exactly the k largest logits', () => {
  const logits = randomLogits(5000, 1);
  const byLogit = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  for (const k of [1, 5, 40, 1000]) {
    const s = stage(logits, { ...PLAIN, top_k: k }, 'top_k', [], k);
    assert.equal(s.kept, k);
    assert.deepEqual(s.top.map((c) => c.token), byLogit.slice(0, k));
  }
  assert.equal(stage(logits, { ...PLAIN, top_k: 0 }, 'top_k').kept, 5000);
  assert.equal(stage(logits, { ...PLAIN, top_k: -3 }, 'top_k').kept, 5000);
  // draws only ever come from the top k
  const sampler = new Sampler({ ...PLAIN, top_k: 3, seed: 3 }, logits.length);
  const seen = new Set<number>();
  for (let i = 0; i < 500; i++) { const t = sampler.sample(logits, []); sampler.accept(t); seen.add(t); }
  assert.deepEqual(sortedIds([...seen]), sortedIds(byLogit.slice(0, 3)));
});

test('top-p keeps the smallest most-likely set whose mass reaches p', () => {
  // probabilities by id: sorted they are 0.5, 0.2, 0.15, 0.1, 0.05 (cumulative 0.5, 0.7, 0.85, 0.95, 1)
  const logits = logitsOf([0.1, 0.5, 0.05, 0.2, 0.15]);
  const cases: Array<[number, number[]]> = [[0.4, [1]], [0.6, [1, 3]], [0.8, [1, 3, 4]], [0.9, [0, 1, 3, 4]], [0.99, [0, 1, 2, 3, 4]]];
  for (const [p, expected] of cases) {
    for (const top_k of [0, 5]) { // unsorted input (threshold pass) and input already sorted by top-k
      const s = stage(logits, { ...PLAIN, top_k, top_p: p }, 'top_p');
      assert.deepEqual(sortedIds(s.top.map((c) => c.token)), expected, `p=${p} top_k=${top_k}`);
      assert.equal(s.kept, expected.length);
    }
  }
  // the mass reaches p exactly (four equal logits: 0.25 each, exact in binary): cumulative ≥ p stops at 2
  assert.equal(stage(new Float32Array(4), { ...PLAIN, top_p: 0.5 }, 'top_p').kept, 2);
  // a wide nucleus found by the threshold pass: 100 tokens of 0.009 each and a flat tail holding 0.1
  const probs = [...Array(100).fill(0.009), ...Array(1000).fill(0.0001)];
  const s = stage(logitsOf(probs), { ...PLAIN, top_p: 0.8 }, 'top_p');
  assert.equal(s.kept, 89); // 89 · 0.009 = 0.801 ≥ 0.8 > 88 · 0.009
});

test('min-p keeps tokens with probability ≥ min_p · p_max', () => {
  const logits = logitsOf([0.1, 0.5, 0.05, 0.2, 0.15]);
  const cases: Array<[number, number[]]> = [[0.35, [1, 3]], [0.25, [1, 3, 4]], [0.15, [0, 1, 3, 4]], [0.05, [0, 1, 2, 3, 4]], [1, [1]]];
  for (const [minP, expected] of cases) {
    for (const top_k of [0, 5]) {
      const s = stage(logits, { ...PLAIN, top_k, min_p: minP }, 'min_p');
      assert.deepEqual(sortedIds(s.top.map((c) => c.token)), expected, `min_p=${minP} top_k=${top_k}`);
    }
  }
});

test('penalties follow the hand-computed formula, only within the window', () => {
  const logits = Float32Array.from([2, -1, 0.5, 3, 1]);
  // window = last 4 of history: tokens 0 (×2), 1 (×1), 2 (×1); token 3 is outside it, token 4 absent
  const history = [3, 0, 1, 0, 2];
  const params = { ...PLAIN, repeat_penalty: 2, repeat_last_n: 4, frequency_penalty: 0.1, presence_penalty: 0.5 };
  const s = stage(logits, params, 'penalties', history);
  const logitOf = (token: number) => s.top.find((c) => c.token === token)!.logit;
  assertClose(logitOf(0), 2 / 2 - 2 * 0.1 - 0.5, 1e-6, 'token 0');
  assertClose(logitOf(1), -1 * 2 - 0.1 - 0.5, 1e-6, 'token 1');
  assertClose(logitOf(2), 0.5 / 2 - 0.1 - 0.5, 1e-6, 'token 2');
  assert.equal(logitOf(3), 3);
  assert.equal(logitOf(4), 1);
  // −1 means the whole history; 0 turns penalties off
  const whole = stage(logits, { ...params, repeat_last_n: -1 }, 'penalties', history);
  assertClose(whole.top.find((c) => c.token === 3)!.logit, 3 / 2 - 0.1 - 0.5, 1e-6, 'token 3, whole history');
  const off = stage(logits, { ...params, repeat_last_n: 0 }, 'penalties', history);
  assert.deepEqual(off.top.map((c) => c.logit).sort(), [...logits].sort());
  // the penalty changes the greedy choice: token 3 was repeated
  assert.equal(new Sampler({ temperature: 0, repeat_penalty: 2, repeat_last_n: -1 }, 5).sample(logits, [3]), 0);
});

test('temperature divides the logits before the softmax', () => {
  const logits = Float32Array.from([1, 2, 3, 0.5]);
  for (const temperature of [0.5, 1, 2]) {
    const s = stage(logits, { ...PLAIN, temperature }, 'temperature');
    const z = [...logits].reduce((sum, l) => sum + Math.exp(l / temperature), 0);
    for (const c of s.top) assertClose(c.prob, Math.exp(logits[c.token] / temperature) / z, 1e-6, `T=${temperature} token ${c.token}`);
  }
  const maxProb = (temperature: number) => stage(logits, { ...PLAIN, temperature }, 'temperature').top[0].prob;
  assert.ok(maxProb(0.5) > maxProb(1) && maxProb(1) > maxProb(2), 'a lower temperature sharpens the distribution');
});

test('100k draws follow the distribution within 1% per token and pass a chi-square test', () => {
  const probs = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04];
  const logits = logitsOf(probs);
  const sampler = new Sampler({ ...PLAIN, seed: 12345 }, probs.length);
  const draws = 100_000;
  const counts = new Array(probs.length).fill(0);
  for (let i = 0; i < draws; i++) {
    const token = sampler.sample(logits, []);
    sampler.accept(token);
    counts[token]++;
  }
  let chiSquare = 0;
  probs.forEach((p, i) => {
    assertClose(counts[i] / draws, p, 0.01, `frequency of token ${i}`);
    chiSquare += (counts[i] - draws * p) ** 2 / (draws * p);
  });
  assert.ok(chiSquare < 20.52, `chi-square ${chiSquare} (5 dof, p = 0.001 critical value 20.52)`);
  // the filters' survivors are renormalised: top_k = 2 leaves 0.4 : 0.25
  const topTwo = new Sampler({ ...PLAIN, top_k: 2, seed: 9 }, probs.length);
  let first = 0;
  for (let i = 0; i < 20_000; i++) { const t = topTwo.sample(logits, []); topTwo.accept(t); if (t === 0) first++; }
  assertClose(first / 20_000, 0.4 / 0.65, 0.015, 'frequency of token 0 among the top 2');
});

function drawSequence(params: Partial<SamplingParams>, logits: Float32Array, n: number): number[] {
  const sampler = new Sampler(params, logits.length);
  const tokens: number[] = [];
  for (let i = 0; i < n; i++) { const t = sampler.sample(logits, tokens); sampler.accept(t); tokens.push(t); }
  return tokens;
}

test('same seed gives the same tokens, a different seed different ones', () => {
  const logits = randomLogits(32000, 2);
  const params = { temperature: 1.5, top_k: 0, top_p: 1, min_p: 0 };
  const a = drawSequence({ ...params, seed: 42 }, logits, 50);
  assert.deepEqual(drawSequence({ ...params, seed: 42 }, logits, 50), a);
  assert.notDeepEqual(drawSequence({ ...params, seed: 43 }, logits, 50), a);
  assert.notDeepEqual(drawSequence({ ...params, seed: -42 }, logits, 50), a);
  assert.notDeepEqual(drawSequence(params, logits, 50), a); // no seed: a random one
});

test('sampling again before accept repeats the draw; a saved state resumes the same stream', () => {
  const logits = randomLogits(1000, 3);
  const params = { ...PLAIN, seed: 5 };
  const reference = drawSequence(params, logits, 20);

  const sampler = new Sampler(params, logits.length);
  const tokens: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = sampler.sample(logits, tokens);
    assert.equal(sampler.sample(logits, tokens), t); // a preempted step re-samples the same token
    sampler.accept(t);
    tokens.push(t);
  }
  const resumed = new Sampler({ ...params, seed: 999 }, logits.length);
  resumed.restore(sampler.state());
  for (let i = 10; i < 20; i++) { const t = resumed.sample(logits, tokens); resumed.accept(t); tokens.push(t); }
  assert.deepEqual(tokens, reference);
});

/** The chain done the obvious way (full sort) as an oracle for the partial-selection code. */
function referenceChain(logits: Float32Array, p: SamplingParams, history: number[]): Map<number, number> {
  const values = Array.from(logits);
  const window = p.repeat_last_n < 0 ? history : history.slice(Math.max(0, history.length - p.repeat_last_n));
  const counts = new Map<number, number>();
  if (p.repeat_last_n !== 0) for (const t of window) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, n] of counts) {
    const l = values[t];
    values[t] = (l < 0 ? l * p.repeat_penalty : l / p.repeat_penalty) - n * p.frequency_penalty - p.presence_penalty;
  }
  let kept = values.map((logit, token) => ({ token, logit })).sort((a, b) => b.logit - a.logit || a.token - b.token);
  const k = p.temperature <= 0 ? 1 : p.top_k;
  if (k > 0) kept = kept.slice(0, k);
  const softmax = (list: typeof kept) => {
    const z = list.reduce((s, c) => s + Math.exp(c.logit - list[0].logit), 0);
    return list.map((c) => Math.exp(c.logit - list[0].logit) / z);
  };
  if (p.top_p < 1) {
    const probs = softmax(kept);
    let cumulative = 0, n = 0;
    while (n < kept.length && cumulative < p.top_p) cumulative += probs[n++];
    kept = kept.slice(0, n);
  }
  if (p.min_p > 0) {
    const probs = softmax(kept);
    kept = kept.filter((c, i) => probs[i] >= p.min_p * probs[0] * (1 - 1e-9));
  }
  const temperature = p.temperature > 0 ? p.temperature : 1;
  const probs = softmax(kept.map((c) => ({ ...c, logit: c.logit / temperature })));
  return new Map(kept.map((c, i) => [c.token, probs[i]]));
}

test('the partial-selection chain matches a full-sort reference on a 20k vocabulary', () => {
  const logits = randomLogits(20000, 4);
  const history = Array.from({ length: 100 }, (_, i) => (i * 7919) % 20000);
  const settings: Array<Partial<SamplingParams>> = [
    {},
    { top_k: 0 },
    { top_k: 0, top_p: 0.99, min_p: 0 },
    { top_k: 0, top_p: 1, min_p: 0.001, temperature: 1.3 },
    { top_k: 500, top_p: 0.7, min_p: 0.01, repeat_penalty: 1.3, frequency_penalty: 0.2, presence_penalty: 0.4, temperature: 0.6 },
    { temperature: 0, repeat_penalty: 1.5, repeat_last_n: -1 },
  ];
  for (const setting of settings) {
    const params = { ...DEFAULT_SAMPLING_PARAMS, ...setting };
    const expected = referenceChain(logits, params, history);
    const final = explainSampling(logits, params, history, 20000).at(-1)!;
    assert.equal(final.kept, expected.size, JSON.stringify(setting));
    for (const c of final.top) {
      assertClose(c.prob, expected.get(c.token)!, 1e-5, `${JSON.stringify(setting)} token ${c.token}`);
    }
  }
});

// (no limit on its speed: a test's timing depends on how loaded the machine is)
test('a 150k vocabulary with the default settings: every token drawn is among the 40 most likely', () => {
  const logits = randomLogits(150_000, 6);
  const top40 = new Set(Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]).slice(0, 40));
  const sampler = new Sampler({ seed: 1 }, logits.length);
  const tokens: number[] = [];
  for (let i = 0; i < 100; i++) { const t = sampler.sample(logits, tokens); sampler.accept(t); tokens.push(t); }
  for (const t of tokens) assert.ok(top40.has(t), `token ${t} is not among the 40 most likely`);
  assert.ok(new Set(tokens).size > 5, 'the draws vary');
});

test('logSoftmax and topLogprobs', () => {
  const logits = Float32Array.from([1, 3, 2, 3, -Infinity]);
  const logprobs = logSoftmax(logits);
  assertClose(logprobs.reduce((s, l) => s + Math.exp(l), 0), 1, 1e-6, 'total probability');
  assert.equal(logprobs[4], -Infinity);
  const top = topLogprobs(logits, 3);
  assert.deepEqual(top.map((t) => t.token), [1, 3, 2]);
  for (const t of top) assertClose(t.logprob, logprobs[t.token], 1e-6, `token ${t.token}`);
  assert.equal(topLogprobs(logits, 10).length, 5);
});

test('bad input gets a SamplingError', () => {
  const sampler = new Sampler({}, 4);
  assert.throws(() => sampler.sample(new Float32Array(5), []), SamplingError);
  assert.throws(() => sampler.sample(Float32Array.from([0, NaN, 0, 0]), []), SamplingError);
  assert.throws(() => sampler.sample(Float32Array.from([-Infinity, -Infinity, -Infinity, -Infinity]), []), SamplingError);
  assert.throws(() => new Sampler({ repeat_penalty: 1.1 }, 4).sample(new Float32Array(4), [0, 9]), SamplingError);
  assert.throws(() => sampler.accept(4), SamplingError);
  assert.throws(() => new Sampler({ temperature: NaN }, 4), SamplingError);
  assert.throws(() => new Sampler({ top_k: 1.5 }, 4), SamplingError);
  assert.throws(() => new Sampler({ seed: 0.5 }, 4), SamplingError);
  assert.throws(() => new Sampler({}, 0), SamplingError);
  assert.throws(() => sampler.restore([0, 0, 0, 0]), SamplingError);
  // after a rejected history the count table is clean: penalties still compute correctly
  const penalized = new Sampler({ temperature: 0, repeat_penalty: 10 }, 4);
  assert.throws(() => penalized.sample(Float32Array.from([1, 0.9, 0, 0]), [0, 1, 99]), SamplingError);
  assert.equal(penalized.sample(Float32Array.from([1, 0.9, 0, 0]), [1]), 0);
});

test('the RNG is xoshiro128** (reference outputs for state 1,2,3,4) and floats lie in [0, 1)', () => {
  const rng = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()], [11520, 0, 5927040]);
  const seeded = new Rng(2n ** 70n + 5n);
  let min = 1, max = 0, sum = 0;
  for (let i = 0; i < 10000; i++) { const x = seeded.nextFloat(); min = Math.min(min, x); max = Math.max(max, x); sum += x; }
  assert.ok(min >= 0 && max < 1, `floats in [${min}, ${max}]`);
  assertClose(sum / 10000, 0.5, 0.02, 'mean of 10k floats');
  assert.notDeepEqual(new Rng(0).state(), [0, 0, 0, 0]);
  assert.notDeepEqual(new Rng(1).state(), new Rng(2).state());
});
