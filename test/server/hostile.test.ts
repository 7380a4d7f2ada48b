// Hostile input, generated: 1,200 seeded requests made by mutating valid ones (wrong types and ranges, non-finite and
// huge numbers, deep nesting, broken JSON bytes, odd methods, paths, content types and keys, garbage request lines,
// clients that leave mid-request), sent 8 at a time. Every request is answered, none with a 5xx; afterwards the
// server still serves and no KV block is in use.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { mulberry32 } from '../helpers/random.js';
import { MODEL_NAME, startServer, waitFor, type TestServer } from './helpers.js';

const CASES = 1200;
const CONCURRENCY = 8;

let s: TestServer;
before(async () => {
  // a short context bounds what any accepted request may generate
  s = await startServer({ maxNumSeqs: 4, maxModelLength: 64 }, { apiKey: 'key', maxWaiting: 16, maxBodyBytes: 64 << 10, requestTimeoutMs: 5000 });
});
after(async () => {
  await s.close();
});

const random = mulberry32(16);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
const chance = (p: number) => random() < p;

const VALID: [string, object][] = [
  ['/v1/completions', { model: MODEL_NAME, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 }],
  ['/v1/completions', { prompt: ['Tim', 'Sue'], max_tokens: 3, n: 2, logprobs: 2, stop: ['.'], seed: 3 }],
  ['/v1/completions', { prompt: [1, 403, 407], max_tokens: 2, stream: true, stream_options: { include_usage: true } }],
  ['/v1/chat/completions', { messages: [{ role: 'system', content: 'Be nice.' }, { role: 'user', content: 'Hi' }], max_tokens: 4, logprobs: true, top_logprobs: 2 }],
  ['/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }], max_completion_tokens: 3, stream: true, n: 2 }],
  ['/v1/embeddings', { input: ['a cat', 'a dog'], encoding_format: 'base64' }],
  ['/inspect/api', { prompt: 'Once', n: 2 }],
  ['/estimate/api', { model: { params: '7B' }, ctx: 4096 }],
];

const FIELDS = ['model', 'prompt', 'messages', 'input', 'max_tokens', 'n', 'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'stream',
  'stream_options', 'logprobs', 'top_logprobs', 'echo', 'suffix', 'best_of', 'logit_bias', 'tools', 'tool_choice', 'response_format', 'user',
  'ignore_eos', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'encoding_format', 'dimensions', 'max_completion_tokens',
  'ctx', 'batch', 'sampling', '__proto__', 'constructor', ''];

/** a JSON text of a hostile value (non-finite and huge numbers are written as text: JSON.stringify cannot) */
function hostileValue(depth = 0): string {
  switch (Math.floor(random() * 16)) {
    case 0: return pick(['1e400', '-1e400', '1e308', '-0', '9007199254740993', '0.0000001', '123456789012345678901234567890']);
    case 1: return String(Math.floor(random() * 2 ** 31) * (chance(0.5) ? 1 : -1));
    case 2: return String(random() * 4 - 2);
    case 3: return pick(['true', 'false', 'null']);
    case 4: return JSON.stringify('x'.repeat(Math.floor(random() * 5000)));
    case 5: return JSON.stringify(pick(['', '\u0000', '\ud800', '<|endoftext|>', '{{ raise_exception("x") }}', '🐈'.repeat(100), 'text', 'base64']));
    case 6: return '['.repeat(2000) + ']'.repeat(2000);
    case 7: return `[${Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 600) - 50).join(',')}]`;
    case 8: return `[${Array.from({ length: Math.floor(random() * 100) }, () => JSON.stringify('Once upon a time')).join(',')}]`;
    case 9: return '{"role": "user", "content": "Hi"}';
    case 10: return '[{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]';
    case 11: return '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}';
    default: return depth < 3 && chance(0.5)
      ? `{${Array.from({ length: Math.floor(random() * 4) }, () => `${JSON.stringify(pick(FIELDS))}: ${hostileValue(depth + 1)}`).join(', ')}}`
      : `[${Array.from({ length: Math.floor(random() * 4) }, () => hostileValue(depth + 1)).join(', ')}]`;
  }
}

/** a valid body with some fields replaced, added or removed */
function mutatedBody(base: object): string {
  const fields = Object.entries(base).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  for (let i = Math.floor(random() * 3) + 1; i > 0; i--) {
    const field = `${JSON.stringify(pick(FIELDS))}: ${hostileValue()}`;
    if (chance(0.3) && fields.length) fields.splice(Math.floor(random() * fields.length), 1);
    else if (chance(0.5) && fields.length) fields[Math.floor(random() * fields.length)] = field;
    else fields.push(field);
  }
  return `{${fields.join(', ')}}`;
}

/** bytes of a body broken at random: truncated, flipped, spliced */
function brokenBytes(text: string): Buffer {
  const bytes = Buffer.from(text);
  switch (Math.floor(random() * 3)) {
    case 0: return bytes.subarray(0, Math.floor(random() * bytes.length));
    case 1: for (let i = 0; i < 4; i++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256); return bytes;
    default: return Buffer.concat([bytes, Buffer.from(hostileValue())]);
  }
}

interface Case { method: string; path: string; headers: Record<string, string>; body?: Buffer; leaveAfterMs?: number }

function hostileCase(): Case {
  const [path, base] = pick(VALID);
  const headers: Record<string, string> = { 'Content-Type': 'application/json', Authorization: 'Bearer key' };
  let body: Buffer = Buffer.from(chance(0.15) ? JSON.stringify(base) : mutatedBody(base));
  if (chance(0.15)) body = brokenBytes(body.toString());
  if (chance(0.08)) headers['Content-Type'] = pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', '', 'application/json; charset=latin1', 'APPLICATION/JSON']);
  if (chance(0.08)) headers.Authorization = pick(['', 'Bearer', 'bearer key', 'Basic a2V5', 'Bearer keyX', 'Bearer  key']);
  if (chance(0.05)) body = Buffer.alloc(70 << 10, 'a');
  const method = chance(0.06) ? pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'FOO']) : 'POST';
  const hostilePath = chance(0.06) ? pick([`${path}/`, `${path}?x=%zz`, '/v1/models/%00', '/v1/../etc/passwd', `/${'a'.repeat(5000)}`, '/v1/models/' + encodeURIComponent('"><script>')]) : path;
  return { method, path: hostilePath, headers, body: method === 'GET' || method === 'HEAD' ? undefined : body, leaveAfterMs: chance(0.1) ? Math.floor(random() * 20) : undefined };
}

