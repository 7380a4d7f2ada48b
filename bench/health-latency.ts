// How fast a running `kiln serve` answers /health and /metrics while its engine works: S streams decode, then one
// long prompt is prefilled; meanwhile /health and /metrics are asked in turn, one at a time, every --interval ms,
// until the prefill has finished. Prints the latency percentiles of each (ms) as one JSON line.
//
//   npx tsx bench/serve-server.ts MODEL --max-seqs 33 --ctx 2304     # prints {"url", "vocab", ...}
//   npx tsx bench/health-latency.ts --url URL --vocab 49152 [--streams 32] [--prefill 2048] [--interval 20]

import { Command, Option } from '@commander-js/extra-typings';
import { integer } from '../src/cli/options.js';

const o = new Command('health-latency')
  .requiredOption('--url <url>', 'the server')
  .addOption(new Option('--vocab <n>', 'vocabulary size (prompts are random token ids below it)').argParser(integer(301)).makeOptionMandatory())
  .addOption(new Option('--streams <n>', 'decoding streams').argParser(integer(0)).default(32))
  .addOption(new Option('--prefill <n>', 'tokens of the long prompt').argParser(integer(1)).default(2048))
  .addOption(new Option('--interval <ms>', 'pause between probes').argParser(integer(0)).default(20))
  .parse()
  .opts();

// ids from 300 up: plain tokens of the bench models' vocabularies
const tokens = (n: number) => Array.from({ length: n }, () => 300 + Math.floor(Math.random() * (o.vocab - 300)));
const complete = (body: object, signal?: AbortSignal) =>
  fetch(`${o.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal });

// the decoding streams, each past its first token before the prefill starts
const abort = new AbortController();
const streams = await Promise.all(Array.from({ length: o.streams }, async () => {
  const res = await complete({ prompt: tokens(32), ignore_eos: true, stream: true }, abort.signal); // until the context is full
  const reader = res.body!.getReader();
  await reader.read();
  // read on in the background (wrapped, so that awaiting this stream's start does not await its end)
  return {
    done: (async () => {
      try {
        while (!(await reader.read()).done);
      } catch {
        // aborted at the end
      }
    })(),
  };
}));

const latencies: Record<'health' | 'metrics', number[]> = { health: [], metrics: [] };
let prefilling = true;
const started = performance.now();
const prefill = complete({ prompt: tokens(o.prefill), max_tokens: 1 }).then(async (res) => {
  prefilling = false;
  return { status: res.status, seconds: (performance.now() - started) / 1000, body: await res.text() };
});
for (let i = 0; prefilling; i++) {
  const route = i % 2 === 0 ? 'health' : 'metrics';
  const t0 = performance.now();
  try {
    await (await fetch(`${o.url}/${route}`)).text();
    latencies[route].push(performance.now() - t0);
  } catch (e) {
    latencies[route].push(Infinity); // a reset connection counts as never answered
  }
  await new Promise((resolve) => setTimeout(resolve, o.interval));
}
const done = await prefill;
abort.abort();
await Promise.all(streams.map((stream) => stream.done));

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] * 10) / 10;
};
const summary = (values: number[]) => ({ n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: percentile(values, 100) });
console.log(JSON.stringify({
  streams: o.streams, prefillTokens: o.prefill, prefillStatus: done.status, prefillSeconds: Math.round(done.seconds * 10) / 10,
  health: summary(latencies.health), metrics: summary(latencies.metrics),
}));
