import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, SamplingError, type SamplingParams } from '../../src/generate/sampler.js';
import { LogitBias, LogitBiasError, type LogitsProcessor } from '../../src/generate/logits-processor.js';

const GREEDY: Partial<SamplingParams> = { temperature: 0 };

test('logit bias moves the argmax and a −100 bias bans the best token', () => {
  const logits = Float32Array.of(5, 4, 3, 2);
  assert.equal(new Sampler(GREEDY, 4, [new LogitBias(new Map([[3, 10]]), 4)]).sample(logits, []), 3);
  assert.equal(new Sampler(GREEDY, 4, [new LogitBias(new Map([[0, -100]]), 4)]).sample(logits, []), 1);
  assert.throws(() => new LogitBias(new Map([[4, 1]]), 4), LogitBiasError);
  assert.throws(() => new LogitBias(new Map([[1, NaN]]), 4), LogitBiasError);
});

test('processors run before the penalties, in order, and see each accepted token', () => {
  const seen: string[] = [];
  const record = (name: string, ban: number): LogitsProcessor => ({
    process(logits) { seen.push(`${name}:${logits[ban]}`); logits[ban] = -Infinity; },
    accept(token) { seen.push(`${name} accepted ${token}`); },
  });
  // token 0 is best; the repeat penalty halves it (4 → 2) only if the processors did not already ban it
  const sampler = new Sampler({ ...GREEDY, repeat_penalty: 2, repeat_last_n: -1 }, 3, [record('a', 0), record('b', 1)]);
  const token = sampler.sample(Float32Array.of(4, 3, 1), [1]);
  assert.equal(token, 2);
  // b saw a's result on its own token, and token 1's penalty came after b banned it
  assert.deepEqual(seen, ['a:4', 'b:3']);
  sampler.accept(token);
  assert.deepEqual(seen.slice(2), ['a accepted 2', 'b accepted 2']);
});

test('a processor that forbids every token is a SamplingError', () => {
  const banAll: LogitsProcessor = { process: (logits) => logits.fill(-Infinity), accept() {} };
  assert.throws(() => new Sampler(GREEDY, 3, [banAll]).sample(Float32Array.of(1, 2, 3), []), SamplingError);
});

test('in the engine, a processor that leaves no token fails its own request only', async () => {
  const { Model } = await import('../../src/generate/model.js');
  const { LLMEngine } = await import('../../src/engine/engine.js');
  const { collectCompletions } = await import('../../src/engine/llm.js');
  const { sharedPath } = await import('../shared.js');
  const model = Model.load(sharedPath('data', 'models', 'stories260K.gguf'));
  const engine = new LLMEngine(model, { maxModelLength: 64 });
  const prompt = model.tokenizer.encode('Once upon a time');
  const banAll: LogitsProcessor = { process: (logits) => logits.fill(-Infinity), accept() {} };
  const failing = collectCompletions(engine.submit({ prompt, params: { sampling: GREEDY, maxTokens: 4, n: 2, logitsProcessors: () => [banAll] } }), 2);
  const healthy = collectCompletions(engine.submit({ prompt, params: { sampling: GREEDY, maxTokens: 4 } }), 1);
  await assert.rejects(failing, SamplingError);
  assert.equal((await healthy)[0].token_ids.length, 4);
  await engine.close();
});
