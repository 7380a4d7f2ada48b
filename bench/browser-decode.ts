// Decode speed of the engine in a web page against `kiln bench` in Node, same model and thread count: headless
// Chromium (Debian's, driven by playwright-core) opens web/local.html from a cross-origin isolated static server,
// loads the model through the file input in t threads and generates n tokens greedily from "Once upon a time"; its
// decode rate is the engine's own (request metrics: tokens after the first over the time since it, as the page
// shows it). Node's is `kiln bench -p 0 -n n -t t -r 1` (tg). Page and Node alternate in every round; medians over
// rounds. The machine may be shared: the figures are wall-clock rates.
//   npx tsx bench/browser-decode.ts [MODEL.gguf] [-t 1,2] [-n 64] [-r 3]
import { spawnSync } from 'node:child_process';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';
import { serveLocalPage } from '../test/web/static-server.js';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', short: 't', default: '1,2' },
    'n-gen': { type: 'string', short: 'n', default: '64' },
    repetitions: { type: 'string', short: 'r', default: '3' },
  },
});
const model = resolve(positionals[0] ?? 'bench/models/stories15M-Q8_0.gguf');
const threadCounts = opts.threads.split(',').map(Number);
const [n, rounds] = [Number(opts['n-gen']), Number(opts.repetitions)];
const root = resolve(import.meta.dirname, '..');

function nodeRate(threads: number): number {
  const run = spawnSync(process.execPath, [resolve(root, 'bin', 'kiln.js'), 'bench', model, '-p', '0', '-n', String(n), '-t', String(threads), '-r', '1', '--json'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`kiln bench failed: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { results: { median: number }[] }).results[0].median;
}

async function pageRate(page: Page, threads: number): Promise<number> {
  await page.fill('#threads', String(threads));
  await page.setInputFiles('#model-file', model);
  await page.locator('#model-status[data-ready="true"], #error:not(:empty)').first().waitFor();
  const error = await page.locator('#error').innerText();
  if (error) throw new Error(error);
  await page.fill('#prompt', 'Once upon a time');
  await page.fill('#max-tokens', String(n));
  await page.fill('#temperature', '0');
  await page.click('#generate');
  await page.locator('#output[data-done="true"]').waitFor();
  const generated = (JSON.parse((await page.locator('#output').getAttribute('data-tokens'))!) as number[]).length;
  if (generated !== n) throw new Error(`the page generated ${generated} tokens, not ${n} (an end-of-generation token)`);
  return Number.parseFloat(await page.locator('#speed').innerText());
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await serveLocalPage(true);
const browser = await chromium.launch({ executablePath: process.env.KILN_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  await page.goto(server.baseURL + '/local');
  const samples = new Map(threadCounts.map((t) => [t, { page: [] as number[], node: [] as number[] }]));
  for (let round = 0; round < rounds; round++) {
    for (const t of threadCounts) {
      // alternate which goes first, so that a drift in the machine's load falls on both
      const first = round % 2 === 0;
      if (first) samples.get(t)!.page.push(await pageRate(page, t));
      samples.get(t)!.node.push(nodeRate(t));
      if (!first) samples.get(t)!.page.push(await pageRate(page, t));
    }
  }
  console.log(`decode tokens/s, ${basename(model)}, tg${n}, medians of ${rounds} alternating rounds`);
  console.log('threads  page (Chromium)  kiln bench (Node)  page/Node');
  for (const [t, s] of samples) {
    const [p, q] = [median(s.page), median(s.node)];
    console.log(`${String(t).padEnd(7)}  ${p.toFixed(1).padStart(15)}  ${q.toFixed(1).padStart(17)}  ${(p / q).toFixed(2).padStart(9)}`);
    console.log(`         samples: page ${s.page.map((x) => x.toFixed(1)).join(' ')} · node ${s.node.map((x) => x.toFixed(1)).join(' ')}`);
  }
} finally {
  await browser.close();
  await server.close();
}
