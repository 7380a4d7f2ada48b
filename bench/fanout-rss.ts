// A fan-out attempt against a running `kiln serve` and the server's resident memory around it: one request of
// --prompts prompts × n 16, max_tokens 4 (issue 16's 4,000 × 16). VmRSS of --server-pid is sampled every 100 ms
// before, during (until the answer, or --timeout seconds, when the client leaves and so aborts it) and --settle
// seconds after. Prints one JSON line: status, seconds, RSS before / peak / after in MB.
//
//   npx tsx bench/serve-server.ts MODEL        # prints {"url", "pid", ...}
//   npx tsx bench/fanout-rss.ts --url URL --server-pid PID [--prompts 4000] [--timeout 60] [--settle 10]

import { readFileSync } from 'node:fs';
import { Command, Option } from '@commander-js/extra-typings';
import { integer } from '../src/cli/options.js';

const o = new Command('fanout-rss')
  .requiredOption('--url <url>', 'the server')
  .addOption(new Option('--server-pid <pid>', 'the server process').argParser(integer(1)).makeOptionMandatory())
  .addOption(new Option('--prompts <n>', 'prompts in the request').argParser(integer(1)).default(4000))
  .addOption(new Option('--timeout <s>', 'seconds before the client leaves').argParser(integer(1)).default(60))
  .addOption(new Option('--settle <s>', 'seconds to wait after').argParser(integer(0)).default(10))
  .parse()
  .opts();

const rssMB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${o.serverPid}/status`, 'utf8'))![1]) / 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const before = rssMB();
let peak = before;
const sampler = setInterval(() => (peak = Math.max(peak, rssMB())), 100);
const body = JSON.stringify({ prompt: new Array(o.prompts).fill('Once upon a time'), max_tokens: 4, n: 16 });
const started = performance.now();
const leave = AbortSignal.timeout(o.timeout * 1000);
const status = await fetch(`${o.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal: leave })
  .then(async (res) => {
    await res.text();
    return res.status;
  }, () => `left after ${o.timeout} s`);
const seconds = (performance.now() - started) / 1000;
await sleep(o.settle * 1000);
clearInterval(sampler);
const mb = (x: number) => Math.round(x);
console.log(JSON.stringify({ bodyKB: Math.round(body.length / 1024), status, seconds: Math.round(seconds * 10) / 10, rssMB: { before: mb(before), peak: mb(peak), after: mb(rssMB()) } }));
