// The forward pass against llama.cpp: logits and greedy tokens of every reference run
// (tolerances from ../shared/conformance/README.md and the foundation issue).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, loadModel, maxTopKError, readReference, replay } from './reference.js';
import { LLMEngine } from '../../src/engine/engine.js';

interface Case {
  model: string[];
  refs: string[];
  /** tolerance on every compared logit */
  tol: number;
  /** tolerance on the last prompt position's full-vocabulary logits (default: tol) */
  fullTol?: number;
  /** [tolerance, share]: at least this share of positions has all top-10 logits within the tolerance */
  within?: [number, number];
  /** greedy steps where kiln's drifted logits pick another token despite a reference margin > 0.1 (measured) */
  knownFlips?: number[];
  /** greedy tokens must match exactly (else: only where the reference's top-2 margin exceeds 0.1) */
  exactGreedy: boolean;
}

const conformance = (file: string) => ['conformance', 'models', file];
const QUANTIZED = ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K'];

// Float models: kiln reproduces ggml's f16 roundings (KV cache, q, softmax weights) but not its f32 summation
// order, so now and then a K/V value rounds to the neighbouring f16 and the difference persists down the
// sequence. Measured worst cases: stories260K 0.009, qwen2-f16 0.008, kq-BF16 0.025; most positions are
// within 1e-3 (asserted through `within`).
const CASES: Case[] = [
  { model: ['data', 'models', 'stories260K.gguf'], refs: ['s1', 's2', 's3', 's4'].map((s) => `stories260K.${s}.json`), tol: 1e-2, within: [1e-3, 0.5], exactGreedy: true },
  ...['f32', 'F16'].map((t) => ({ model: conformance(`kq-${t}.gguf`), refs: [`kq-${t}.s1.json`], tol: 1e-3, exactGreedy: true })),
  { model: conformance('kq-BF16.gguf'), refs: ['kq-BF16.s1.json'], tol: 3e-2, within: [1e-3, 0.2], exactGreedy: true },
  { model: conformance('qwen2-f16.gguf'), refs: ['qwen2-f16.b1.json', 'qwen2-f16.b2.json'], tol: 1e-2, exactGreedy: true },
  { model: conformance('moe-f32.gguf'), refs: ['moe-f32.s1.json'], tol: 1e-3, exactGreedy: true },
  // The model zoo. gpt2: llama.cpp's gelu table is reproduced exactly; worst measured 2.7e-3 (wasm), most within 1e-4.
  { model: conformance('gpt2-f16.gguf'), refs: ['gpt2-f16.b1.json'], tol: 5e-3, within: [1e-3, 0.9], exactGreedy: true },
  // phi3: fused q/k/v and gate/up, a sliding window of 8 over 21 positions; worst measured 4.1e-3 (wasm), most within 1e-4.
  { model: conformance('phi3-f32.gguf'), refs: ['phi3-f32.s1.json'], tol: 5e-3, within: [1e-3, 0.9], exactGreedy: true },
  // gemma2: 26 layers carry an f16 rounding flip of the KV cache further than the 2-layer fixtures (position 0,
  // where attention only reads its own value, is within 1.5e-3); measured worst 4.0e-2 (reference backend, one step;
  // wasm 2.4e-2), full vocabulary 6.9e-2.
  { model: conformance('gemma2-f32.gguf'), refs: ['gemma2-f32.s1.json'], tol: 5e-2, fullTol: 8e-2, within: [1.5e-2, 0.5], exactGreedy: true },
  // deepseek2: kiln caches MLA's f16 latent where llama.cpp c392e509 cached the expanded f16 keys and values; the two
  // round at different places (an exact f32 latent differs from the reference as much), measured worst 1.6e-2.
  { model: conformance('deepseek2-f32.gguf'), refs: ['deepseek2-f32.s1.json'], tol: 2e-2, within: [1e-2, 0.6], exactGreedy: true },
  // Quantized models agree to ~1e-5 until an activation lands within float32 rounding of a quantization step
  // boundary and rounds the other way in llama.cpp (its f32 summation order is not reproduced): from there
  // the logits of these small random models drift by up to ~0.25. Greedy tokens still agree wherever the
  // reference's top-2 margin exceeds 0.1; the 2e-2 criterion holds at the share of positions given in `within`.
  ...QUANTIZED.map((t) => ({
    model: conformance(`kq-${t}.gguf`), refs: [`kq-${t}.s1.json`], tol: 0.3, within: [2e-2, 0.4] as [number, number], exactGreedy: false,
    knownFlips: t === 'Q4_K_M' ? [15] : [], // the last step's row drifts by 0.24 against a margin of 0.175
  })),
  { model: conformance('moe-q8_0.gguf'), refs: ['moe-q8_0.s2.json'], tol: 2e-2, exactGreedy: false },
];

for (const c of CASES) {
  for (const refName of c.refs) {
    test(`${refName}: prompt tokens, prompt logits, teacher-forced decode logits`, () => {
      const model = loadModel(...c.model);
      const ref = readReference(refName);
      const n = ref.n_vocab;
      assert.equal(model.vocabSize, n);
      assert.deepEqual(model.tokenizer.encode(ref.prompt, { addSpecial: true, parseSpecial: false }), ref.prompt_tokens);

      const { promptLogits, stepLogits } = replay(model, ref);
      const errors: number[] = [];
      ref.prompt_topk.forEach((top, i) => {
        const err = maxTopKError(promptLogits, i * n, top);
        errors.push(err);
        assert.ok(err <= c.tol, `prompt position ${i}: top-10 logit error ${err} > ${c.tol}`);
      });
      const last = stepLogits[0];
      if (c.exactGreedy) {
        const worst = ref.last_logits.reduce((m, v, i) => Math.max(m, Math.abs(last[i] - v)), 0);
        const fullTol = c.fullTol ?? c.tol;
        assert.ok(worst <= fullTol, `last prompt position: full-vocab logit error ${worst} > ${fullTol}`);
      }
      ref.greedy_topk.forEach((top, j) => {
        const err = maxTopKError(stepLogits[j], 0, top);
        errors.push(err);
        assert.ok(err <= c.tol, `greedy step ${j}: top-10 logit error ${err} > ${c.tol}`);
        const margin = top[0][1] - top[1][1];
        if (c.exactGreedy || (margin > 0.1 && !c.knownFlips?.includes(j))) {
          assert.equal(argmax(stepLogits[j], 0, n), ref.greedy[j], `greedy step ${j} (reference margin ${margin.toFixed(4)})`);
        }
      });
      if (c.within) {
        const [tolerance, wanted] = c.within;
        const share = errors.filter((e) => e <= tolerance).length / errors.length;
        assert.ok(share >= wanted, `only ${(share * 100).toFixed(1)}% of positions within ${tolerance}`);
      }
    });

    if (c.exactGreedy) {
      test(`${refName}: free-running greedy generation (serving engine) equals llama.cpp's`, async () => {
        const model = loadModel(...c.model);
        const ref = readReference(refName);
        const engine = new LLMEngine(model, { maxNumSeqs: 1, maxModelLength: ref.prompt_tokens.length + ref.greedy.length });
        const request = { prompt: ref.prompt_tokens, params: { sampling: { temperature: 0 }, maxTokens: ref.greedy.length, ignoreEos: true } };
        const tokens: number[] = [];
        for await (const delta of engine.submit(request)) tokens.push(...delta.tokens);
        assert.deepEqual(tokens, ref.greedy);
      });
    }
  }
}
