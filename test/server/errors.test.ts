// Every error the server answers (400, 401, 404, 405, 413, 429) in OpenAI's error shape, each followed by a
// request that succeeds; disconnects that abort their engine requests and free their KV blocks; /metrics.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { MODEL_NAME, startServer, waitFor, type TestServer } from './helpers.js';

let s: TestServer;
before(async () => {
  s = await startServer({ maxNumSeqs: 1 }, { maxWaiting: 1, maxBodyBytes: 4096 });
});
after(async () => {
  await s.close();
});

interface Answer { status: number; headers: Headers; body: any }

async function call(path: string, init: { method?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const body = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  const res = await fetch(s.baseURL + path, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), body, headers: { 'Content-Type': 'application/json', ...init.headers } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

/** The answer is OpenAI's error JSON with this status, and the next request still succeeds. */
async function assertError(answer: Answer, status: number, param?: string | null): Promise<void> {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  const { error } = answer.body;
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 0);
  assert.equal(typeof error.type, 'string');
  assert.ok('param' in error && 'code' in error);
  if (param !== undefined) assert.equal(error.param, param);
  await assertServing();
}

async function assertServing(): Promise<void> {
  const ok = await call('/v1/completions', { body: { model: MODEL_NAME, prompt: 'Hi', max_tokens: 2, temperature: 0 } });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.usage.completion_tokens, 2);
}

const completion = (extra: object) => ({ body: { model: MODEL_NAME, prompt: 'Once', max_tokens: 4, ...extra } });
const chat = (extra: object) => ({ body: { model: MODEL_NAME, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, ...extra } });

test('malformed JSON and bodies that are not objects: 400', async () => {
  const bad = await call('/v1/completions', { raw: '{"prompt": "Once",' });
  await assertError(bad, 400);
  assert.equal(bad.body.error.code, 'invalid_json');
  await assertError(await call('/v1/chat/completions', { raw: '[1, 2]' }), 400);
});

