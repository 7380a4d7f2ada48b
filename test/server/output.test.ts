// Output-shaping request fields through the official client: logit_bias and echo on completions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, MODEL_NAME, startServer, type TestServer } from './helpers.js';

let s: TestServer;
before(async () => { s = await startServer(); });
after(async () => { await s.close(); });

const PROMPT = 'Once upon a time';

test('logit_bias: +100 forces a token, −100 bans the greedy choice', async () => {
  const plain = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 1, temperature: 0, logprobs: 1 });
  const greedyText = plain.choices[0].logprobs!.tokens![0];
  const greedyId = loadModel().tokenizer.encode(PROMPT + greedyText, { addSpecial: true }).at(-1)!;
  const banned = await s.client.completions.create({
    model: MODEL_NAME, prompt: PROMPT, max_tokens: 1, temperature: 0, logprobs: 1, logit_bias: { [greedyId]: -100 },
  });
  assert.notEqual(banned.choices[0].logprobs!.tokens![0], greedyText);

  const forced = 100; // "e" in stories260K's vocabulary, say: any id will do
  const tokenizer = loadModel().tokenizer;
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

async function post(path: string, body: object): Promise<{ status: number; body: any }> {
  const res = await fetch(`${s.baseURL}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

test('the grammar field holds the output to raw GBNF, on both endpoints, streamed too', async () => {
  const grammar = 'root ::= ("yes" | "no") " because " [a-z]{1,8} "."';
  for (let seed = 0; seed < 4; seed++) {
    const answer = await post('/v1/completions', { prompt: PROMPT, max_tokens: 40, seed, grammar });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.match(answer.body.choices[0].text, /^(yes|no) because [a-z]{1,8}\.$/);
    assert.equal(answer.body.choices[0].finish_reason, 'stop');
  }
  const chat = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Well?' }], max_tokens: 40, seed: 5, grammar });
  assert.match(chat.body.choices[0].message.content, /^(yes|no) because [a-z]{1,8}\.$/);
  const stream = await s.client.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'user', content: 'Well?' }], max_tokens: 40, seed: 6, stream: true, grammar } as never);
  let text = '';
  for await (const chunk of stream as unknown as AsyncIterable<{ choices: { delta: { content?: string } }[] }>) text += chunk.choices[0]?.delta.content ?? '';
  assert.match(text, /^(yes|no) because [a-z]{1,8}\.$/);
});

test('a completion cut by max_tokens still ends where the grammar may end', async () => {
  // stories260K alone would rarely close a string: the budget forces the end in time
  const answer = await post('/v1/completions', { prompt: PROMPT, max_tokens: 30, seed: 3, grammar: 'root ::= "\\"" [a-z ]* "\\""' });
  assert.match(answer.body.choices[0].text, /^"[a-z ]*"$/);
});

test('bad grammars and unsupported schema keywords: 400 naming the field and the keyword', async () => {
  const chat = (extra: object) => post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, ...extra });
  const schema = (s: object) => ({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: s } } });
  const cases: [object, string, RegExp][] = [
    [{ grammar: 'root ::= undefined-rule' }, 'grammar', /undefined-rule/], [{ grammar: 5 }, 'grammar', /GBNF/],
    [{ grammar: 'root ::= "x"', response_format: { type: 'json_object' } }, 'grammar', /not both/],
    [schema({ type: 'object', properties: { a: { not: {} } } }), 'response_format.json_schema.schema', /"not"/],
    [schema({ type: 'string', format: 'email' }), 'response_format.json_schema.schema', /format/],
    [{ response_format: { type: 'json_schema' } }, 'response_format.json_schema', /name and schema/],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'bad name!', schema: {} } } }, 'response_format.json_schema.name', /name/],
  ];
  for (const [extra, param, message] of cases) {
    const answer = await chat(extra);
    assert.equal(answer.status, 400, JSON.stringify(extra));
    assert.equal(answer.body.error.param, param, JSON.stringify(extra));
    assert.match(answer.body.error.message, message);
  }
});
