// The findings of the server's hostile-input audit (issue 16), one test each: the engine off the HTTP thread
// (/health answers while the engine traces), fan-out limits counted in sequences, one API-key gate for every route,
// JSON-only bodies, CORS off by default, the Host check, malformed request lines, `Expect: 100-continue` over the
// limit, slow bodies timed out, non-finite numbers, a runaway chat template.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { metaString, serializeGGUF } from '../../src/gguf/writer.js';
import { MODEL_NAME, MODEL_PATH, startServer, waitFor, type TestServer } from './helpers.js';

let s: TestServer;
before(async () => {
  s = await startServer({ maxNumSeqs: 2 }, { maxWaiting: 4, maxRequestSequences: 8, requestTimeoutMs: 1000, headersTimeoutMs: 1000 });
});
after(async () => {
  await s.close();
});

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const post = (base: string, path: string, body: unknown, headers: Record<string, string> = JSON_HEADERS) =>
  fetch(base + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, headers: r.headers, body: (await r.json()) as any }));

/** What a raw HTTP exchange got back: everything the server wrote until it closed the connection (or `until` matched). */
function raw(port: number, request: string, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (data) => {
      received += data.toString('latin1');
      if (until?.test(received)) socket.destroy();
    });
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
    socket.write(request);
  });
}
const port = (base: string) => Number(new URL(base).port);
const idle = (server: TestServer) => () => {
  const stats = server.engine.stats();
  return stats.running === 0 && stats.waiting === 0 && stats.kvBlocksUsed === 0;
};

test('1. the engine runs off the HTTP thread: /health answers while a trace runs in the engine', async () => {
  const inspector = s.engine.inspector!;
  let traced = false;
  const trace = inspector.trace({ prompt: 'Once upon a time, there was a little girl named Lily. '.repeat(8), maxTokens: 64, sampling: { temperature: 0 } })
    .finally(() => (traced = true));
  let answered = 0;
  while (!traced && answered < 1) {
    const health = await fetch(`${s.baseURL}/health`);
    assert.equal(health.status, 200);
    if (!traced) answered++;
  }
  assert.ok(answered >= 1, '/health was answered while the trace ran');
  assert.ok(((await trace) as { tokens: unknown[] }).tokens.length > 64);
});

test('1. the inspector\'s traces are bounded: too many positions or tokens is a 400 before any work', async () => {
  const long = await post(s.baseURL, '/inspect/api', { prompt: 'the cat sat on the mat. '.repeat(60), n: 8 });
  assert.equal(long.status, 400);
  assert.match(long.body.error.message, /too large to serve: at most 256 positions/);
  assert.equal((await post(s.baseURL, '/inspect/api', { prompt: 'Hi', n: 65 })).status, 400);
  const ok = await post(s.baseURL, '/inspect/api', { prompt: 'Once upon a time', n: 4 });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.steps.length, 4);
});

test('2. fan-out is counted in sequences: prompts × n over the per-request cap is 400 at once, over the queue 429', async () => {
  const fanOut = await post(s.baseURL, '/v1/completions', { prompt: new Array(1000).fill('Once upon a time'), max_tokens: 4, n: 16 });
  assert.equal(fanOut.status, 400);
  assert.equal(fanOut.body.error.code, 'too_many_sequences');
  assert.match(fanOut.body.error.message, /16000 sequences .* at most 8/);
  assert.equal((await post(s.baseURL, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], n: 9 })).status, 400);
  assert.equal(s.engine.stats().waiting, 0, 'nothing was queued');

  // two sequences run (maxNumSeqs 2); a request of 2 × n 2 waits, counted as 4 sequences: the queue (4) is full
  const long = (n: number) => post(s.baseURL, '/v1/completions', { prompt: 'Once upon a time', max_tokens: 200, ignore_eos: true, n });
  const running = long(2);
  await waitFor(() => s.engine.stats().running === 2, 'two sequences to run');
  const waiting = post(s.baseURL, '/v1/completions', { prompt: ['Once upon a time', 'The dog'], max_tokens: 2, n: 2 });
  await waitFor(() => s.engine.stats().waiting === 4, 'four sequences to wait');
  const refused = await long(1);
  assert.equal(refused.status, 429);
  assert.match(refused.body.error.message, /4 sequences waiting, at most 4/);
  assert.equal((await running).status, 200);
  assert.equal((await waiting).body.choices.length, 4);
  await waitFor(idle(s), 'the engine to be idle');
});