test('every invalid parameter is a 400 naming it', async () => {
  const cases: [object, string][] = [
    [{ temperature: 3 }, 'temperature'], [{ temperature: 'hot' }, 'temperature'], [{ top_p: 1.5 }, 'top_p'], [{ top_p: -0.1 }, 'top_p'],
    [{ top_k: 2.5 }, 'top_k'], [{ top_k: -2 }, 'top_k'], [{ min_p: 2 }, 'min_p'], [{ n: 0 }, 'n'], [{ n: 1000 }, 'n'],
    [{ max_tokens: 0 }, 'max_tokens'], [{ max_tokens: 1.5 }, 'max_tokens'], [{ max_tokens: '4' }, 'max_tokens'],
    [{ stop: 5 }, 'stop'], [{ stop: [''] }, 'stop'], [{ stop: ['a', 3] }, 'stop'], [{ seed: 1.5 }, 'seed'],
    [{ presence_penalty: 2.5 }, 'presence_penalty'], [{ frequency_penalty: -3 }, 'frequency_penalty'],
    [{ logprobs: 50 }, 'logprobs'], [{ logprobs: true }, 'logprobs'], [{ stream: 'yes' }, 'stream'],
    [{ stream_options: { include_usage: true } }, 'stream_options'], [{ stream: true, stream_options: { include_usage: 1 } }, 'stream_options.include_usage'],
    [{ echo: true, logprobs: 2 }, 'echo'], [{ logit_bias: { 5: 101 } }, 'logit_bias'], [{ bogus: 1 }, 'bogus'],
    [{ prompt: undefined }, 'prompt'], [{ prompt: {} }, 'prompt'], [{ prompt: [[]] }, 'prompt'], [{ prompt: [1, -1] }, 'prompt'],
    [{ prompt: [1, 99999] }, 'prompt'], [{ prompt: ['a', 1] }, 'prompt'],
  ];
  for (const [extra, param] of cases) {
    const answer = await call('/v1/completions', completion(extra));
    assert.equal(answer.status, 400, `${JSON.stringify(extra)} → ${answer.status}`);
    assert.equal(answer.body.error.param, param, JSON.stringify(extra));
    assert.equal(answer.body.error.type, 'invalid_request_error');
  }
  const chatCases: [object, string][] = [
    [{ messages: [] }, 'messages'], [{ messages: 'hi' }, 'messages'], [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'], [{ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, 'messages[0].content'],
    [{ top_logprobs: 2 }, 'top_logprobs'], [{ logprobs: 1 }, 'logprobs'], [{ max_tokens: 4, max_completion_tokens: 5 }, 'max_completion_tokens'],
    [{ tools: [{ type: 'function' }] }, 'tools'], [{ response_format: { type: 'xml' } }, 'response_format'],
  ];
  for (const [extra, param] of chatCases) {
    const answer = await call('/v1/chat/completions', chat(extra));
    assert.equal(answer.status, 400, `${JSON.stringify(extra)} → ${answer.status}`);
    assert.equal(answer.body.error.param, param, JSON.stringify(extra));
  }
  // refused by the engine (n above its 1 sequence): still a plain 400 before any stream opens
  const tooMany = await call('/v1/completions', completion({ n: 2, stream: true }));
  await assertError(tooMany, 400);
  assert.match(tooMany.body.error.message, /\bn\b/);
});

test('unknown model, unknown route: 404; wrong method: 405 with Allow', async () => {
  const model = await call('/v1/completions', completion({ model: 'gpt-9' }));
  await assertError(model, 404, 'model');
  assert.equal(model.body.error.code, 'model_not_found');
  await assertError(await call('/v1/chat/completions', chat({ model: 'gpt-9' })), 404);
  await assertError(await call('/v1/models/gpt-9'), 404);
  await assertError(await call('/v1/audio/speech', { body: {} }), 404);
  await assertError(await call('/nothing-here'), 404);
  const method = await call('/v1/chat/completions');
  await assertError(method, 405);
  assert.equal(method.headers.get('allow'), 'POST');
  assert.equal((await call('/v1/models', { method: 'DELETE' })).status, 405);
});

test('prompt + max_tokens over the context: 400 with the numbers', async () => {
  const answer = await call('/v1/completions', completion({ prompt: 'Once upon a time', max_tokens: 300 }));
  await assertError(answer, 400, 'max_tokens');
  assert.equal(answer.body.error.code, 'context_length_exceeded');
  // 5 prompt tokens + 300 = 305 against a context of 256
  for (const number of ['256', '305', '5', '300']) assert.match(answer.body.error.message, new RegExp(`\\b${number}\\b`));
  const long = await call('/v1/completions', completion({ prompt: Array(300).fill(5), max_tokens: 1 }));
  await assertError(long, 400);
  assert.match(long.body.error.message, /\b301\b/);
});

test('without max_tokens an answer may fill the context; a prompt that fills it: 400 context_length_exceeded', async () => {
  const full = await call('/v1/completions', { body: { prompt: 'Once upon a time', temperature: 0, ignore_eos: true } });
  assert.equal(full.status, 200, JSON.stringify(full.body));
  assert.equal(full.body.choices[0].finish_reason, 'length');
  assert.equal(full.body.usage.total_tokens, 256);

  const words = 'the cat sat on the mat and looked at the dog '.repeat(40);
  const chatAnswer = await call('/v1/chat/completions', { body: { messages: [{ role: 'user', content: words }] } });
  await assertError(chatAnswer, 400, 'messages');
  assert.equal(chatAnswer.body.error.code, 'context_length_exceeded');
  assert.equal(chatAnswer.body.error.type, 'invalid_request_error');
  assert.match(chatAnswer.body.error.message, /^the context holds 256 tokens and the prompt has \d+, leaving no room to generate; shorten the messages$/);
  const ids = await call('/v1/completions', { body: { prompt: Array(256).fill(5) } });
  await assertError(ids, 400, 'prompt');
  assert.equal(ids.body.error.code, 'context_length_exceeded');
  // what the OpenAI client makes of it
  await assert.rejects(
    s.client.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'user', content: words }] }),
    (e: any) => e.status === 400 && e.code === 'context_length_exceeded' && e.param === 'messages',
  );
});

test('body too large: 413 (by Content-Length and when streamed in chunks)', async () => {
  await assertError(await call('/v1/completions', completion({ prompt: 'x'.repeat(5000) })), 413);
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${s.baseURL}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.write('{"prompt": "');
    for (let i = 0; i < 10; i++) req.write('y'.repeat(1000));
    req.end('"}');
  });
  assert.equal(chunked, 413);
  await assertServing();
});

