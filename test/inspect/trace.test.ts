// The inspector's trace: the run it records is the run kiln makes (same tokens as generate() for the same seed),
// token spans tile the text, attention rows are causal probability distributions, sampling stages obey their
// rules, MoE router choices are recorded per token and layer, and the written page carries the trace intact.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Model } from '../../src/generate/model.js';
import { generate } from '../../src/generate/generate.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';
import { InspectError, inspectableModel, tokenSpans, traceGeneration, type InspectTrace } from '../../src/inspect/trace.js';
import { inspectPageWithTrace } from '../../src/inspect/page.js';
import { sharedPath } from '../shared.js';

const stories = Model.load(sharedPath('data', 'models', 'stories260K.gguf'), { backend: new ReferenceBackend() });
const PROMPT = 'Once upon a time';

test('a seeded trace generates exactly what generate() does, and records every position', () => {
  const sampling = { seed: 42, temperature: 0.9, top_k: 20, top_p: 0.9, min_p: 0.02 };
  const trace = traceGeneration(stories, PROMPT, { maxTokens: 12, sampling });
  const promptIds = stories.tokenizer.encode(PROMPT, { addSpecial: true, parseSpecial: false });
  const reference = generate(stories, promptIds, { maxTokens: 12, sampling });
  assert.deepEqual(trace.tokens.map((t) => t.id), [...promptIds, ...reference.tokens]);
  assert.equal(trace.promptTokens, promptIds.length);
  assert.equal(trace.text, stories.tokenizer.decode([...promptIds, ...reference.tokens], { skipSpecial: true }));
  assert.deepEqual(trace.steps.map((s) => s.chosen), reference.tokens);
  assert.deepEqual(trace.steps.map((s) => s.position), reference.tokens.map((_, i) => promptIds.length + i));
  assert.equal(trace.sampling.top_k, 20);
  assert.deepEqual(trace.tokens.map((t) => t.generated), trace.tokens.map((_, i) => i >= promptIds.length));
});

test('token spans tile the detokenized text', () => {
  const trace = traceGeneration(stories, PROMPT, { maxTokens: 6, sampling: { temperature: 0 } });
  assert.deepEqual(trace.tokens[0], { id: 1, piece: '<s>', bytes: [0, 0], chars: [0, 0], generated: false });
  assert.equal(trace.tokens.map((t) => trace.text.slice(t.chars[0], t.chars[1])).join(''), trace.text);
  for (let i = 1; i < trace.tokens.length; i++) assert.equal(trace.tokens[i].bytes[0], trace.tokens[i - 1].bytes[1]);
  // SentencePiece's leading space is the piece's, not the text's: " Once" covers "Once"
  assert.equal(trace.tokens[1].piece, ' Once');
  assert.deepEqual(trace.tokens[1].chars, [0, 4]);
  assert.equal(trace.text.slice(trace.tokens[2].chars[0], trace.tokens[2].chars[1]), ' upon');
});

test('a character split into byte tokens: each byte token covers that character', () => {
  const ids = stories.tokenizer.encode('hi 😀', { addSpecial: false, parseSpecial: false });
  const { text, spans } = tokenSpans(stories.tokenizer, ids);
  assert.equal(text, 'hi 😀');
  const emoji = spans.filter((s) => s.bytes[1] > 3); // the emoji's 4 UTF-8 bytes start at byte 3
  assert.equal(emoji.length, 4, 'the emoji is 4 byte tokens');
  assert.deepEqual(emoji.map((s) => s.bytes), [[3, 4], [4, 5], [5, 6], [6, 7]]);
  for (const s of emoji) assert.deepEqual(s.chars, [3, 5]);
});

function checkAttention(trace: InspectTrace, layers: number, heads: number): void {
  const T = trace.tokens.length;
  assert.equal(trace.attention.length, layers);
  for (const perHead of trace.attention) {
    assert.equal(perHead.length, heads);
    for (const rows of perHead) {
      assert.equal(rows.length, T);
      assert.deepEqual(rows[0], [1], 'the first token can only attend to itself');
      rows.forEach((row, q) => {
        assert.equal(row.length, q + 1, 'causal: position q sees 0..q');
        const sum = row.reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 2e-3, `row ${q} sums to ${sum}`);
        assert.ok(row.every((w) => w >= 0 && w <= 1));
      });
    }
  }
}

test('attention: one causal distribution per layer, head and position', () => {
  const trace = traceGeneration(stories, PROMPT, { maxTokens: 5, sampling: { temperature: 0 } });
  checkAttention(trace, stories.hparams.blockCount, stories.hparams.headCount);
  assert.deepEqual(trace.experts, [], 'a dense model has no router');
});