test('3. one API-key gate for every route, before routing; the Bearer scheme in any case; /health open only by option', async () => {
  const keyed = await startServer({}, { apiKey: 'sekret' });
  const open = await startServer({}, { apiKey: 'sekret', openHealth: true });
  try {
    const routes: [string, string][] = [
      ['GET', '/'], ['GET', '/health'], ['GET', '/metrics'], ['GET', '/v1/models'], ['GET', `/v1/models/${MODEL_NAME}`], ['GET', '/v1/models/wrong'],
      ['GET', '/inspect'], ['POST', '/inspect/api'], ['GET', '/inspect/api/blocks'], ['GET', '/estimate'], ['POST', '/estimate/api'],
      ['POST', '/v1/completions'], ['POST', '/v1/chat/completions'], ['POST', '/v1/embeddings'], ['GET', '/no/such/route'], ['DELETE', '/v1/models'],
    ];
    for (const [method, path] of routes) {
      const res = await fetch(keyed.baseURL + path, { method, headers: JSON_HEADERS, body: method === 'POST' ? '{}' : undefined });
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.equal(((await res.json()) as any).error.type, 'authentication_error');
    }
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await fetch(`${keyed.baseURL}/v1/models`, { headers: { Authorization: `${scheme} sekret` } });
      assert.equal(res.status, 200, scheme);
    }
    assert.equal((await fetch(`${keyed.baseURL}/v1/models/wrong`, { headers: { Authorization: 'Bearer sekret' } })).status, 404);
    assert.equal((await fetch(`${open.baseURL}/health`)).status, 200);
    assert.equal((await fetch(`${open.baseURL}/metrics`)).status, 401);
  } finally {
    await Promise.all([keyed.close(), open.close()]);
  }
});

test('4. POST bodies must be JSON: text/plain, form and multipart get 415; JSON with a charset is fine', async () => {
  const body = JSON.stringify({ prompt: 'Hi', max_tokens: 1 });
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
    const answer = await post(s.baseURL, '/v1/completions', body, { 'Content-Type': type });
    assert.equal(answer.status, 415, type);
    assert.equal(answer.body.error.code, 'unsupported_media_type');
  }
  const noType = await fetch(`${s.baseURL}/v1/completions`, { method: 'POST', body: new Blob([body]) });
  assert.equal(noType.status, 415);
  assert.equal((await post(s.baseURL, '/v1/completions', body, { 'Content-Type': 'application/json; charset=utf-8' })).status, 200);
});