test('API key: missing or wrong → 401, right → 200', async () => {
  const keyed = await startServer({}, { apiKey: 'sekret' });
  try {
    const models = (headers: Record<string, string>) =>
      fetch(`${keyed.baseURL}/v1/models`, { headers }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    const missing = await models({});
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.type, 'authentication_error');
    assert.equal((await models({ Authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await models({ Authorization: 'Bearer sekretX' })).status, 401);
    assert.equal((await models({ Authorization: 'Bearer sekret' })).status, 200);
    // every route needs the key, /health too unless openHealth allows probes without it (below)
    assert.equal((await fetch(`${keyed.baseURL}/health`)).status, 401);
    const completion = await keyed.client.completions.create({ model: MODEL_NAME, prompt: 'Hi', max_tokens: 2 });
    assert.equal(completion.usage?.completion_tokens, 2);
  } finally {
    await keyed.close();
  }
});

/** A streaming completion over raw HTTP, resolved with its response once the first chunk arrived. */
function openStream(maxTokens: number): Promise<{ res: IncomingMessage; destroy(): void }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: maxTokens, stream: true, ignore_eos: true });
    const req = httpRequest(`${s.baseURL}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      res.once('data', () => resolve({ res, destroy: () => req.destroy() }));
    });
    req.on('error', () => {}); // destroyed on purpose
    req.on('error', reject);
    req.end(body);
  });
}

const idle = () => {
  const stats = s.engine.stats();
  return stats.running === 0 && stats.waiting === 0 && stats.kvBlocksUsed === 0;
};

test('queue full: 429 while the one slot runs and one request waits; both finish, then serving goes on', async () => {
  const first = await openStream(240);
  const waiting = call('/v1/completions', completion({ max_tokens: 3 }));
  await waitFor(() => s.engine.stats().waiting === 1, 'the second request to wait');
  const full = await call('/v1/completions', completion({}));
  assert.equal(full.status, 429);
  assert.equal(full.body.error.type, 'rate_limit_error');
  first.destroy();
  assert.equal((await waiting).status, 200);
  await waitFor(idle, 'the engine to be idle');
  await assertServing();
});

test('a client that disconnects mid-stream or mid-request has its request aborted and its blocks freed', async () => {
  await waitFor(idle, 'the engine to be idle');
  const before = new Set(s.engine.finishes.keys());
  const stream = await openStream(240);
  assert.ok(s.engine.stats().kvBlocksUsed > 0);
  stream.destroy();
  await waitFor(idle, 'blocks freed after a mid-stream disconnect');

  // a non-streaming request, cut while it generates
  const req = httpRequest(`${s.baseURL}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify({ prompt: 'Once upon a time', max_tokens: 240, ignore_eos: true }));
  await waitFor(() => s.engine.stats().running === 1, 'the request to run');
  req.destroy();
  await waitFor(idle, 'blocks freed after a mid-request disconnect');

  const aborted = [...s.engine.finishes].filter(([id]) => !before.has(id)).map(([, reasons]) => reasons);
  assert.deepEqual(aborted, [['abort'], ['abort']]);
  // the request cut before any answer counts as 499 (only this test disconnects before an answer)
  const metrics = await fetch(`${s.baseURL}/metrics`).then((r) => r.text());
  assert.match(metrics, /^kiln_requests_total\{route="\/v1\/completions",status="499"\} 1$/m);
  await assertServing();
});

test('/health and /metrics in Prometheus text format', async () => {
  const fresh = await startServer();
  try {
    assert.deepEqual((await fetch(`${fresh.baseURL}/health`).then((r) => r.json())), { status: 'ok' });
    const a = await fresh.client.completions.create({ model: MODEL_NAME, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
    const b = await fresh.client.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 });
    await fetch(`${fresh.baseURL}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{' });
    const res = await fetch(`${fresh.baseURL}/metrics`);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(series + ' '));
      assert.ok(line, `no series ${series}`);
      return Number(line.slice(series.length + 1));
    };
    assert.equal(value('kiln_requests_total{route="/v1/completions",status="200"}'), 1);
    assert.equal(value('kiln_requests_total{route="/v1/chat/completions",status="200"}'), 1);
    assert.equal(value('kiln_requests_total{route="/v1/completions",status="400"}'), 1);
    assert.equal(value('kiln_requests_total{route="/health",status="200"}'), 1);
    assert.equal(value('kiln_prompt_tokens_total'), a.usage!.prompt_tokens + b.usage!.prompt_tokens);
    assert.equal(value('kiln_generation_tokens_total'), a.usage!.completion_tokens + b.usage!.completion_tokens);
    assert.equal(value('kiln_time_to_first_token_seconds_count'), 2);
    assert.equal(value('kiln_time_to_first_token_seconds_bucket{le="+Inf"}'), 2);
    assert.equal(value('kiln_time_per_output_token_seconds_count'), 2);
    assert.ok(value('kiln_time_to_first_token_seconds_sum') > 0);
    assert.equal(value('kiln_num_sequences_running'), 0);
    assert.equal(value('kiln_num_sequences_waiting'), 0);
    assert.equal(value('kiln_kv_blocks_used'), 0);
    assert.equal(value('kiln_kv_blocks_free'), value('kiln_kv_blocks_total'));
    assert.ok(value('kiln_prefix_cache_hit_rate') >= 0);
    assert.match(text, /# TYPE kiln_time_to_first_token_seconds histogram/);
  } finally {
    await fresh.close();
  }
});
