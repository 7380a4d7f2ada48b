// The OpenAI-compatible API through the official `openai` client: completions and chat, streamed and not,
// n > 1, stop strings, log-probabilities and usage, against `kiln run` and the library's own generation.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type OpenAI from 'openai';
import { promisify } from 'node:util';
import { evaluate, generate } from '../../src/generate/generate.js';
import { chatPromptTokens, ChatTemplate } from '../../src/generate/chat-template.js';
import { logSoftmax } from '../../src/generate/sampler.js';
import { loadModel, MODEL_NAME, MODEL_PATH, startServer, type TestServer } from './helpers.js';

const PROMPT = 'Once upon a time';
const OTHER_PROMPT = 'The little dog';
const N = 32;
type RunJson = { prompt_tokens: number[]; tokens: number[]; text: string };
let s: TestServer;
/** `kiln run`'s greedy output of N tokens for PROMPT and OTHER_PROMPT */
let reference: RunJson, otherReference: RunJson;

before(async () => {
  [s, reference, otherReference] = await Promise.all([startServer(), kilnRunGreedy(PROMPT), kilnRunGreedy(OTHER_PROMPT)]);
});
after(async () => {
  await s.close();
});

/** `kiln run MODEL -p PROMPT -n N --temp 0 --json`, run as the CLI */
async function kilnRunGreedy(prompt: string): Promise<RunJson> {
  const args = ['--import', 'tsx', 'src/cli/run-dev.ts', 'run', MODEL_PATH, '-p', prompt, '-n', String(N), '--temp', '0', '--json'];
  const { stdout } = await promisify(execFile)(process.execPath, args, { encoding: 'utf8' });
  return JSON.parse(stdout);
}

test('GET /v1/models lists the served model', async () => {
  const models = await s.client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL_NAME]);
  assert.equal((await s.client.models.retrieve(MODEL_NAME)).id, MODEL_NAME);
});

test('greedy completion equals `kiln run` text, streamed or not, with usage', async () => {
  const completion = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: N, temperature: 0 });
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].text, reference.text);
  assert.equal(completion.choices[0].finish_reason, reference.tokens.length === N ? 'length' : 'stop');
  assert.deepEqual(
    [completion.usage?.prompt_tokens, completion.usage?.completion_tokens, completion.usage?.total_tokens],
    [reference.prompt_tokens.length, reference.tokens.length, reference.prompt_tokens.length + reference.tokens.length],
  );

  const stream = await s.client.completions.create({
    model: MODEL_NAME, prompt: PROMPT, max_tokens: N, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '', finish: string | null = null, usage;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      assert.equal(choice.index, 0);
      text += choice.text;
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.equal(text, reference.text);
  assert.equal(finish, completion.choices[0].finish_reason);
  assert.deepEqual(usage, completion.usage);
});

test('prompts as token ids and as a list run one choice each', async () => {
  const byIds = await s.client.completions.create({ model: MODEL_NAME, prompt: reference.prompt_tokens, max_tokens: N, temperature: 0 });
  assert.equal(byIds.choices[0].text, reference.text);

  const both = await s.client.completions.create({ model: MODEL_NAME, prompt: [PROMPT, OTHER_PROMPT], max_tokens: N, temperature: 0 });
  assert.deepEqual(both.choices.map((c) => c.index), [0, 1]);
  assert.equal(both.choices[0].text, reference.text);
  assert.equal(both.choices[1].text, otherReference.text);
  assert.equal(both.usage?.prompt_tokens, reference.prompt_tokens.length + otherReference.prompt_tokens.length);
});

test('chat completion: the chat template\'s prompt, greedy text equal to generate(), streamed or not', async () => {
  const model = loadModel();
  const messages = [
    { role: 'system' as const, content: 'You tell short stories.' },
    { role: 'user' as const, content: 'Tell me about a cat.' },
  ];
  const tok = model.tokenizer;
  const template = ChatTemplate.fromMetadata(model.file.metadata, tok.tokenText(tok.bosId!), tok.tokenText(tok.eosId!));
  const prompt = chatPromptTokens(tok, template.render(messages));
  const reference = generate(model, prompt, { maxTokens: 24, sampling: { temperature: 0 } });

  const chat = await s.client.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 24, temperature: 0 });
  assert.equal(chat.object, 'chat.completion');
  assert.equal(chat.choices[0].message.role, 'assistant');
  assert.equal(chat.choices[0].message.content, reference.text);
  assert.equal(chat.usage?.prompt_tokens, prompt.length);
  assert.equal(chat.usage?.completion_tokens, reference.tokens.length);

  const stream = await s.client.chat.completions.create({ model: MODEL_NAME, messages, max_completion_tokens: 24, temperature: 0, stream: true });
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), reference.text);
  assert.equal(chunks.at(-1)?.choices[0].finish_reason, chat.choices[0].finish_reason);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
});

test('n > 1: seeded choices, completion 0 equal to the n = 1 result, streamed per index', async () => {
  const params = { model: MODEL_NAME, prompt: PROMPT, max_tokens: 16, temperature: 1, seed: 7 };
  const three = await s.client.completions.create({ ...params, n: 3 });
  assert.deepEqual(three.choices.map((c) => c.index), [0, 1, 2]);
  const one = await s.client.completions.create(params);
  assert.equal(three.choices[0].text, one.choices[0].text);
  assert.equal(new Set(three.choices.map((c) => c.text)).size, 3, 'three seeds gave three different stories');
  assert.ok(three.usage!.completion_tokens > one.usage!.completion_tokens);

  const stream = await s.client.chat.completions.create({
    model: MODEL_NAME, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 1, seed: 3, n: 2, stream: true,
  });
  const texts = ['', ''];
  const finished = [false, false];
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      texts[choice.index] += choice.delta.content ?? '';
      if (choice.finish_reason) finished[choice.index] = true;
    }
  }
  assert.deepEqual(finished, [true, true]);
  assert.ok(texts.every((t) => t.length > 0));
});

