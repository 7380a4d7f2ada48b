// The web chat in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core): a typed message
// gets a streamed answer equal to the API's greedy answer, and the page reports tokens/s.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { MODEL_NAME, startServer } from './helpers.js';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install the Debian package "chromium"; .ci/run does)`;

test('web chat: type a message, read the streamed answer, take a screenshot', { skip, timeout: 120_000 }, async (t) => {
  const server = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'kiln-chat-'));
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await context.newPage();
    await page.goto(server.baseURL + '/');
    await page.locator('#model-name', { hasText: MODEL_NAME }).waitFor();
    const system = 'You tell stories about animals.';
    await page.fill('#system', system);
    await page.fill('#temperature', '0');
    await page.fill('#max_tokens', '48');
    await page.fill('#message', 'Tell me about a dog.');
    await page.press('#message', 'Enter');
    const answer = page.locator('.msg.assistant[data-done="true"]');
    await answer.waitFor({ timeout: 30_000 }).catch(async (e) => {
      const state = { page: await page.locator('main').innerText(), engine: server.engine.stats() };
      throw new Error(`no finished answer: ${(e as Error).message}\n${JSON.stringify(state)}`);
    });
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
  } finally {
    await context.close();
    await server.close();
    if (!process.env.KILN_KEEP_SCREENSHOTS) rmSync(dir, { recursive: true, force: true });
  }
});
