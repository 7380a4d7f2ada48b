// The agent loop on a scripted model (planned replies: the loop's logic, bounds, memory and voting), the built-in
// tools, and one run on a real conformance model with forced tool calls, through the API and `kiln agent`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentTool } from '../../src/agent/agent.js';
import { LocalChatModel } from '../../src/agent/local-model.js';
import { calculatorTool, evaluate, fetchKilnTool, readFileTool } from '../../src/agent/builtin-tools.js';
import { Model } from '../../src/generate/model.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';
import { ScriptedModel } from '../helpers/scripted-model.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-agent-'));
mkdirSync(join(dir, 'notes'));
writeFileSync(join(dir, 'notes', 'plan.txt'), 'buy milk');
writeFileSync(join(tmpdir(), 'kiln-agent-secret.txt'), 'secret');
symlinkSync(join(tmpdir(), 'kiln-agent-secret.txt'), join(dir, 'link.txt'));

test('the loop: calls, observes, answers; every step reported; tool results and call ids reach the model', async () => {
  const model = new ScriptedModel([
    { content: 'I will compute.', call: [['calculator', { expression: '2 * (3 + 4) ^ 2' }], ['read_file', { path: 'notes/plan.txt' }]] },
    { content: '', call: [['calculator', { expression: '1 / ' }]] },
    { content: 'It is 98; the plan says buy milk.' },
  ]);
  const seen: number[] = [];
  const agent = new Agent({ model, tools: [calculatorTool(), readFileTool(dir)], system: 'Be brief.', onStep: (s) => seen.push(s.index) });
  const result = await agent.run('Compute and read my plan.');
  assert.equal(result.stopReason, 'answer');
  assert.equal(result.answer, 'It is 98; the plan says buy milk.');
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(result.steps[0].calls.map((c) => [c.result, c.ok]), [['98', true], ['buy milk', true]]);
  assert.equal(result.steps[1].calls[0].ok, false);
  assert.match(result.steps[1].calls[0].result, /^error: the expression ends too soon/);
  // the third request saw system, task, both exchanges, with tool messages answering their calls
  const third = model.requests[2].messages;
  assert.deepEqual(third.map((m) => m.role), ['system', 'user', 'assistant', 'tool', 'tool', 'assistant', 'tool']);
  assert.equal(third[3].tool_call_id, third[2].tool_calls![0].id);
  assert.equal(third[4].content, 'buy milk');
  assert.deepEqual(model.requests.map((r) => r.toolChoice), ['auto', 'auto', 'auto']);
});

test('bounds: max steps, max total tokens, forced tool steps, the tool timeout, unknown tools and bad arguments', async () => {
  const loop = () => ({ content: 'again', call: [['calculator', { expression: '1+1' }]] as [string, object][] });
  const stepped = await new Agent({ model: new ScriptedModel([loop(), loop(), loop(), loop()]), tools: [calculatorTool()], maxSteps: 3 }).run('loop');
  assert.equal(stepped.stopReason, 'max_steps');
  assert.equal(stepped.steps.length, 3);
  const spent = await new Agent({ model: new ScriptedModel([{ ...loop(), tokens: 30 }, { ...loop(), tokens: 30 }]), tools: [calculatorTool()], maxTokens: 30, maxTotalTokens: 50 }).run('x');
  assert.equal(spent.stopReason, 'max_tokens');
  assert.equal(spent.steps.length, 2);

  const forced = new ScriptedModel([loop(), loop(), { content: 'done' }]);
  await new Agent({ model: forced, tools: [calculatorTool()], forceToolSteps: 2 }).run('x');
  assert.deepEqual(forced.requests.map((r) => r.toolChoice), ['required', 'required', 'auto']);

  const hang: AgentTool = { name: 'hang', description: 'never returns', parameters: { type: 'object', properties: {} }, run: () => new Promise(() => {}) };
  const slow = await new Agent({
    model: new ScriptedModel([{ call: [['hang', {}], ['nope', {}]] }, { call: [['calculator', {}]] }, { content: 'gave up' }]), tools: [hang, calculatorTool()], toolTimeoutMs: 50,
  }).run('x');
  assert.deepEqual(slow.steps[0].calls.map((c) => c.result), ['error: hang timed out after 50 ms', 'error: there is no tool "nope"']);
  assert.match(slow.steps[1].calls[0].result, /expression must be a string/);
  assert.equal(slow.answer, 'gave up');
});