test('stop strings end the text before the match (string or array, streamed or not)', async () => {
  const cut = reference.text.indexOf('Lily');
  assert.ok(cut > 0, 'the reference story names Lily');
  const expected = reference.text.slice(0, cut);
  const single = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: N, temperature: 0, stop: 'Lily' });
  assert.equal(single.choices[0].text, expected);
  assert.equal(single.choices[0].finish_reason, 'stop');
  const list = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: N, temperature: 0, stop: ['zebra', 'Lily'], stream: true });
  let text = '', finish;
  for await (const chunk of list) {
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, expected);
  assert.equal(finish, 'stop');
});

test('completion logprobs: legacy format, values equal to the model\'s log-softmax', async () => {
  const model = loadModel();
  const completion = await s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 3 });
  const choice = completion.choices[0];
  const lp = choice.logprobs!;
  assert.equal(lp.tokens!.length, 8);
  assert.equal(lp.tokens!.join(''), choice.text);
  assert.deepEqual(lp.text_offset, lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join('').length));

  // teacher-forced reference: log-softmax of the logits after each prefix
  const prompt = reference.prompt_tokens;
  const generated = reference.tokens.slice(0, 8);
  const logits = evaluate(model, [...prompt, ...generated]);
  const V = model.vocabSize;
  generated.forEach((token, i) => {
    const row = logSoftmax(logits.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V));
    assert.ok(Math.abs(lp.token_logprobs![i] - row[token]) < 1e-4, `token ${i}: ${lp.token_logprobs![i]} vs ${row[token]}`);
    const top = Object.values(lp.top_logprobs![i]);
    assert.ok(top.length >= 1 && top.length <= 3);
    // greedy: the chosen token is the most likely one (the two values may be rounded to float32 apart)
    assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs![i]) < 1e-6, `token ${i}: top ${Math.max(...top)}`);
  });
});

test('chat logprobs: content entries with bytes and top_logprobs, streamed or not', async () => {
  const messages = [{ role: 'user' as const, content: 'Hi' }];
  const chat = await s.client.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 });
  const content = chat.choices[0].logprobs!.content!;
  assert.equal(content.length, chat.usage!.completion_tokens);
  assert.equal(content.map((c) => c.token).join(''), chat.choices[0].message.content);
  for (const entry of content) {
    assert.ok(entry.logprob <= 0);
    assert.deepEqual(entry.bytes, [...Buffer.from(entry.token)]);
    assert.equal(entry.top_logprobs.length, 2);
    assert.equal(entry.top_logprobs[0].token, entry.token);
  }
  const noTop = await s.client.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 6, temperature: 0, logprobs: true });
  assert.deepEqual(noTop.choices[0].logprobs!.content!.map((c) => [c.token, c.logprob, c.top_logprobs.length]), content.map((c) => [c.token, c.logprob, 0]));

  const stream = await s.client.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2, stream: true });
  const streamed: OpenAI.Chat.Completions.ChatCompletionTokenLogprob[] = [];
  for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
  assert.deepEqual(streamed, content);
});

test('concurrent requests, batched by the engine, each get the answer they get alone', async () => {
  const prompts = [PROMPT, OTHER_PROMPT, 'Tim and Sue', 'The sun was'];
  const ask = (prompt: string) => s.client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 20, temperature: 0 }).then((c) => c.choices[0].text);
  const together = await Promise.all(prompts.map(ask));
  const alone = [];
  for (const prompt of prompts) alone.push(await ask(prompt));
  assert.deepEqual(together, alone);
  assert.equal(together[0], reference.text.slice(0, together[0].length));
});

test('sampling parameters reach the sampler: top_k 1, top_p 0 and min_p 1 are greedy at any temperature; penalties change the text', async () => {
  const ask = (extra: object) =>
    s.client.completions.create({ model: MODEL_NAME, prompt: PROMPT, max_tokens: N, temperature: 1.5, seed: 11, ...extra } as OpenAI.CompletionCreateParamsNonStreaming)
      .then((c) => c.choices[0].text);
  assert.notEqual(await ask({}), reference.text, 'temperature 1.5 alone is not greedy');
  for (const extra of [{ top_k: 1 }, { top_p: 0 }, { min_p: 1 }]) assert.equal(await ask(extra), reference.text, JSON.stringify(extra));
  for (const extra of [{ frequency_penalty: 2 }, { presence_penalty: 2 }, { repetition_penalty: 1.5 }]) {
    assert.notEqual(await ask({ ...extra, temperature: 0 }), reference.text, JSON.stringify(extra));
  }
});

test('a repeated prompt reports its prefix-cached tokens in usage and in /metrics', async () => {
  const prompt = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.';
  const ask = () => s.client.completions.create({ model: MODEL_NAME, prompt, max_tokens: 4, temperature: 0 });
  const first = await ask();
  const second = await ask();
  assert.equal(first.choices[0].text, second.choices[0].text);
  const cached = (second.usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details!.cached_tokens;
  assert.ok(cached > 0 && cached < second.usage!.prompt_tokens, `cached ${cached} of ${second.usage!.prompt_tokens}`);
  const metrics = await fetch(`${s.baseURL}/metrics`).then((r) => r.text());
  const rate = Number(/^kiln_prefix_cache_hit_rate (\S+)$/m.exec(metrics)?.[1]);
  assert.ok(rate > 0 && rate <= 1, `hit rate ${rate}`);
});
