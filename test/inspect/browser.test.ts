// The inspector and estimator pages in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// the file `kiln inspect` writes (file://), and /inspect and /estimate served by `kiln serve`. Each test checks
// that the expected elements exist and carry content, and takes a screenshot (kept with KILN_KEEP_SCREENSHOTS=1).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { Model } from '../../src/generate/model.js';
import { EngineClient } from '../../src/engine/engine-client.js';
import { ReferenceBackend } from '../../src/kernels/reference.js';
import { KilnServer } from '../../src/server/server.js';
import { servedModel } from '../../src/server/openai-api.js';
import { traceGeneration } from '../../src/inspect/trace.js';
import { inspectPageWithTrace } from '../../src/inspect/page.js';
import { estimateMemory } from '../../src/estimate/estimate.js';
import { modelFromParamCount } from '../../src/estimate/model.js';
import { sharedPath } from '../shared.js';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install the Debian package "chromium"; .ci/run does)`;
const STORIES = sharedPath('data', 'models', 'stories260K.gguf');
const PROMPT = 'Once upon a time';

let dir: string;
let context: BrowserContext;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'kiln-inspect-'));
  context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1200, height: 900 }, timeout: 0,
  });
  // waits end with the test (its timeout guards against a hang), not with a guess at how fast a loaded machine is
  context.setDefaultTimeout(0);
});

after(async () => {
  if (skip) return;
  await context.close();
  if (!process.env.KILN_KEEP_SCREENSHOTS) rmSync(dir, { recursive: true, force: true });
});

async function screenshot(page: Page, name: string, t: { diagnostic(message: string): void }): Promise<void> {
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  assert.ok(statSync(path).size > 10_000, 'the screenshot has content');
  t.diagnostic(`screenshot: ${path}`);
}

/** The part of a canvas element these tests read (the test code is compiled without the DOM's types). */
interface Canvas {
  width: number;
  height: number;
  toDataURL(): string;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
}

/** Pixels of the attention canvas that are not the background white. */
function inkedPixels(page: Page): Promise<{ inked: number; total: number }> {
  return page.locator('#attention-canvas').evaluate((element) => {
    const canvas = element as unknown as Canvas;
    const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
    let inked = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] < 250 || data[i + 1] < 250 || data[i + 2] < 250) inked++;
    return { inked, total: data.length / 4 };
  });
}

/** The widths (px) of the probability bars. */
function barWidths(page: Page): Promise<number[]> {
  return page.locator('#stages .bar').evaluateAll((bars) => bars.map((b) => b.getBoundingClientRect().width));
}

async function checkReport(page: Page, promptTokens: number, generated: number): Promise<void> {
  assert.equal(await page.locator('#tokens .tok.prompt').count(), promptTokens);
  assert.equal(await page.locator('#tokens .tok.generated').count(), generated);
  assert.equal(await page.locator('#steps .tok').count(), generated);
  assert.equal(await page.locator('#stages .stage').count(), 5, 'one card per sampling stage');
  const widths = await barWidths(page);
  assert.ok(widths.length >= 5 && widths.every((w) => w > 0), `probability bars: ${widths}`);
  assert.ok(Math.max(...widths) > 50, 'the most likely token has a long bar');
  assert.equal(await page.locator('#stages .cand.chosen').count() > 0, true, 'the chosen token is marked');
  const { inked, total } = await inkedPixels(page);
  assert.ok(inked > total / 10, `the heatmap is drawn (${inked} of ${total} pixels inked)`);
}

test('kiln inspect\'s page (file://): tokens, sampling stages, attention heatmap', { skip, timeout: 600_000 }, async (t) => {
  const model = Model.load(STORIES, { backend: new ReferenceBackend() });
  const trace = traceGeneration(model, PROMPT, { maxTokens: 10, sampling: { seed: 7 } });
  const file = join(dir, 'inspect.html');
  writeFileSync(file, inspectPageWithTrace(trace));
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(file).href);
  await page.locator('#tokens .tok').first().waitFor();
  await checkReport(page, trace.promptTokens, trace.steps.length);
  assert.equal(await page.locator('#tokens .tok .id').first().textContent(), '1');
  assert.match((await page.locator('#model-summary').textContent()) ?? '', /5 layers · 8 heads/);
  // another step and another layer/head redraw their panels
  await page.locator('#steps .tok').nth(3).click();
  assert.match((await page.locator('#drawn').textContent()) ?? '', new RegExp(`position ${trace.steps[3].position}`));
  const before = await page.locator('#attention-canvas').evaluate((c) => (c as unknown as Canvas).toDataURL());
  await page.selectOption('#layer', '4');
  await page.selectOption('#head', 'mean');
  const afterwards = await page.locator('#attention-canvas').evaluate((c) => (c as unknown as Canvas).toDataURL());
  assert.notEqual(afterwards, before);
  assert.ok(await page.locator('#experts').isHidden(), 'no router table for a dense model');
  await screenshot(page, 'inspect-file', t);
  assert.deepEqual(errors, []);
  await page.close();
});

test('kiln inspect\'s page for a mixture of experts: the router table', { skip, timeout: 600_000 }, async (t) => {
  const model = Model.load(sharedPath('conformance', 'models', 'moe-f32.gguf'), { backend: new ReferenceBackend() });
  const trace = traceGeneration(model, 'Hello world', { maxTokens: 4, sampling: { temperature: 0 } });
  const file = join(dir, 'inspect-moe.html');
  writeFileSync(file, inspectPageWithTrace(trace));
  const page = await context.newPage();
  await page.goto(pathToFileURL(file).href);
  await page.locator('#experts table').waitFor();
  const rows = page.locator('#experts table tr');
  assert.equal(await rows.count(), 2 + trace.tokens.length, 'two header rows, then one row per token');
  // each token chose 2 experts in each of the 2 layers: 4 filled cells per row
  const filled = await page.locator('#experts td.expert').evaluateAll((cells) => cells.filter((c) => c.textContent !== '').length);
  assert.equal(filled, trace.tokens.length * 2 * 2);
  await screenshot(page, 'inspect-moe', t);
  await page.close();
});

test('served /inspect runs a trace and shows live KV blocks; /estimate draws its chart', { skip, timeout: 600_000 }, async (t) => {
  const model = Model.load(STORIES);
  const engine = await EngineClient.start({ path: STORIES, engine: { maxModelLength: 256 } });
  const server = new KilnServer({ engine, model: servedModel(model.file.header, 'stories260K') });
  const { port } = await server.listen(0);
  const base = `http://127.0.0.1:${port}`;
  // keep a request with two completions (sharing their prompt's blocks) running while the page watches
  const prompt = model.tokenizer.encode('Once upon a time, there was a little girl who liked to play in the park with her dog.');
  const keepBusy = setInterval(() => {
    if (engine.stats().running === 0) engine.submit({ prompt, params: { sampling: { seed: 1 }, maxTokens: 120, n: 2, ignoreEos: true } });
  }, 20);
  try {
    const page = await context.newPage();
    await page.goto(base + '/inspect');
    await page.fill('#prompt', PROMPT);
    await page.fill('#n', '8');
    await page.click('#run');
    await page.locator('#run-status', { hasText: 'done' }).waitFor();
    const promptTokens = model.tokenizer.encode(PROMPT, { addSpecial: true, parseSpecial: false }).length;
    await checkReport(page, promptTokens, 8);
    await page.locator('#sequences .block.shared').first().waitFor();
    assert.match((await page.locator('#pool-summary').textContent()) ?? '', /pool: \d+ blocks of 16 positions/);
    assert.ok(await page.locator('#sequences .seq').count() >= 2, 'both completions are listed');
    await screenshot(page, 'inspect-served', t);

    await page.goto(base + '/estimate');
    await page.locator('#chart rect.term').first().waitFor();
    const widths = await page.locator('#chart rect.term').evaluateAll((rects) => rects.map((r) => Number(r.getAttribute('width'))));
    assert.equal(widths.length, 4, 'weights, KV cache, compute buffers, overhead');
    assert.ok(Math.abs(widths.reduce((a, b) => a + b, 0) - 980) < 0.1, 'the segments fill the bar');
    assert.ok(await page.locator('#devices .device.fits').count() > 0);
    // a 7B model quantized to Q4_K_M at 4096 context: the table and the devices it fits
    await page.selectOption('#source', 'params');
    await page.fill('#params', '7B');
    await page.fill('#weightType', 'Q4_K_M');
    await page.click('#go');
    await page.locator('#summary', { hasText: '7,000,000,000 parameters' }).waitFor();
    assert.equal(await page.locator('#terms tr').count(), 4);
    // the page shows what estimateMemory says
    const expected = estimateMemory({ model: modelFromParamCount(7e9), ctx: 4096, weightType: 'Q4_K_M' });
    assert.match((await page.locator('#summary').textContent()) ?? '', new RegExp(`needs ${(expected.perDevice / 2 ** 30).toFixed(2)} GiB`));
    const fits = await page.locator('#devices .device.fits').allTextContents();
    assert.deepEqual(fits.map((f) => f.slice(2, f.lastIndexOf(' · '))), expected.fits.filter((f) => f.fits).map((f) => f.device.name));
    await screenshot(page, 'estimate-served', t);
    await page.close();
  } finally {
    clearInterval(keepBusy);
    await server.close();
    await engine.close();
  }
});
