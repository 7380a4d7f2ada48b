// The engine in a web page (web/local.html served by `kiln serve` at /local, the bundle of web/build.mjs) in headless
// Chromium (Debian's /usr/bin/chromium, driven by playwright-core): stories260K chosen through the file input
// continues a prompt greedily with the same tokens and text as `kiln run`; a file that is not GGUF gets the reader's
// typed error in the page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { MODEL_PATH, startServer, type TestServer } from '../server/helpers.js';
import { kiln } from '../helpers/cli.js';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install the Debian package "chromium")`;
// waits end with the test (its timeout guards against a hang), not with a guess at how fast a loaded machine is
const TIMEOUT = { skip, timeout: 600_000 };

/** Opens /local of a fresh server in a fresh browser profile and runs `use` on it. */
async function withLocalPage(use: (page: Page, dir: string) => Promise<void>): Promise<void> {
  const server: TestServer = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'kiln-local-'));
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 0 });
  context.setDefaultTimeout(0);
  try {
    const page = await context.newPage();
    const response = await page.goto(server.baseURL + '/local');
    assert.equal(response?.headers()['cross-origin-opener-policy'], 'same-origin');
    assert.equal(response?.headers()['cross-origin-embedder-policy'], 'require-corp');
    await use(page, dir);
  } finally {
    await context.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('in-page engine: stories260K from the file input continues greedily as `kiln run` does, token for token', TIMEOUT, async () => {
  const expected = JSON.parse((await kiln('run', MODEL_PATH, '-p', 'Once upon a time', '-n', '40', '--temp', '0', '--json')).stdout) as { tokens: number[]; text: string };
  await withLocalPage(async (page) => {
    assert.equal(await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated), true);
    await page.setInputFiles('#model-file', MODEL_PATH);
    // loaded, or refused (then the assertion on #error shows why)
    await page.locator('#model-status[data-ready="true"], #error:not(:empty)').first().waitFor();
    assert.equal(await page.locator('#error').innerText(), '');
    assert.match(await page.locator('#model-status').innerText(), /^stories260K\.gguf: llama, 0\.29 M parameters, wasm-(relaxed-)?simd, 1 thread$/);
    assert.equal(await page.locator('#load-progress').evaluate((bar) => (bar as unknown as { value: number }).value), 1);
    await page.fill('#prompt', 'Once upon a time');
    await page.fill('#max-tokens', '40');
    await page.fill('#temperature', '0');
    await page.click('#generate');
    const output = page.locator('#output[data-done="true"]');
    await output.waitFor();
    assert.deepEqual(JSON.parse((await output.getAttribute('data-tokens'))!), expected.tokens);
    assert.equal(await output.innerText(), expected.text);
    assert.match(await page.locator('#speed').innerText(), /^[\d.]+ tokens\/s$/);
    assert.equal(await page.locator('#error').innerText(), '');
  });
});

test('in-page engine: a file that is not GGUF is refused with the reader\'s typed error, shown in the page', TIMEOUT, async () => {
  await withLocalPage(async (page, dir) => {
    const notGGUF = join(dir, 'notes.gguf');
    writeFileSync(notGGUF, 'these are plain notes, not a model');
    await page.setInputFiles('#model-file', notGGUF);
    await page.locator('#error', { hasText: 'GGUFError' }).waitFor();
    assert.equal(await page.locator('#error').innerText(), 'GGUFError: not a GGUF file: magic is 0x73656874, expected "GGUF"');
    assert.equal(await page.locator('#generate').isDisabled(), true);
  });
});
