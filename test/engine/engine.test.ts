// The engine on stories260K: batched, chunked, preempted and forked runs produce the same tokens as each
// request run alone; prefix caching, abort, stop strings and the LLM API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { Model } from '../../src/generate/model.js';
import { LLMEngine, InvalidRequestError, ContextLengthError, type EngineOptions } from '../../src/engine/engine.js';
import { LLM, SamplingParams } from '../../src/engine/llm.js';
import type { CompletionDelta, RequestParams } from '../../src/engine/types.js';

const model = Model.load(sharedPath('data', 'models', 'stories260K.gguf'));
const encode = (text: string) => model.tokenizer.encode(text, { addSpecial: true, parseSpecial: false });

const PROMPTS = [
  'Once upon a time',
  'The little dog',
  'Lily and Tom went to the park to play with a big red ball. They',
  'One day, a girl named Sue found a shiny rock in the garden. She',
  'Tim',
  'The sun was hot and the birds were singing in the tall green trees near the old house where',
].map(encode);

interface Completion {
  tokens: number[];
  text: string;
  finishReason?: string;
}

/** Runs the requests together; returns each request's completions by index. */
async function runAll(engine: LLMEngine, requests: { prompt: number[]; params: RequestParams }[]): Promise<Completion[][]> {
  return Promise.all(requests.map(async (request) => {
    const out: Completion[] = [];
    for await (const delta of engine.submit(request)) {
      const c = (out[delta.index] ??= { tokens: [], text: '' });
      c.tokens.push(...delta.tokens);
      c.text += delta.text;
      if (delta.finishReason) c.finishReason = delta.finishReason;
    }
    return out;
  }));
}

/** Each request alone in a fresh engine without prefix caching: the reference outputs. */
async function runAlone(requests: { prompt: number[]; params: RequestParams }[], options: EngineOptions = {}): Promise<Completion[][]> {
  const outputs: Completion[][] = [];
  for (const request of requests) {
    const engine = new LLMEngine(model, { maxNumSeqs: 1, enablePrefixCaching: false, ...options });
    outputs.push(...(await runAll(engine, [request])));
  }
  return outputs;
}

const greedy = (prompt: number[]) => ({ prompt, params: { sampling: { temperature: 0 }, maxTokens: 24, ignoreEos: true } });
const seeded = (prompt: number[], seed: number) => ({ prompt, params: { sampling: { temperature: 1, top_k: 0, top_p: 1, min_p: 0, seed }, maxTokens: 24 } });

