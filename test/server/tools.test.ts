// Tools through the official client against a real server: tool_choice "required" and a named function return
// tool_calls whose arguments validate against the tool's schema (streamed too), on a template without tool support
// (kiln's own tool prompt) and on a Hermes template; "auto" without tool support says so; tool messages are taken.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import OpenAI from 'openai';
import { LLMEngine } from '../../src/engine/engine.js';
import { ChatTemplate } from '../../src/generate/chat-template.js';
import { KilnServer } from '../../src/server/server.js';
import { servedModel } from '../../src/server/openai-api.js';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { loadModel, MODEL_NAME, MODEL_PATH, startServer, type TestServer } from './helpers.js';
import { HERMES_TEMPLATE } from '../helpers/templates.js';

const Weather = z.object({ city: z.string(), unit: z.enum(['c', 'f']) }).strict();
const Add = z.object({ a: z.number().int(), b: z.number().int() }).strict();
const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: z.toJSONSchema(Weather) as Record<string, unknown> } },
  { type: 'function', function: { name: 'add', description: 'a + b', parameters: z.toJSONSchema(Add) as Record<string, unknown> } },
];
const SCHEMAS: Record<string, z.ZodType> = { get_weather: Weather, add: Add };
const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Oslo?' }];

let plain: TestServer;
let hermes: { client: OpenAI; close(): Promise<void> };
before(async () => {
  plain = await startServer({ maxModelLength: 1536 });
  const model = loadModel();
  const engine = new LLMEngine(model, { maxModelLength: 1536 });
  const server = new KilnServer({ engine, model: { ...servedModel(readGGUFHeader(MODEL_PATH), MODEL_NAME), chatTemplate: new ChatTemplate(HERMES_TEMPLATE, '', '') } });
  const { port } = await server.listen(0);
  hermes = { client: new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0, timeout: 600_000 }), async close() { await server.close(); await engine.close(); } };
});
after(async () => { await plain.close(); await hermes.close(); });

function assertValidCalls(calls: { function: { name: string; arguments: string } }[] | undefined, names: string[]): void {
  assert.ok(calls && calls.length > 0, 'no tool calls');
  for (const call of calls) {
    assert.ok(names.includes(call.function.name), call.function.name);
    const parsed = SCHEMAS[call.function.name].safeParse(JSON.parse(call.function.arguments));
    assert.ok(parsed.success, `${call.function.name}(${call.function.arguments})`);
  }
}

for (const [label, get] of [['no tool support (kiln\'s prompt)', () => plain.client], ['a Hermes template', () => hermes.client]] as const) {
  test(`${label}: required and named calls validate against the tool schema, streamed or not`, async () => {
    const client = get();
    for (let seed = 0; seed < 3; seed++) {
      const required = await client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: 'required', max_tokens: 160, seed });
      assert.equal(required.choices[0].finish_reason, 'tool_calls');
      assertValidCalls(required.choices[0].message.tool_calls as never, ['get_weather', 'add']);
    }
    const named = await client.chat.completions.create({
      model: MODEL_NAME, messages, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'add' } }, parallel_tool_calls: false, max_tokens: 160, seed: 7,
    });
    assert.equal(named.choices[0].message.tool_calls?.length, 1);
    assertValidCalls(named.choices[0].message.tool_calls as never, ['add']);

    const stream = client.chat.completions.stream({ model: MODEL_NAME, messages, tools: TOOLS, tool_choice: 'required', max_tokens: 160, seed: 3 });
    const final = await stream.finalChatCompletion();
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assertValidCalls(final.choices[0].message.tool_calls as never, ['get_weather', 'add']);
  });
}

test('auto: refused clearly without tool support; answered (text or calls) with a Hermes template', async () => {
  const refused = await fetch(`${plain.baseURL}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ messages, tools: TOOLS, tool_choice: 'auto', max_tokens: 8 }),
  });
  assert.equal(refused.status, 400);
  const error = (await refused.json() as { error: { param: string; code: string; message: string } }).error;
  assert.equal(error.param, 'tool_choice');
  assert.equal(error.code, 'tools_not_supported');
  assert.match(error.message, /no tool support/);
  const answer = await hermes.client.chat.completions.create({ model: MODEL_NAME, messages, tools: TOOLS, max_tokens: 24, seed: 1 });
  const choice = answer.choices[0];
  assert.ok(choice.message.tool_calls?.length || typeof choice.message.content === 'string');
});

test('a conversation with an assistant\'s tool_calls and a tool message runs; bad tool fields are 400s', async () => {
  const conversation: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
    { role: 'user', content: 'Add 1 and 2' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a":1,"b":2}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '3' },
  ];
  for (const client of [plain.client, hermes.client]) {
    const answer = await client.chat.completions.create({ model: MODEL_NAME, messages: conversation, tools: TOOLS, tool_choice: 'none', max_tokens: 8 });
    assert.equal(typeof answer.choices[0].message.content, 'string');
  }
  const bad: [object, string][] = [
    [{ tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools'], [{ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice'],
    [{ tool_choice: 'required' }, 'tool_choice'], [{ tools: TOOLS, tool_choice: 'required', response_format: { type: 'json_object' } }, 'tool_choice'],
    [{ messages: [{ role: 'tool', content: '3' }] }, 'messages[0].tool_call_id'], [{ tools: TOOLS, parallel_tool_calls: 'yes' }, 'parallel_tool_calls'],
  ];
  for (const [extra, param] of bad) {
    const res = await fetch(`${plain.baseURL}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ messages, max_tokens: 4, ...extra }),
    });
    assert.equal(res.status, 400, JSON.stringify(extra));
    assert.equal((await res.json() as { error: { param: string } }).error.param, param, JSON.stringify(extra));
  }
});
