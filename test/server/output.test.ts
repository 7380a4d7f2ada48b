// Output-shaping request fields through the official client: logit_bias and echo on completions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL_NAME, startServer, type TestServer } from './helpers.js';

let s: TestServer;
before(async () => { s = await startServer(); });
after(async () => { await s.close(); });

const PROMPT = 'Once upon a time';

test('logit_bias: +100 forces a token, −100 bans the greedy choice', async () => {
  const plain = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 1, temperature: 0, logprobs: 1 });
  const greedyText = plain.choices[0].logprobs!.tokens![0];
  const greedyId = s.engine.inner.model.tokenizer.encode(PROMPT + greedyText, { addSpecial: true }).at(-1)!;
  const banned = await s.client.completions.create({
    model: MODEL_NAME, prompt: PROMPT, max_tokens: 1, temperature: 0, logprobs: 1, logit_bias: { [greedyId]: -100 },
  });
  assert.notEqual(banned.choices[0].logprobs!.tokens![0], greedyText);

  const forced = 100; // "e" in stories260K's vocabulary, say: any id will do
  const tokenizer = s.engine.inner.model.tokenizer;
  const piece = new TextDecoder().decode(tokenizer.decodeToken(forced));
  const completion = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 5, temperature: 0, logit_bias: { [forced]: 100 } });
  assert.equal(completion.choices[0].text, piece.repeat(5));
});

test('echo: the text opens with the prompt, streamed or not', async () => {
  const plain = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 6, temperature: 0 });
  const echoed = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 6, temperature: 0, echo: true });
  assert.equal(echoed.choices[0].text, PROMPT + plain.choices[0].text);
  const stream = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 6, temperature: 0, echo: true, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, echoed.choices[0].text);
});

test('bad logit_bias and echo with logprobs: 400 naming the field', async () => {
  const cases: [object, string][] = [
    [{ logit_bias: { 99999: 1 } }, 'logit_bias'], [{ logit_bias: { 5: 200 } }, 'logit_bias'], [{ logit_bias: { x: 1 } }, 'logit_bias'],
    [{ logit_bias: [1] }, 'logit_bias'], [{ echo: true, logprobs: 1 }, 'echo'],
  ];
  for (const [extra, param] of cases) {
    const res = await fetch(`${s.baseURL}/v1/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, max_tokens: 2, ...extra }),
    });
    assert.equal(res.status, 400, JSON.stringify(extra));
    assert.equal((await res.json() as { error: { param: string } }).error.param, param);
  }
});
