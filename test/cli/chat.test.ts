// `kiln chat` on the default model with piped input: every line is answered (the conversation carried from turn
// to turn), the oldest turns are dropped when the conversation outgrows the context (said once), a message too long
// for the context on its own gets one clear line, and the chat exits 0 at the end of its input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Model } from '../../src/generate/model.js';
import { generate } from '../../src/generate/generate.js';
import { ChatTemplate, chatPromptTokens, type ChatMessage } from '../../src/generate/chat-template.js';
import { defaultModelPath } from '../../src/cli/default-model.js';
import { fitConversation } from '../../src/cli/commands/chat.js';

const model = Model.load(defaultModelPath());
const CONTEXT = model.hparams.contextLength; // 256
const tok = model.tokenizer;
const template = ChatTemplate.forModel(model.file.metadata, tok);
const render = (messages: ChatMessage[]) => chatPromptTokens(tok, template.render(messages));
const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });

interface Finished { code: number | null; stdout: string; stderr: string }

/** Runs a command with `input` piped to its stdin until it exits. */
function pipeTo(command: string, args: string[], input: string): Promise<Finished> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const kilnChat = (args: string[], input: string) => pipeTo(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', 'chat', ...args], input);

/** The answer (at most n tokens) to a conversation, as kiln chat generates it (greedy, or sampled from a seed). */
const answer = (messages: ChatMessage[], n: number, sampling = { temperature: 0 }) =>
  generate(model, render(messages), { maxTokens: n, sampling, contextLength: CONTEXT }).text;

test("printf 'Hi\\nHow are you?\\n' | npx kiln chat: answers and exits 0", { timeout: 300_000 }, async () => {
  const { code, stdout, stderr } = await pipeTo('npx', ['--offline', 'kiln', 'chat'], 'Hi\nHow are you?\n');
  assert.equal(code, 0, stderr);
  // each answer ends its line; the default model samples (temperature 0.8, any seed), so an answer may be as short as '.'
  assert.ok(stdout.split('\n').length > 2 && stdout.trim() !== '', JSON.stringify(stdout));
  // nothing on stderr but, possibly, the one notice that old turns were dropped
  for (const line of stderr.split('\n').filter(Boolean)) assert.match(line, /^kiln chat: the conversation outgrew the context \(256 tokens\); dropping its oldest turns$/);
});

test('kiln chat: both piped lines are answered, the second with the first exchange in its prompt', { timeout: 300_000 }, async () => {
  const { code, stdout, stderr } = await kilnChat(['-n', '12', '--temp', '0.8', '--seed', '3'], 'Hi\nHow are you?\n');
  assert.equal(code, 0, stderr);
  assert.equal(stderr, '');
  const sampling = { temperature: 0.8, seed: 3 };
  const first = answer([user('Hi')], 12, sampling);
  const second = answer([user('Hi'), assistant(first), user('How are you?')], 12, sampling);
  assert.notEqual(second, answer([user('How are you?')], 12, sampling), 'the first exchange changes the second answer');
  assert.equal(stdout, `${first}\n${second}\n`);
});

test('kiln chat: a conversation outgrowing the context drops its oldest turns and says so once', { timeout: 300_000 }, async () => {
  const lines = [
    'The jury said that the election was conducted well and that the city should be praised for the manner in which it was run by the officials of the county.',
    'In the morning the men went down to the river to see whether the boats had come in from the south, and they waited there until noon.',
    'She said that the house was too old and too large for a family of three, and that they would be better off in a smaller place in town.',
  ];
  // an answer keeps 130 tokens of room, so the three lines cannot stay together, while the last fits alone
  assert.ok(render(lines.map(user)).length > CONTEXT - 130 && render([user(lines[2])]).length <= CONTEXT - 130);
  const { code, stdout, stderr } = await kilnChat(['-n', '130', '--temp', '0'], lines.join('\n') + '\n');
  assert.equal(code, 0, stderr);
  assert.equal(stderr, 'kiln chat: the conversation outgrew the context (256 tokens); dropping its oldest turns\n');
  assert.ok(stdout.startsWith(`${answer([user(lines[0])], 130)}\n`));
});

test('kiln chat: a message too long for the context is refused in one line; the chat goes on and exits 1', { timeout: 300_000 }, async () => {
  const long = 'the old man said that '.repeat(80);
  const { code, stdout, stderr } = await kilnChat(['-n', '8', '--temp', '0'], `${long}\nHi\n`);
  assert.equal(code, 1);
  assert.match(stderr, /^kiln chat: this message takes \d+ tokens with the chat template, and -n asks for 8 more in a context of 256; it was not sent\n$/);
  // the refused message is not part of the conversation
  assert.equal(stdout, `${answer([user('Hi')], 8)}\n`);
});

test('fitConversation drops whole turns from the oldest, keeps the system message and the latest message', () => {
  // every message renders to 10 tokens
  const tenEach = (messages: ChatMessage[]) => new Array(messages.length * 10).fill(0);
  const system: ChatMessage = { role: 'system', content: 's' };
  const conversation = () => [system, user('u1'), assistant('a1'), user('u2'), assistant('a2'), user('u3')];
  const fitted = (budget: number) => {
    const messages = conversation();
    const prompt = fitConversation(messages, tenEach, budget).length;
    return { messages: messages.map((m) => m.content), prompt };
  };
  assert.deepEqual(fitted(60), { messages: ['s', 'u1', 'a1', 'u2', 'a2', 'u3'], prompt: 60 });
  assert.deepEqual(fitted(59), { messages: ['s', 'u2', 'a2', 'u3'], prompt: 40 });
  assert.deepEqual(fitted(39), { messages: ['s', 'u3'], prompt: 20 });
  assert.deepEqual(fitted(5), { messages: ['s', 'u3'], prompt: 20 });
});
