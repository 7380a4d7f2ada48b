// The web chat in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core): a typed message
// gets a streamed answer equal to the API's greedy answer, and the page reports tokens/s; the page's default
// request on the default model succeeds; a conversation that outgrows the context drops its oldest turns.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Locator, type Page } from 'playwright-core';
import { chatPromptTokens, type ChatMessage } from '../../src/generate/chat-template.js';
import { servedModel } from '../../src/server/openai-api.js';
import { defaultModelPath } from '../../src/cli/default-model.js';
import { MODEL_NAME, loadModel, startServer, type TestServer } from './helpers.js';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install the Debian package "chromium"; .ci/run does)`;
// waits end with the test (its timeout guards against a hang), not with a guess at how fast a loaded machine is
const TIMEOUT = { skip, timeout: 600_000 };

/** Opens the chat page of `server` in a fresh browser profile and runs `use` on it. */
async function withChatPage(server: TestServer, modelName: string, use: (page: Page, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-chat-'));
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 0 });
  context.setDefaultTimeout(0);
  try {
    const page = await context.newPage();
    await page.goto(server.baseURL + '/');
    await page.locator('#model-name', { hasText: modelName }).waitFor();
    await use(page, dir);
  } finally {
    await context.close();
    await server.close();
    if (!process.env.KILN_KEEP_SCREENSHOTS) rmSync(dir, { recursive: true, force: true });
  }
}

/** Types a message, waits for its answer to finish, and returns the answer (the nth of the page). */
async function send(page: Page, text: string, nth: number): Promise<Locator> {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
  const answer = page.locator('.msg.assistant[data-done="true"]').nth(nth);
  await answer.waitFor();
  return answer;
}

/** The JSON bodies the page posts to /v1/chat/completions, in order. */
function recordRequests(page: Page): Record<string, unknown>[] {
  const bodies: Record<string, unknown>[] = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/v1/chat/completions')) bodies.push(JSON.parse(request.postData() ?? 'null'));
  });
  return bodies;
}

test('web chat: type a message, read the streamed answer, take a screenshot', TIMEOUT, async (t) => {
  const server = await startServer();
  await withChatPage(server, MODEL_NAME, async (page, dir) => {
    const system = 'You tell stories about animals.';
    await page.fill('#system', system);
    await page.fill('#temperature', '0');
    await page.fill('#max_tokens', '48');
    const answer = await send(page, 'Tell me about a dog.', 0);
    const text = await answer.locator('.content').textContent();
    const status = await page.locator('#status').textContent();

    const screenshot = join(dir, 'chat.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    t.diagnostic(`screenshot: ${screenshot} (${statSync(screenshot).size} bytes)`);

    assert.ok(text && text.length > 0, 'the answer is empty');
    assert.equal(await answer.getAttribute('class'), 'msg assistant');
    assert.match(status ?? '', /\d+ tokens · .* tokens\/s/);
    // the page asked for exactly this conversation, greedily
    const reference = await server.client.chat.completions.create({
      model: MODEL_NAME, messages: [{ role: 'system', content: system }, { role: 'user', content: 'Tell me about a dog.' }],
      temperature: 0, max_tokens: 48,
    });
    assert.equal(text, reference.choices[0].message.content);
    assert.ok(statSync(screenshot).size > 1000);
  });
});

test('web chat on the default model with the default settings: two messages get answers', TIMEOUT, async () => {
  const server = await startServer({}, {}, { path: defaultModelPath(), name: 'kiln-brown' });
  await withChatPage(server, 'kiln-brown', async (page) => {
    const requests = recordRequests(page);
    // the default settings sample at random, and an empty answer (the end of the turn first) is one of the answers
    // (1 in 200 to the first message, measured): the requests go out with a seed, so that a run is reproducible
    await page.route('**/v1/chat/completions', (route) => route.continue({ postData: JSON.stringify({ ...route.request().postDataJSON(), seed: 1 }) }));
    for (const [i, message] of ['Hello, how are you?', 'Tell me about the weather.'].entries()) {
      const answer = await send(page, message, i);
      const text = await answer.locator('.content').textContent();
      assert.equal(await answer.getAttribute('class'), 'msg assistant', `answer ${i} failed: ${text}`);
      assert.ok(text && text.length > 0, `answer ${i} is empty`);
      assert.match(await page.locator('#status').textContent() ?? '', /^[1-9]\d* tokens · /);
    }
    // the default request names no max_tokens: the server lets the answer run to its end or the context's
    assert.ok(requests.length >= 2);
    for (const body of requests) assert.equal('max_tokens' in body, false, JSON.stringify(body));
  });
});

test('web chat: a conversation that outgrows the context drops its oldest turn, once told', TIMEOUT, async () => {
  const context = 96;
  const first = 'Tell me a story about a cat.';
  const second = 'Lily had a big red ball and she liked to play with it in the park every day with Tom.';
  // the two messages alone overflow the context, the second one alone leaves room to answer
  const { chatTemplate, tokenizer } = servedModel(loadModel().file.header, MODEL_NAME);
  const size = (messages: ChatMessage[]) => chatPromptTokens(tokenizer, chatTemplate.render(messages)).length;
  const user = (content: string): ChatMessage => ({ role: 'user', content });
  assert.ok(size([user(first), user(second)]) >= context && size([user(second)]) < context - 4);

  const server = await startServer({ maxModelLength: context });
  await withChatPage(server, MODEL_NAME, async (page) => {
    await page.fill('#temperature', '0');
    await send(page, first, 0);
    const answer = await send(page, second, 1);
    assert.equal(await answer.getAttribute('class'), 'msg assistant');
    assert.equal(await page.locator('.msg.note').count(), 1);
    const reference = await server.client.chat.completions.create({ model: MODEL_NAME, messages: [{ role: 'user', content: second }], temperature: 0 });
    assert.equal(await answer.locator('.content').textContent(), reference.choices[0].message.content);
  });
});
