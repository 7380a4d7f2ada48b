// The engine in a web page (web/local.html served by `kiln serve` at /local, the bundle of web/build.mjs) in headless
// Chromium (Debian's /usr/bin/chromium, driven by playwright-core; .ci/run installs it): stories260K and a quantized
// conformance model chosen through the file input, run in two kernel threads (Web Workers), continue a prompt greedily
// with the same tokens and text as `kiln run`; a file that is not GGUF, or a truncated one, gets the reader's typed
// error in the page, and a model above the page's memory limit is refused from its header; served without COOP/COEP
// (no SharedArrayBuffer), the page says so and runs in one thread; kiln serve's /local serves the page's files with
// the isolation headers and nothing else; the inspector in the page's frame traces the page's model; a two-turn chat
// through the model's template streams the answers Node gives.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { MODEL_PATH, startServer, type TestServer } from '../server/helpers.js';
import { serveLocalPage } from './static-server.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';
import { packageRoot } from '../../src/kernels/wasm-module.js';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { GGUFError } from '../../src/gguf/types.js';
import { checkPageMemory } from '../../src/web/page-memory.js';
import { modelFromGGUF } from '../../src/estimate/model.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { metaString, serializeGGUF } from '../../src/gguf/writer.js';
import { Model } from '../../src/generate/model.js';
import { generate } from '../../src/generate/generate.js';
import { ChatTemplate, chatPromptTokens, type ChatMessage } from '../../src/generate/chat-template.js';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install the Debian package "chromium")`;
// waits end with the test (its timeout guards against a hang), not with a guess at how fast a loaded machine is
const TIMEOUT = { skip, timeout: 600_000 };

/** Opens /local of a fresh server (kiln serve's, or a plain one) in a fresh browser profile and runs `use` on it. */
async function withLocalPage(use: (page: Page, dir: string) => Promise<void>, isolated = true): Promise<void> {
  const server: { baseURL: string; close(): Promise<void> } = isolated ? await startServer() : await serveLocalPage(false);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-local-'));
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 0 });
  context.setDefaultTimeout(0);
  try {
    const page = await context.newPage();
    const response = await page.goto(server.baseURL + '/local');
    assert.equal(response?.headers()['cross-origin-opener-policy'], isolated ? 'same-origin' : undefined);
    assert.equal(response?.headers()['cross-origin-embedder-policy'], isolated ? 'require-corp' : undefined);
    assert.equal(await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated), isolated);
    await use(page, dir);
  } finally {
    await context.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const CONFORMANCE_MODEL = sharedPath('conformance', 'models', 'kq-Q4_K_M.gguf');

/**
 * Loads `model` through the file input in `threads` threads and continues "Once upon a time" greedily for 40 tokens;
 * the output. `described` is the model's part of the status line (after the file name).
 */
async function continueGreedily(page: Page, model: string, described: string, threads: number) {
  // (without cross-origin isolation the field is fixed at one thread)
  if (await page.locator('#threads').isEnabled()) await page.fill('#threads', String(threads));
  await page.setInputFiles('#model-file', model);
  // loaded, or refused (then the assertion on #error shows why)
  await page.locator('#model-status[data-ready="true"], #error:not(:empty)').first().waitFor();
  assert.equal(await page.locator('#error').innerText(), '');
  const status = new RegExp(`^${basename(model).replaceAll('.', '\\.')}: ${described}, ${threads === 1 ? '1 thread' : `${threads} threads`}$`);
  assert.match(await page.locator('#model-status').innerText(), status);
  assert.equal(await page.locator('#load-progress').evaluate((bar) => (bar as unknown as { value: number }).value), 1);
  await page.fill('#prompt', 'Once upon a time');
  await page.fill('#max-tokens', '40');
  await page.fill('#temperature', '0');
  await page.click('#generate');
  const output = page.locator('#output[data-done="true"]');
  await output.waitFor();
  return { tokens: JSON.parse((await output.getAttribute('data-tokens'))!) as number[], text: await output.innerText() };
}

/** `kiln run`'s greedy continuation of the same prompt */
async function kilnRun(model: string) {
  const { tokens, text } = JSON.parse((await kiln('run', model, '-p', 'Once upon a time', '-n', '40', '--temp', '0', '--json')).stdout) as { tokens: number[]; text: string };
  return { tokens, text };
}

/** the status line's description of stories260K and of the conformance model (regular expressions) */
const STORIES = 'llama, 0\\.29 M parameters, wasm-(relaxed-)?simd';
const CONFORMANCE = 'llama, [\\d.]+ M parameters, wasm-(relaxed-)?simd';

test('in-page engine: stories260K and a quantized conformance model (kq-Q4_K_M) from the file input, in two kernel threads (Web Workers), continue greedily as `kiln run` does, token for token', TIMEOUT, async () => {
  const [stories, conformance] = [await kilnRun(MODEL_PATH), await kilnRun(CONFORMANCE_MODEL)];
  await withLocalPage(async (page) => {
    assert.equal(await page.locator('#threads').isDisabled(), false);
    assert.deepEqual(await continueGreedily(page, MODEL_PATH, STORIES, 2), stories);
    // the engine's worker and its one kernel thread
    assert.equal(page.workers().length, 2);
    assert.match(await page.locator('#speed').innerText(), /^[\d.]+ tokens\/s$/);
    assert.equal(conformance.tokens.length, 40);
    assert.deepEqual(await continueGreedily(page, CONFORMANCE_MODEL, CONFORMANCE, 2), conformance);
    assert.equal(await page.locator('#error').innerText(), '');
  });
});

test('in-page inspector: the inspector\'s frame traces the page\'s model through its engine: the prompt\'s tokens, probabilities that sum to at most 1, an attention grid of every position', TIMEOUT, async () => {
  const run = JSON.parse((await kiln('run', MODEL_PATH, '-p', 'Once upon a time', '-n', '4', '--temp', '0', '--json')).stdout) as { prompt_tokens: number[]; tokens: number[] };
  const { nLayer, nHead } = modelFromGGUF(readGGUFHeader(MODEL_PATH)).shape;
  await withLocalPage(async (page) => {
    await page.setInputFiles('#model-file', MODEL_PATH);
    await page.locator('#model-status[data-ready="true"], #error:not(:empty)').first().waitFor();
    const inspector = page.frameLocator('#inspector');
    assert.equal(await inspector.locator('#model-summary').innerText(), 'the model in this page');
    await inspector.locator('#prompt').fill('Once upon a time');
    await inspector.locator('#n').fill('4');
    await inspector.locator('#temperature').fill('0');
    await inspector.locator('#run').click();
    // the button is disabled while the trace runs (from the click on), whatever its outcome
    await inspector.locator('#run:not([disabled])').waitFor();
    assert.equal(await inspector.locator('#run-status').innerText(), `done: ${run.prompt_tokens.length + 4} tokens`);
    // 1: the prompt's tokens as kiln tokenizes it, then the greedy continuation
    const ids = (await inspector.locator('#tokens .tok .id').allInnerTexts()).map(Number);
    assert.deepEqual(ids, [...run.prompt_tokens, ...run.tokens]);
    assert.equal(await inspector.locator('#tokens .tok.generated').count(), 4);
    // 2: the first step's full distribution: the most likely candidates, their probabilities falling and adding up to ≤ 1
    const titles = await inspector.locator('#stages .stage').first().locator('.cand').evaluateAll((rows) => rows.map((r) => (r as unknown as { title: string }).title));
    const probs = titles.map((t) => Number(/ p (\S+)$/.exec(t)![1]));
    assert.equal(probs.length, 10);
    assert.ok(probs.every((p, i) => p > 0 && (i === 0 || p <= probs[i - 1])), titles.join('; '));
    assert.ok(probs.reduce((a, b) => a + b) <= 1 + 1e-9, titles.join('; '));
    assert.match(titles[0], new RegExp(`^id ${run.tokens[0]} `));
    // 3: a layer and head choice for every layer and head, and a T×T grid whose first cell (position 0 sees only itself) is full weight
    assert.equal(await inspector.locator('#layer option').count(), nLayer);
    assert.equal(await inspector.locator('#head option').count(), nHead + 1);
    const T = run.prompt_tokens.length + 4;
    const cell = Math.max(6, Math.min(26, Math.floor(640 / T))), margin = cell >= 12 ? 90 : 4;
    const grid = await inspector.locator('#attention-canvas').evaluate((canvas, at) => {
      const c = canvas as unknown as { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } };
      return { width: c.width, height: c.height, first: [...c.getContext('2d').getImageData(at, at, 1, 1).data] };
    }, margin + Math.floor(cell / 2));
    assert.deepEqual(grid, { width: margin + T * cell + 4, height: margin + T * cell + 4, first: [194, 65, 12, 255] });
  });
});

/** A turn-based template of our own (stories260K has none), so that the page's chat goes through the model's template. */
const TURNS_TEMPLATE = "{% for m in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

test('in-page chat: two turns through the model\'s chat template stream the answers Node gives the same conversation, token for token', TIMEOUT, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-chat-'));
  try {
    const source = loadGGUF(MODEL_PATH);
    const metadata = new Map(source.metadata);
    metadata.set('tokenizer.chat_template', metaString(TURNS_TEMPLATE));
    const path = join(dir, 'stories-chat.gguf');
    writeFileSync(path, serializeGGUF({ metadata, tensors: source.tensorInfos.map((info) => ({ ...source.tensor(info.name), dims: info.dims })) }));
    // Node: the conversation as `kiln chat` renders and answers it
    const model = Model.load(path);
    const template = ChatTemplate.forModel(model.file.metadata, model.tokenizer);
    const messages: ChatMessage[] = [];
    const answers: { tokens: number[]; text: string }[] = [];
    for (const content of ['Once upon a time', 'What did the cat do?']) {
      messages.push({ role: 'user', content });
      const { tokens, text } = generate(model, chatPromptTokens(model.tokenizer, template.render(messages)), { maxTokens: 16, sampling: { temperature: 0 } });
      assert.ok(tokens.length > 0);
      messages.push({ role: 'assistant', content: text });
      answers.push({ tokens, text });
    }
    await withLocalPage(async (page) => {
      await page.setInputFiles('#model-file', path);
      await page.locator('#model-status[data-ready="true"], #error:not(:empty)').first().waitFor();
      await page.check('#chat-mode');
      await page.fill('#max-tokens', '16');
      await page.fill('#temperature', '0');
      for (const [turn, content] of ['Once upon a time', 'What did the cat do?'].entries()) {
        await page.fill('#prompt', content);
        await page.click('#generate');
        const output = page.locator('#output[data-done="true"]');
        await output.waitFor({ state: 'attached' }); // hidden in chat mode
        const answer = page.locator('#transcript .turn[data-role="assistant"]').last();
        assert.deepEqual({ tokens: JSON.parse((await output.getAttribute('data-tokens'))!), text: await answer.textContent() }, answers[turn]);
        assert.equal(await output.isVisible(), false); // the answer shows once, in the transcript
        assert.match(await page.locator('#speed').innerText(), /^[\d.]+ tokens\/s$/);
      }
      assert.equal(await page.locator('#error').innerText(), '');
      const turns = await page.locator('#transcript .turn').evaluateAll((divs) => divs.map((d) => ({ role: (d as unknown as { dataset: { role: string } }).dataset.role, content: d.textContent })));
      assert.deepEqual(turns, messages);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('in-page engine: without cross-origin isolation the page says so and runs in one thread, as `kiln run` does', TIMEOUT, async () => {
  const expected = await kilnRun(MODEL_PATH);
  await withLocalPage(async (page) => {
    assert.match(await page.locator('#isolation').innerText(), /^Not cross-origin isolated .* one thread\.$/);
    assert.equal(await page.locator('#threads').isDisabled(), true);
    assert.deepEqual(await continueGreedily(page, MODEL_PATH, STORIES, 1), expected);
    assert.equal(page.workers().length, 1);
  }, false);
});

test('in-page engine: a file that is not GGUF, or a truncated one, gets the error Node gives it, and a model above the page\'s memory limit is refused before loading, shown in the page', TIMEOUT, async () => {
  await withLocalPage(async (page, dir) => {
    const notGGUF = join(dir, 'notes.gguf'), truncated = join(dir, 'truncated.gguf');
    writeFileSync(notGGUF, 'these are plain notes, not a model');
    writeFileSync(truncated, readFileSync(MODEL_PATH).subarray(0, 4096));
    for (const file of [notGGUF, truncated]) {
      const nodeError = (() => {
        try {
          readGGUFHeader(file);
        } catch (e) {
          return e as Error;
        }
        assert.fail(`${file} was read`);
      })();
      assert.ok(nodeError instanceof GGUFError);
      await page.setInputFiles('#model-file', file);
      // the previous file's error stays until this one's replaces it
      const shown = page.locator('#error', { hasText: nodeError.message });
      await shown.waitFor();
      assert.equal(await shown.innerText(), `GGUFError: ${nodeError.message}`);
      assert.equal(await page.locator('#generate').isDisabled(), true);
    }
    // a model above the page's memory limit (a setting of the page, lowered here below what stories260K needs) is
    // refused from its header, with the figures Node computes, before its tensors are read
    await page.fill('#memory-limit', '0.001');
    await page.fill('#context', '512');
    await page.setInputFiles('#model-file', MODEL_PATH);
    let expected = '';
    try {
      checkPageMemory(readGGUFHeader(MODEL_PATH), 'stories260K.gguf', 512, { bytes: 0.001 * 2 ** 30, source: 'the memory limit set in this page' });
    } catch (e) {
      expected = `PageMemoryError: ${(e as Error).message}`;
    }
    assert.match(expected, /^PageMemoryError: stories260K\.gguf cannot run in this page: it needs [\d.]+ MiB at a context of 512 /);
    await page.locator('#error', { hasText: 'PageMemoryError' }).waitFor();
    assert.equal(await page.locator('#error').innerText(), expected);
    assert.ok(await page.locator('#load-progress').evaluate((bar) => (bar as unknown as { value: number }).value) < 1);
    assert.equal(await page.locator('#generate').isDisabled(), true);
  });
});

test('kiln serve /local: the page\'s files with the isolation headers, nothing else', async () => {
  const server = await startServer();
  try {
    for (const [name, type] of [['engine-worker.js', 'text/javascript; charset=utf-8'], ['pool-worker.js', 'text/javascript; charset=utf-8'], ['kernels-simd.wasm', 'application/wasm']]) {
      const response = await fetch(`${server.baseURL}/local/${name}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), type);
      assert.equal(response.headers.get('cross-origin-embedder-policy'), 'require-corp');
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array(readFileSync(join(packageRoot(), 'build', 'web', name))));
    }
    const inspector = await fetch(`${server.baseURL}/local/inspect`);
    assert.equal(inspector.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.equal(await inspector.text(), readFileSync(join(packageRoot(), 'web', 'inspect.html'), 'utf8'));
    for (const name of ['package.json', 'engine-worker.js.map', '..%2Fpackage.json']) {
      assert.equal((await fetch(`${server.baseURL}/local/${name}`)).status, 404, name);
    }
  } finally {
    await server.close();
  }
});
