// POST /v1/embeddings through the official `openai` client: strings, lists, token ids, float and base64 vectors
// equal to embedTokens and within 1e-3 of llama-embedding's (bert), OpenAI-style errors; an encoder refuses to
// generate; a decoder embeds too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { Model } from '../../src/generate/model.js';
import { embedTokens } from '../../src/generate/embed.js';
import { sharedPath } from '../shared.js';
import { loadModel, MODEL_NAME, startServer, type TestServer } from './helpers.js';

const BERT = 'bert-f16';
const BERT_PATH = sharedPath('conformance', 'models', `${BERT}.gguf`);
const bert = Model.load(BERT_PATH);
const ref = JSON.parse(readFileSync(sharedPath('conformance', 'reference', `${BERT}.embd.json`), 'utf8')) as { texts: string[]; tokens: number[][]; embeddings: number[][] };

let encoder: TestServer, decoder: TestServer;
before(async () => {
  [encoder, decoder] = await Promise.all([startServer({}, {}, { path: BERT_PATH, name: BERT }), startServer()]);
});
after(async () => {
  await Promise.all([encoder.close(), decoder.close()]);
});

const maxError = (a: readonly number[], b: readonly number[]) => b.reduce((m, v, i) => Math.max(m, Math.abs(a[i] - v)), 0);
/** JSON numbers of float32 values, back as float32 */
const f32 = (values: readonly number[]) => Float32Array.from(values);

test('string and list input (base64 by the client, float on request): embedTokens\'s vectors, llama-embedding\'s within 1e-3, usage', async () => {
  const one = await encoder.client.embeddings.create({ model: BERT, input: ref.texts[0] });
  assert.equal(one.object, 'list');
  assert.equal(one.model, BERT);
  assert.deepEqual(one.data.map((d) => [d.object, d.index]), [['embedding', 0]]);
  assert.deepEqual(f32(one.data[0].embedding), embedTokens(bert, ref.tokens[0]));
  assert.deepEqual(one.usage, { prompt_tokens: ref.tokens[0].length, total_tokens: ref.tokens[0].length });

  const all = await encoder.client.embeddings.create({ model: BERT, input: ref.texts, encoding_format: 'float', user: 'someone' });
  assert.deepEqual(all.data.map((d) => d.index), [0, 1, 2]);
  all.data.forEach((d, i) => {
    assert.deepEqual(f32(d.embedding), embedTokens(bert, ref.tokens[i]), `input ${i}`);
    assert.ok(maxError(d.embedding, ref.embeddings[i]) <= 1e-3, `input ${i}: ${maxError(d.embedding, ref.embeddings[i])}`);
  });
  const total = ref.tokens.reduce((sum, t) => sum + t.length, 0);
  assert.deepEqual(all.usage, { prompt_tokens: total, total_tokens: total });
});

test('token-id input (one array, or one per input); the dimensions the model has are accepted', async () => {
  const one = await encoder.client.embeddings.create({ model: BERT, input: ref.tokens[1], dimensions: bert.hparams.embeddingLength });
  assert.deepEqual(f32(one.data[0].embedding), embedTokens(bert, ref.tokens[1]));
  const many = await encoder.client.embeddings.create({ model: BERT, input: ref.tokens });
  many.data.forEach((d, i) => assert.deepEqual(f32(d.embedding), embedTokens(bert, ref.tokens[i])));
});

test('base64: the little-endian float32 bytes of the vector', async () => {
  const res = await fetch(`${encoder.baseURL}/v1/embeddings`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ input: ref.texts[2], encoding_format: 'base64' }),
  });
  assert.equal(res.status, 200);
  const body = await res.json() as { data: { embedding: string }[] };
  const bytes = Buffer.from(body.data[0].embedding, 'base64');
  const expected = embedTokens(bert, ref.tokens[2]);
  assert.equal(bytes.length, expected.length * 4);
  assert.deepEqual(Float32Array.from({ length: expected.length }, (_, i) => bytes.readFloatLE(i * 4)), expected);
});

/** the request fails with this status, param and code */
async function assertRejected(body: Record<string, unknown>, status: number, param: string | null, code: string | null = null, message?: RegExp): Promise<void> {
  await assert.rejects(encoder.client.embeddings.create({ model: BERT, input: 'x', ...body } as OpenAI.EmbeddingCreateParams), (e: unknown) => {
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.deepEqual([e.status, e.param, e.code], [status, param, code], JSON.stringify(e.error));
    if (message) assert.match(e.message, message);
    return true;
  });
}

test('errors: empty, wrong types, too long for the context, dimensions, unknown model, parameter or format', async () => {
  await assertRejected({ input: '' }, 400, 'input', null, /empty string/);
  await assertRejected({ input: [] }, 400, 'input', null, /must not be empty/);
  await assertRejected({ input: [[]] }, 400, 'input');
  await assertRejected({ input: ['a', 1] }, 400, 'input', null, /a string, an array of strings, an array of token ids/);
  await assertRejected({ input: { text: 'a' } }, 400, 'input');
  await assertRejected({ input: [1.5] }, 400, 'input');
  await assertRejected({ input: [bert.vocabSize] }, 400, 'input', null, /outside the vocabulary/);
  await assertRejected({ input: new Array(2049).fill('a') }, 400, 'input', null, /at most 2048 items, got 2049/);
  await assertRejected({ input: 'word '.repeat(300) }, 400, 'input', 'context_length_exceeded', /input 0 has 302 tokens, but the context holds 256/);
  await assertRejected({ input: ['fine', 'word '.repeat(300)] }, 400, 'input', 'context_length_exceeded', /input 1 has/);
  await assertRejected({ dimensions: 32 }, 400, 'dimensions', null, /64 dimensions/);
  await assertRejected({ encoding_format: 'int8' }, 400, 'encoding_format');
  await assertRejected({ model: 'text-embedding-3-small' }, 404, 'model', 'model_not_found');
  await assertRejected({ truncate: true }, 400, 'truncate', null, /unrecognized parameter/);
  assert.equal(encoder.engine.stats().kvBlocksUsed, 0);
  // still serving
  assert.equal((await encoder.client.embeddings.create({ model: BERT, input: 'x' })).data.length, 1);
});

test('an encoder is listed but refuses completions and chat with a clear 400', async () => {
  assert.deepEqual((await encoder.client.models.list()).data.map((m) => m.id), [BERT]);
  for (const call of [
    () => encoder.client.completions.create({ model: BERT, prompt: 'Hello', max_tokens: 4 }),
    () => encoder.client.chat.completions.create({ model: BERT, messages: [{ role: 'user', content: 'Hello' }] }),
  ]) {
    await assert.rejects(call, (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.match(e.message, /only embeds .*use \/v1\/embeddings/);
      return true;
    });
  }
});

test('a decoder embeds too (last-token pooling, normalized)', async () => {
  const model = loadModel();
  const texts = ['Once upon a time', 'The little dog'];
  const result = await decoder.client.embeddings.create({ model: MODEL_NAME, input: texts });
  result.data.forEach((d, i) => {
    assert.deepEqual(f32(d.embedding), embedTokens(model, model.tokenizer.encode(texts[i], { addSpecial: true, parseSpecial: true }), { pooling: 'last' }));
  });
  assert.ok(Math.abs(Math.hypot(...result.data[0].embedding) - 1) < 1e-6);
});