test('memory: the oldest exchanges go when the conversation outgrows the context; system and task stay', async () => {
  const long = (i: number) => ({ content: `thinking ${i} `.repeat(40), call: [['calculator', { expression: `${i}+${i}` }]] as [string, object][] });
  const model = new ScriptedModel([long(1), long(2), long(3), long(4), { content: 'done' }], 400);
  await new Agent({ model, tools: [calculatorTool()], system: 'sys', maxTokens: 100 }).run('the task');
  const last = model.requests.at(-1)!.messages;
  assert.deepEqual(last.slice(0, 2).map((m) => m.content), ['sys', 'the task']);
  assert.match(last[2].content, /^\[\d+ earlier messages were dropped to fit the context\]$/);
  assert.ok(model.measure(last) + 100 <= 400);
  assert.equal(last.at(-1)!.content, '8'); // the newest observation is kept
  assert.ok(last.every((m, i) => m.role !== 'tool' || last[i - 1].role === 'tool' || last[i - 1].tool_calls), 'no tool message without its call');
});

test('self-consistency: the most common of n sampled answers wins', async () => {
  const model = new ScriptedModel([{ content: 'A' }, { content: 'B' }, { content: ' B ' }, { content: 'A' }, { content: 'B' }]);
  const result = await new Agent({ model, tools: [], selfConsistency: 5, seed: 1 }).run('pick');
  assert.equal(result.answer, 'B');
  assert.deepEqual(result.votes, { answers: ['A', 'B', ' B ', 'A', 'B'], agreeing: 3 });
  assert.equal(new Set(model.requests.map((r) => r.seed)).size, 5);
});

test('built-in tools: the calculator parses (never evals); read_file stays in its folder; fetch_kiln only reaches a local server', async () => {
  assert.equal(evaluate('-2^2 + sqrt(16) * max(1, 3) % 5'), -2);
  for (const bad of ['process.exit(1)', '2 +', '(1', '1 2', 'constructor']) assert.throws(() => evaluate(bad), Error, bad);
  const read = readFileTool(dir);
  assert.equal(await read.run({ path: 'notes/plan.txt' }, { signal: new AbortController().signal }), 'buy milk');
  for (const path of ['../kiln-agent-secret.txt', '/etc/passwd', 'link.txt', 'notes', 'missing.txt']) {
    assert.throws(() => read.run({ path }, { signal: new AbortController().signal }), Error, path);
  }
  assert.throws(() => fetchKilnTool('http://example.com'), /local kiln server/);
  await assert.rejects(async () => fetchKilnTool('http://127.0.0.1:9').run({ path: 'http://example.com/x', body: null }, { signal: new AbortController().signal }), /start with \//);
});

// -------------------------------------------------------------------------------------------------------------
// a real model

const KQ = sharedPath('conformance', 'models', 'kq-f32.gguf');

test('end to end on a real conformance model (kq-f32, random weights): forced calls validate and run, the loop ends in bounds', async () => {
  const model = new LocalChatModel(Model.load(KQ), { contextLength: 2048 });
  try {
    const steps: number[] = [];
    const result = await new Agent({
      model, tools: [calculatorTool(), readFileTool(dir)], forceToolSteps: 2, maxSteps: 3, maxTokens: 96, seed: 3, onStep: (s) => steps.push(s.calls.length),
    }).run('What is 6 times 7? Then read notes/plan.txt.');
    assert.ok(result.steps.length >= 2 && result.steps.length <= 3);
    for (const step of result.steps.slice(0, 2)) {
      assert.ok(step.calls.length >= 1, 'a forced step calls a tool');
      for (const { call } of step.calls) {
        assert.ok(['calculator', 'read_file'].includes(call.name));
        const args = JSON.parse(call.arguments);
        assert.equal(typeof (args.expression ?? args.path), 'string', call.arguments);
      }
    }
    assert.ok(['answer', 'max_steps'].includes(result.stopReason));
  } finally {
    await model.close();
  }
});

test('kiln agent --verbose shows each step and the tool results', async () => {
  const run = await kiln('agent', KQ, '-p', 'Compute 2+2', '--force-tools', '1', '--max-steps', '2', '--max-tokens', '64', '--seed', '5', '--ctx', '1024', '-v', '--json');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /^step 1 \(\d+ tokens\)/m);
  assert.match(run.stderr, /^ {2}calculator\(\{"expression":.*\) → /m);
  assert.match(run.stderr, /^stopped: (answer|max_steps) after [12] step\(s\)$/m);
  const out = JSON.parse(run.stdout);
  assert.equal(out.steps[0].calls[0].call.name, 'calculator');
  assert.equal((await kiln('agent', KQ, '-p', 'x', '--tools', 'shell')).status, 2);
});