/** The status the server answered, or 'left' for a client that went away first. */
function send(port: number, c: Case): Promise<number | 'left'> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: c.method, path: c.path, headers: c.headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
      res.on('error', () => resolve(c.leaveAfterMs === undefined ? res.statusCode! : 'left'));
    });
    req.on('error', (e) => (c.leaveAfterMs === undefined ? reject(new Error(`${c.method} ${c.path}: ${e.message}`)) : resolve('left')));
    if (c.leaveAfterMs !== undefined) setTimeout(() => req.destroy(), c.leaveAfterMs);
    req.end(c.body);
  });
}

/** A garbage request line or header block over a raw socket: the first line the server wrote back. */
function sendGarbage(port: number): Promise<string> {
  const lines = ['GET //[ HTTP/1.1', 'POST /v1/completions HTTP/9.9', '\x00\x01\x02', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5',
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3', 'GET /' + '%'.repeat(100) + ' HTTP/1.1',
    `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: ${'y'.repeat(20000)}`, 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz'];
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (data) => (received += data.toString('latin1')));
    socket.on('close', () => resolve(received.split('\r\n')[0]));
    socket.on('error', reject);
    socket.end(`${pick(lines)}\r\n\r\n`);
  });
}

test(`${CASES} generated hostile requests: all answered, no 5xx, the server alive, no KV block in use afterwards`, { timeout: 600_000 }, async () => {
  const port = Number(new URL(s.baseURL).port);
  const statuses = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < CASES) {
      const i = next++;
      const c = hostileCase();
      const status = i % 20 === 19 ? (await sendGarbage(port)).replace(/^HTTP\/1\.1 (\d+).*$/, '$1') : String(await send(port, c));
      assert.ok(status === 'left' || /^[1-4]\d\d$/.test(status), `case ${i} (${c.method} ${c.path} ${c.body?.subarray(0, 200)}): ${status}`);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const counted = [...statuses.values()].reduce((a, b) => a + b, 0);
  assert.equal(counted, CASES);
  // the mix reaches past validation: some requests were served, many refused for different reasons
  for (const status of ['200', '400', '401', '415']) assert.ok((statuses.get(status) ?? 0) > 0, `no ${status} in ${JSON.stringify([...statuses])}`);

  await waitFor(() => {
    const stats = s.engine.stats();
    return stats.running === 0 && stats.waiting === 0 && stats.kvBlocksUsed === 0;
  }, 'the engine to be idle with every KV block free');
  assert.equal((await fetch(`${s.baseURL}/health`, { headers: { Authorization: 'Bearer key' } })).status, 200);
  const completion = await s.client.completions.create({ model: MODEL_NAME, prompt: 'Once', max_tokens: 3 }, { headers: { Authorization: 'Bearer key' } });
  assert.equal(completion.usage?.completion_tokens, 3);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