test('a mixed-length batch with chunked prefill gives each prompt the tokens it gets alone (greedy)', async () => {
  const requests = PROMPTS.map(greedy);
  const alone = await runAlone(requests);
  const engine = new LLMEngine(model, { maxNumBatchedTokens: 16 }); // long prompts are prefilled in chunks beside decodes
  const batched = await runAll(engine, requests);
  batched.forEach((out, i) => {
    assert.equal(out[0].tokens.length, 24);
    assert.deepEqual(out[0].tokens, alone[i][0].tokens, `prompt ${i}`);
    assert.equal(out[0].text, alone[i][0].text);
  });
  assert.equal(new Set(batched.map((out) => out[0].tokens.join())).size, PROMPTS.length, 'the prompts lead to different texts');
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('each step is one forward batch mixing decode tokens with prefill chunks, within the limits', async () => {
  const recorder = Model.load(sharedPath('data', 'models', 'stories260K.gguf'));
  const steps: { rows: number; sequences: number; decodes: number; prefillRows: number }[] = [];
  const forward = recorder.forwardOutputs.bind(recorder);
  recorder.forwardOutputs = (cache, batch, logitRows) => {
    const rowsPerSequence = new Map<object, number>();
    for (const seq of batch.sequences) rowsPerSequence.set(seq, (rowsPerSequence.get(seq) ?? 0) + 1);
    const counts = [...rowsPerSequence.values()];
    steps.push({ rows: batch.tokens.length, sequences: counts.length, decodes: counts.filter((c) => c === 1).length, prefillRows: counts.filter((c) => c > 1).reduce((a, b) => a + b, 0) });
    return forward(cache, batch, logitRows);
  };
  const engine = new LLMEngine(recorder, { maxNumSeqs: 4, maxNumBatchedTokens: 10 });
  const [early, other] = PROMPTS.slice(0, 2).map((p) => engine.submit(greedy(p)));
  const earlyDeltas = early[Symbol.asyncIterator]();
  for (let i = 0; i < 3; i++) await earlyDeltas.next(); // decoding by now
  const late = runAll(engine, PROMPTS.slice(2).map(greedy)); // these join while the first two run
  for (let r = await earlyDeltas.next(); !r.done; r = await earlyDeltas.next());
  await runStream(other);
  assert.ok(steps.every((s) => s.rows <= 10 && s.sequences <= 4), 'limits hold');
  assert.ok(steps.some((s) => s.decodes > 0 && s.prefillRows > 0), 'some step mixes decodes with a prefill chunk');
  assert.ok(steps.some((s) => s.sequences === 4), 'the batch fills up to maxNumSeqs');
  const alone = await runAlone(PROMPTS.slice(2).map(greedy));
  (await late).forEach((out, i) => assert.deepEqual(out[0].tokens, alone[i][0].tokens));
});

test('preemption in a tiny block pool leaves seeded outputs unchanged', async () => {
  const requests = PROMPTS.map((p, i) => seeded(p, 100 + i));
  const alone = await runAlone(requests);
  // 8 blocks of 8 positions: one full context, so concurrent sequences must evict each other
  const engine = new LLMEngine(model, { maxModelLength: 64, blockSize: 8, numBlocks: 8, maxNumBatchedTokens: 32 });
  const constrained = await runAll(engine, requests);
  assert.ok(engine.stats().preemptions > 0, 'the pool forced preemptions');
  constrained.forEach((out, i) => {
    assert.deepEqual(out[0].tokens, alone[i][0].tokens, `prompt ${i}`);
    assert.equal(out[0].finishReason, alone[i][0].finishReason);
  });
  const stats = engine.stats();
  assert.equal(stats.kvBlocksUsed, 0);
  assert.equal(stats.kvBlocksFree, stats.kvBlocksTotal);
});

test('n > 1: completion i equals a single request seeded with seed + i, sharing the prompt blocks', async () => {
  const prompt = PROMPTS[2];
  const engine = new LLMEngine(model);
  const params: RequestParams = { sampling: { temperature: 1, seed: 42 }, maxTokens: 20, n: 3 };
  const stream = engine.submit({ prompt, params });
  const completions: Completion[] = [];
  let sawShared = false;
  for await (const delta of stream) {
    const c = (completions[delta.index] ??= { tokens: [], text: '' });
    c.tokens.push(...delta.tokens);
    // 3 completions of a 17-token prompt in 16-position blocks: shared full block, private partial blocks
    if (engine.stats().running === 3 && engine.stats().kvBlocksUsed === 1 + 3) sawShared = true;
  }
  assert.equal(completions.length, 3);
  assert.ok(sawShared, 'the prompt block was shared by the three completions');
  const singles = await runAlone([0, 1, 2].map((i) => ({ prompt, params: { ...params, n: 1, sampling: { ...params.sampling, seed: 42 + i } } })));
  completions.forEach((c, i) => assert.deepEqual(c.tokens, singles[i][0].tokens, `completion ${i}`));
  assert.ok(new Set(completions.map((c) => c.tokens.join())).size > 1, 'the completions differ');
  assert.equal(stream.metrics.completionTokens, completions.reduce((sum, c) => sum + c.tokens.length, 0));
});

test('the same prompt again is served from the prefix cache', async () => {
  const engine = new LLMEngine(model);
  const prompt = PROMPTS[5]; // 2 full blocks of 16 and a partial one
  assert.ok(prompt.length > 32 && prompt.length < 48);
  const first = engine.submit(greedy(prompt));
  const firstOut = (await runStream(first)).tokens;
  assert.equal(first.metrics.cachedPromptTokens, 0);
  const second = engine.submit(greedy(prompt));
  const secondOut = (await runStream(second)).tokens;
  assert.equal(second.metrics.cachedPromptTokens, 32);
  assert.deepEqual(secondOut, firstOut);
  assert.equal(engine.stats().prefixCacheHitRate, 2 / 4);
});

async function runStream(stream: AsyncIterable<CompletionDelta>): Promise<Completion> {
  const c: Completion = { tokens: [], text: '' };
  for await (const delta of stream) {
    c.tokens.push(...delta.tokens);
    c.text += delta.text;
    if (delta.finishReason) c.finishReason = delta.finishReason;
  }
  return c;
}

test('abort ends a request with finishReason abort and frees its blocks; others go on', async () => {
  const engine = new LLMEngine(model);
  const controller = new AbortController();
  const aborted = engine.submit({ ...greedy(PROMPTS[0]), signal: controller.signal });
  const other = engine.submit(greedy(PROMPTS[1]));
  const deltas: CompletionDelta[] = [];
  for await (const delta of aborted) {
    deltas.push(delta);
    if (deltas.length === 3) controller.abort();
  }
  assert.equal(deltas.at(-1)?.finishReason, 'abort');
  assert.ok(deltas.length < 24);
  assert.equal((await runStream(other)).tokens.length, 24);
  assert.equal(engine.stats().kvBlocksUsed, 0);
  assert.ok(aborted.metrics.finishedTime !== undefined);
});

test('stop strings end the text before the match; bad requests are refused with InvalidRequestError', async () => {
  const engine = new LLMEngine(model);
  const free = await runStream(engine.submit({ prompt: PROMPTS[0], params: { sampling: { temperature: 0 }, maxTokens: 40 } }));
  const cut = free.text.indexOf('girl');
  assert.ok(cut > 0, free.text);
  const stopped = await runStream(engine.submit({ prompt: PROMPTS[0], params: { sampling: { temperature: 0 }, maxTokens: 40, stop: ['girl'] } }));
  assert.equal(stopped.finishReason, 'stop');
  assert.equal(stopped.text, free.text.slice(0, cut));
  assert.equal(model.tokenizer.decode(free.tokens), free.text);
  assert.throws(() => engine.submit({ prompt: [], params: { sampling: {}, maxTokens: 4 } }), InvalidRequestError);
  assert.throws(() => engine.submit({ prompt: [1], params: { sampling: { temperature: NaN }, maxTokens: 4 } }), InvalidRequestError);
});

test('without maxTokens a completion runs until the context is full; a prompt that fills it is a ContextLengthError', async () => {
  const engine = new LLMEngine(model, { maxModelLength: 40 });
  const prompt = PROMPTS[2];
  const full = await runStream(engine.submit({ prompt, params: { sampling: { temperature: 0 }, ignoreEos: true } }));
  assert.equal(full.finishReason, 'length');
  assert.equal(prompt.length + full.tokens.length, 40);
  // the same as asking for exactly the room left
  const asked = await runStream(engine.submit({ prompt, params: { sampling: { temperature: 0 }, maxTokens: 40 - prompt.length, ignoreEos: true } }));
  assert.deepEqual(full.tokens, asked.tokens);
  const long = Array.from({ length: 40 }, (_, i) => prompt[i % prompt.length]);
  assert.throws(() => engine.submit({ prompt: long, params: { sampling: {} } }), (e: unknown) => {
    assert.ok(e instanceof ContextLengthError && e instanceof InvalidRequestError);
    assert.deepEqual([e.promptTokens, e.maxTokens, e.contextLength], [40, undefined, 40]);
    assert.match(e.message, /context holds 40 tokens and the prompt has 40/);
    return true;
  });
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('LLM.generate returns outputs in prompt order with logprobs', async () => {
  const llm = new LLM({ model, maxNumBatchedTokens: 8 });
  const texts = ['Tim', 'The sun was hot and the birds were singing', 'Once upon a time'];
  const outputs = await llm.generate(texts, new SamplingParams({ temperature: 0, max_tokens: 10, logprobs: 2 }));
  assert.deepEqual(outputs.map((o) => o.prompt), texts);
  const alone = await runAlone(texts.map((t) => ({ prompt: encode(t), params: { sampling: { temperature: 0 }, maxTokens: 10 } })));
  outputs.forEach((o, i) => {
    assert.deepEqual(o.prompt_token_ids, encode(texts[i]));
    assert.deepEqual(o.outputs[0].token_ids, alone[i][0].tokens);
    const logprobs = o.outputs[0].logprobs ?? [];
    assert.equal(logprobs.length, o.outputs[0].token_ids.length);
    // greedy: the chosen token is the most likely one
    logprobs.forEach((lp, j) => {
      assert.equal(lp.token, o.outputs[0].token_ids[j]);
      assert.equal(lp.top[0].token, lp.token);
      assert.ok(Math.abs(lp.top[0].logprob - lp.logprob) < 1e-5 && lp.top[1].logprob <= lp.logprob);
    });
  });
  await llm.close();
});
