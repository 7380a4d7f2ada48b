// Tool-call formats by template family: detection, parsing, the streamed split of content and calls, and the
// grammar of a forced call (its sentences parse back into calls whose arguments validate).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileGrammar } from '../../src/grammar/gbnf.js';
import { GrammarAutomaton } from '../../src/grammar/automaton.js';
import { grammarAccepts } from '../../src/grammar/vocab-mask.js';
import { ChatTemplate } from '../../src/generate/chat-template.js';
import { HERMES_TEMPLATE } from '../helpers/templates.js';
import { parseToolCalls, templateMessages, templateTools, toolCallGrammar, toolFamily, ToolCallStream, type ToolSpec } from '../../src/generate/tool-calls.js';


const WEATHER: ToolSpec = {
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'], additionalProperties: false },
};
const ADD: ToolSpec = { name: 'add', parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'], additionalProperties: false } };

test('families are told by their templates; a template without tools has none', () => {
  assert.equal(toolFamily(HERMES_TEMPLATE), 'hermes');
  assert.equal(toolFamily('{{ bos_token }}{% for m in messages %}[INST]{{ m.content }}[/INST]{% endfor %}{% if tools %}[AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS]'), 'mistral');
  assert.equal(toolFamily('<|start_header_id|>{% if tools %}Environment: ipython{% endif %}<|python_tag|>'), 'llama3');
  assert.equal(toolFamily('{% if tools %}{{ tools | tojson }}{% endif %}{{ messages[0].content }}'), 'generic');
  assert.equal(toolFamily('{% for m in messages %}{{ m.content }}{% endfor %}'), null);
});

test('calls parse out of each family\'s format; text that is no call stays content', () => {
  const hermes = parseToolCalls('hermes', 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n</tool_call>\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>');
  assert.deepEqual(hermes, { content: 'Let me check.', calls: [{ name: 'get_weather', arguments: '{"city":"Oslo","unit":"c"}' }, { name: 'add', arguments: '{"a":1,"b":2}' }] });
  assert.deepEqual(parseToolCalls('llama3', '<|python_tag|>{"name": "add", "parameters": {"a": 1, "b": 2}}; {"name": "add", "parameters": {"a": 3, "b": 4}}').calls.map((c) => c.arguments), ['{"a":1,"b":2}', '{"a":3,"b":4}']);
  assert.deepEqual(parseToolCalls('mistral', '[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2}}]').calls, [{ name: 'add', arguments: '{"a":1,"b":2}' }]);
  assert.deepEqual(parseToolCalls('generic', ' [{"name": "add", "arguments": {"a": 1, "b": 2}}] ').calls.length, 1);
  for (const family of ['hermes', 'llama3', 'mistral', 'generic'] as const) {
    assert.deepEqual(parseToolCalls(family, 'The answer is 3.'), { content: 'The answer is 3.', calls: [] });
    assert.deepEqual(parseToolCalls(family, '{"not": "a call"}').calls, []);
  }
});

test('a stream shows content at once and holds what may be a call', () => {
  const hermes = new ToolCallStream('hermes', false);
  assert.equal(['Sure', ', checking <tool', '_call>\n{"name": "add", ', '"arguments": {"a": 1, "b": 2}}\n</tool_call>'].map((t) => hermes.push(t)).join(''), 'Sure, checking ');
  assert.deepEqual(hermes.finish().calls, [{ name: 'add', arguments: '{"a":1,"b":2}' }]);
  const prose = new ToolCallStream('generic', false);
  assert.equal(prose.push(' Hel') + prose.push('lo'), ' Hello');
  assert.deepEqual(prose.finish(), { content: '', calls: [] });
  const json = new ToolCallStream('generic', false);
  assert.equal(json.push('{"name": "add", "arguments": ') + json.push('{"a": 1, "b": 2}}'), '');
  assert.equal(json.finish().calls[0].name, 'add');
});

test('forced-call grammars: each family\'s sentences parse back into calls; other tools and bad arguments are refused', () => {
  const sentences = {
    hermes: ['<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": -2}}\n</tool_call>', '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "f"}}\n</tool_call>\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'],
    llama3: ['{"name": "add", "parameters": {"a": 1, "b": 2}}', '{"name": "add", "parameters": {"a": 1, "b": 2}}; {"name": "add", "parameters": {"a": 3, "b": 4}}'],
    mistral: ['[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2}}]', '[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "get_weather", "arguments": {"city": "x", "unit": "c"}}]'],
    generic: ['{"name": "add", "arguments": {"a": 1, "b": 2}}', '[{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "add", "arguments": {"a": 5, "b": 6}}]'],
  };
  for (const [family, [single, parallel]] of Object.entries(sentences) as [keyof typeof sentences, string[]][]) {
    const serial = new GrammarAutomaton(compileGrammar(toolCallGrammar(family, [WEATHER, ADD], false)));
    const both = new GrammarAutomaton(compileGrammar(toolCallGrammar(family, [WEATHER, ADD], true)));
    assert.ok(grammarAccepts(serial, single) && grammarAccepts(both, single), `${family} single`);
    assert.ok(grammarAccepts(both, parallel) && !grammarAccepts(serial, parallel), `${family} parallel`);
    assert.ok(parseToolCalls(family, parallel).calls.length === 2, `${family} parses`);
    assert.ok(!grammarAccepts(serial, single.replace('"b": ', '"c": ').replace('"unit": "f"', '"unit": "k"')), `${family} bad arguments`);
    const onlyAdd = new GrammarAutomaton(compileGrammar(toolCallGrammar(family, [ADD], false)));
    assert.ok(!grammarAccepts(onlyAdd, sentences[family][1].includes('get_weather') ? sentences[family][1] : single.replace('add', 'get_weather')), `${family} named tool only`);
  }
});

test('the template sees the tools and past calls with their arguments as objects; without tool support kiln writes its own tool prompt', () => {
  const hermes = new ChatTemplate(HERMES_TEMPLATE, '', '');
  const messages = [
    { role: 'user', content: 'Add 1 and 2' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', name: 'add', arguments: '{"a":1,"b":2}' }] },
    { role: 'tool', content: '3', tool_call_id: 'call_1' },
  ];
  const text = hermes.render(templateMessages(messages, [ADD], true), true, templateTools([ADD]));
  assert.match(text, /<tools>\s*\{"type": "function", "function": \{"name": "add"/);
  assert.match(text, /<tool_call>\n\{"name": "add", "arguments": \{"a": 1, "b": 2\}\}\n<\/tool_call>/);
  assert.match(text, /<tool_response>\n3\n<\/tool_response>/);
  const own = templateMessages(messages, [ADD], false);
  assert.equal(own[0].role, 'system');
  assert.match(own[0].content, /"name":"add"/);
  assert.equal(own[2].content, '{"name": "add", "arguments": {"a":1,"b":2}}');
});