test('sampling stages follow their rules and the greedy choice is the most likely token', () => {
  const sampling = { temperature: 0.7, top_k: 8, top_p: 0.5, min_p: 0.1, seed: 3 };
  const trace = traceGeneration(stories, PROMPT, { maxTokens: 6, sampling, topK: 12 });
  for (const step of trace.steps) {
    assert.deepEqual(step.stages.map((s) => s.stage), ['penalties', 'top_k', 'top_p', 'min_p', 'temperature']);
    const [full, topK, topP, minP, temp] = step.stages;
    assert.equal(full.kept, stories.vocabSize);
    assert.equal(topK.kept, 8);
    // top-p keeps the fewest tokens reaching 0.5: all but the last kept have cumulative probability < 0.5
    const kept = topK.top.slice(0, topP.kept);
    const before = kept.slice(0, -1).reduce((a, c) => a + c.prob, 0);
    assert.ok(before < 0.5 + 1e-4 && before + kept[kept.length - 1].prob >= 0.5 - 1e-3);
    // min-p: every survivor has p ≥ 0.1 · p_max within the set min-p filtered
    for (const c of minP.top) assert.ok(c.prob >= 0.1 * minP.top[0].prob - 1e-4);
    // temperature 0.7 sharpens: the top probability grows (or stays 1)
    assert.ok(temp.top[0].prob >= minP.top[0].prob - 1e-4);
    assert.ok(temp.top.some((c) => c.token === step.chosen), 'the chosen token survived every stage');
    assert.ok(full.top.every((c, i) => i === 0 || c.prob <= full.top[i - 1].prob));
  }
  const greedy = traceGeneration(stories, PROMPT, { maxTokens: 4, sampling: { temperature: 0 } });
  for (const step of greedy.steps) {
    assert.equal(step.chosen, step.stages[0].top[0].token);
    assert.equal(step.stages[1].kept, 1);
  }
});

test('MoE: the router\'s choice per token and layer', () => {
  const moe = Model.load(sharedPath('conformance', 'models', 'moe-f32.gguf'), { backend: new ReferenceBackend() });
  const trace = traceGeneration(moe, 'Hello world', { maxTokens: 3, sampling: { temperature: 0 } });
  const { expertCount, expertUsedCount, blockCount } = moe.hparams;
  assert.equal(trace.model.experts, 4);
  assert.equal(trace.experts.length, trace.tokens.length);
  for (const layers of trace.experts) {
    assert.equal(layers.length, blockCount);
    for (const { experts, weights } of layers) {
      assert.equal(experts.length, expertUsedCount);
      assert.equal(new Set(experts).size, expertUsedCount);
      assert.ok(experts.every((e) => e >= 0 && e < expertCount));
      assert.ok(weights.every((w, i) => i === 0 || w <= weights[i - 1]), 'ranked by gate weight');
    }
  }
  checkAttention(trace, blockCount, moe.hparams.headCount);
});

test('the default (WASM) model is traced on the reference kernels, sharing its weights', () => {
  const wasm = Model.load(sharedPath('data', 'models', 'stories260K.gguf'));
  const traced = inspectableModel(wasm);
  assert.ok(traced.backend instanceof ReferenceBackend);
  assert.equal(traced.file, wasm.file);
  const a = traceGeneration(traced, PROMPT, { maxTokens: 4, sampling: { temperature: 0 } });
  const b = traceGeneration(stories, PROMPT, { maxTokens: 4, sampling: { temperature: 0 } });
  assert.deepEqual(a.attention, b.attention);
});

test('bad requests are InspectErrors', () => {
  assert.throws(() => traceGeneration(stories, '', { maxTokens: 2 }), InspectError);
  assert.throws(() => traceGeneration(stories, PROMPT, { maxTokens: -1 }), InspectError);
  assert.throws(() => traceGeneration(stories, PROMPT, { maxTokens: 2, topK: 0 }), InspectError);
  assert.throws(() => traceGeneration(stories, PROMPT, { maxTokens: 5000 }), /exceed/);
});

test('the written page embeds the trace intact, with nothing that can close its script', () => {
  const trace = traceGeneration(stories, 'a </script><b> tag', { maxTokens: 2, sampling: { temperature: 0 } });
  const html = inspectPageWithTrace(trace);
  const m = /<script id="inspect-data" type="application\/json">(.*?)<\/script>/s.exec(html);
  assert.ok(m);
  assert.ok(!m[1].includes('<'));
  assert.deepEqual(JSON.parse(m[1]), JSON.parse(JSON.stringify(trace)));
  assert.equal(html.match(/<\/script>/g)?.length, 2, 'the data script and the page script');
});