test('4. CORS is off by default; --cors allows the origins named, preflight answered, streams included', async () => {
  const preflight = (base: string, origin: string) => fetch(`${base}/v1/completions`, {
    method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,authorization' },
  });
  const closed = await preflight(s.baseURL, 'http://evil.example');
  assert.equal(closed.headers.get('access-control-allow-origin'), null);
  assert.ok(closed.status >= 400);

  const cors = await startServer({}, { corsOrigins: ['http://app.example'], apiKey: 'k' });
  try {
    const allowed = await preflight(cors.baseURL, 'http://app.example');
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.match(allowed.headers.get('access-control-allow-headers') ?? '', /Authorization/i);
    const other = await preflight(cors.baseURL, 'http://evil.example');
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    const headers = { ...JSON_HEADERS, Origin: 'http://app.example', Authorization: 'Bearer k' };
    const stream = await fetch(`${cors.baseURL}/v1/completions`, { method: 'POST', headers, body: JSON.stringify({ prompt: 'Hi', max_tokens: 2, stream: true }) });
    assert.equal(stream.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.match(await stream.text(), /data: \[DONE\]/);
  } finally {
    await cors.close();
  }
});

test('4. Host is checked on loopback (DNS rebinding): another name is 403 unless --allowed-hosts names it', async () => {
  const p = port(s.baseURL);
  const get = (server: TestServer, host: string) => raw(port(server.baseURL), `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  assert.match(await get(s, 'evil.example'), /^HTTP\/1\.1 403 .*host_not_allowed/s);
  assert.match(await get(s, `evil.example:${p}`), /^HTTP\/1\.1 403/);
  for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, 'LOCALHOST', `[::1]:${p}`]) assert.match(await get(s, host), /^HTTP\/1\.1 200/, host);
  const lan = await startServer({}, { allowedHosts: ['kiln.lan'] });
  try {
    assert.match(await get(lan, 'kiln.lan:8080'), /^HTTP\/1\.1 200/);
    assert.match(await get(lan, 'evil.example'), /^HTTP\/1\.1 403/);
  } finally {
    await lan.close();
  }
});

test('5. malformed request lines get 400, not a dropped socket', async () => {
  const p = port(s.baseURL);
  for (const line of ['GET //[ HTTP/1.1', 'GET //a:b@[ HTTP/1.1', 'GET nothing HTTP/1.1', 'GET / HTTP/1.1 junk', 'G\x01T / HTTP/1.1', 'GET /%zz HTTP/1.1']) {
    const answer = await raw(p, `${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 400 /, JSON.stringify(line));
  }
  assert.equal((await fetch(`${s.baseURL}/health`)).status, 200);
});

test('5. Expect: 100-continue with a Content-Length over the limit: 413 without 100 Continue', async () => {
  const answer = await raw(port(s.baseURL), 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${50 << 20}\r\nExpect: 100-continue\r\n\r\n`);
  assert.match(answer, /^HTTP\/1\.1 413 /);
  assert.doesNotMatch(answer, /100 Continue/);
  assert.match(answer, /body_too_large/);
  // within the limit the body is asked for and answered
  const body = JSON.stringify({ prompt: 'Hi', max_tokens: 1 });
  const ok = await raw(port(s.baseURL), 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n' +
    `Content-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n${body}`);
  assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
});

test('5. a body that never finishes is timed out (408) and its connection closed', async () => {
  const answer = await raw(port(s.baseURL), 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt"');
  assert.match(answer, /^HTTP\/1\.1 408 /);
  const headers = await raw(port(s.baseURL), 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  assert.match(headers, /^HTTP\/1\.1 408 /);
});

test('6. non-finite numbers (1e400 parses as Infinity) fail validation, naming the field', async () => {
  const cases: [string, string, string][] = [
    ['/v1/completions', '{"prompt": "Hi", "suffix": 1e400}', 'suffix'],
    ['/v1/completions', '{"prompt": "Hi", "temperature": 1e400}', 'temperature'],
    ['/v1/completions', '{"prompt": "Hi", "max_tokens": 1e400}', 'max_tokens'],
    ['/v1/completions', '{"prompt": [1, 1e400]}', 'prompt'],
    ['/v1/chat/completions', '{"messages": [{"role": "user", "content": "Hi"}], "tools": 1e400}', 'tools'],
    ['/v1/chat/completions', '{"messages": [{"role": "user", "content": "Hi"}], "seed": -1e400}', 'seed'],
  ];
  for (const [path, body, param] of cases) {
    const answer = await post(s.baseURL, path, body);
    assert.equal(answer.status, 400, body);
    assert.equal(answer.body.error.param, param, body);
  }
});

test('7. a chat template that runs away is a 400 with the reason; the server goes on answering', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-template-'));
  const source = loadGGUF(MODEL_PATH);
  const metadata = new Map(source.metadata);
  metadata.set('tokenizer.chat_template', metaString('{% for i in range(3000000) %}x{% endfor %}'));
  const path = join(dir, 'runaway.gguf');
  writeFileSync(path, serializeGGUF({ metadata, tensors: source.tensorInfos.map((info) => ({ ...source.tensor(info.name), dims: info.dims })) }));
  const runaway = await startServer({}, {}, { path, name: 'runaway' });
  try {
    const chat = await post(runaway.baseURL, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(chat.status, 400);
    assert.match(chat.body.error.message, /chat template failed to render: range\(\) of 3000000 items is over the budget/);
    assert.equal((await fetch(`${runaway.baseURL}/health`)).status, 200);
    assert.equal((await post(runaway.baseURL, '/v1/completions', { prompt: 'Hi', max_tokens: 2 })).status, 200);
  } finally {
    await runaway.close();
    rmSync(dir, { recursive: true });
  }
});
