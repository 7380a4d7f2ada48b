// Serving benchmark: closed-loop clients stream completions from a `kiln serve` on 127.0.0.1 and time them.
//
//   npx tsx bench/serve.ts MODEL [--workload random|shared-prefix] [--clients 1,8,32] [--requests N | --duration S]
//       [--repeat R] [--max-seqs 32] [--ctx 2048] [--prefix-caching on,off] [--threads N] [--seed 1] [--json]
//   npx tsx bench/serve.ts MODEL --soak 600 --clients 64 --disconnect-rate 0.1
//   npx tsx bench/serve.ts --url http://127.0.0.1:8080 [--server-pid PID] [--vocab 32000] ...
//
// Without --url the bench starts the server itself (bench/serve-server.ts: the engine and HTTP server of
// `kiln serve`) once per prefix-caching setting, and stops it at the end. Every request goes to
// /v1/completions as token ids with stream: true, ignore_eos (so it generates exactly max_tokens) and
// usage in the last chunk. Workloads (seeded):
//   random         ShareGPT-like: prompt length lognormal (median 100 tokens, σ 1, clipped to 4..1024),
//                  output length uniform in 20..200; every prompt is fresh random tokens.
//   shared-prefix  one fixed ~1,000-token system prompt, then a fresh 10..40-token question; output 16..32.
// Per run: output tokens/s, requests/s, TTFT and TPOT percentiles from the streamed chunks' arrival times
// (TPOT = (last chunk − first chunk) / (output tokens − 1)), KV blocks in use (GET /metrics, polled every
// second), the share of prompt tokens served from the prefix cache, and failures. With --duration each run
// lasts that long and requests still streaming at the end are cut (their tokens so far count); with
// --requests each run issues that many and lasts until the last one ends.
// --soak S: one run of S seconds with requests that disconnect mid-stream at --disconnect-rate, drained at
// the end; reports failed requests (anything but a finished or deliberately aborted stream), KV blocks in
// use once idle, and the server's resident memory (VmRSS) over time.

import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from '@commander-js/extra-typings';
import { decimal, integer, UsageError } from '../src/cli/options.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------------------------
// Workloads

/** mulberry32: seeded uniform floats in [0, 1) */
function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const uniformInt = (rand: () => number, lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

/** exp(ln(median) + σ·z), z standard normal (Box–Muller), rounded and clipped to [lo, hi] */
function lognormalInt(rand: () => number, median: number, sigma: number, lo: number, hi: number): number {
  const z = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return Math.min(hi, Math.max(lo, Math.round(median * Math.exp(sigma * z))));
}

// ids below 300 are skipped: control and byte tokens in the SentencePiece vocabularies of the bench models
const FIRST_PLAIN_TOKEN = 300;
const randomTokens = (rand: () => number, n: number, vocab: number): number[] =>
  Array.from({ length: n }, () => uniformInt(rand, FIRST_PLAIN_TOKEN, vocab - 1));

interface RequestSpec {
  prompt: number[];
  maxTokens: number;
  /** disconnect after this many streamed chunks (0: as soon as the response starts) */
  abortAfter?: number;
}

interface WorkloadOptions {
  kind: 'random' | 'shared-prefix';
  vocab: number;
  promptMedian: number;
  promptSigma: number;
  promptMax: number;
  outputMin: number;
  outputMax: number;
  prefixTokens: number;
  disconnectRate: number;
}

/** The request source of one run: the same seed gives the same requests in the same order. */
function workload(options: WorkloadOptions, seed: number): () => RequestSpec {
  const rand = seededRandom(seed);
  // the system prompt is the same in every run (it does not depend on the run's seed)
  const prefix = randomTokens(seededRandom(7), options.prefixTokens, options.vocab);
  return () => {
    const maxTokens = uniformInt(rand, options.outputMin, options.outputMax);
    const prompt = options.kind === 'random'
      ? randomTokens(rand, lognormalInt(rand, options.promptMedian, options.promptSigma, 4, options.promptMax), options.vocab)
      : [...prefix, ...randomTokens(rand, uniformInt(rand, 10, 40), options.vocab)];
    const spec: RequestSpec = { prompt, maxTokens };
    if (rand() < options.disconnectRate) spec.abortAfter = uniformInt(rand, 0, maxTokens - 1);
    return spec;
  };
}

// ---------------------------------------------------------------------------------------------------------
// One streamed request

interface Outcome {
  /** ok: finished with all its tokens; aborted: the client disconnected on purpose; cut: the run's time ran out */
  status: 'ok' | 'aborted' | 'cut' | 'failed';
  error?: string;
  /** performance.now() milliseconds */
  sentAt: number;
  firstAt?: number;
  lastAt?: number;
  /** streamed chunks carrying text */
  chunks: number;
  /** from the final usage chunk */
  outputTokens: number;
  promptTokens: number;
  cachedTokens: number;
}

const CUT = 'cut';
const DISCONNECT = 'disconnect';

async function streamCompletion(url: string, spec: RequestSpec, runOver: AbortSignal): Promise<Outcome> {
  const out: Outcome = { status: 'ok', sentAt: performance.now(), chunks: 0, outputTokens: 0, promptTokens: spec.prompt.length, cachedTokens: 0 };
  const controller = new AbortController();
  const cut = () => controller.abort(CUT);
  if (runOver.aborted) cut();
  runOver.addEventListener('abort', cut, { once: true });
  const fail = (error: string): Outcome => ({ ...out, status: 'failed', error });
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        prompt: spec.prompt, max_tokens: spec.maxTokens, ignore_eos: true, stream: true, stream_options: { include_usage: true },
      }),
      signal: controller.signal,
    });
    if (!res.ok || !res.body) return fail(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
    if (spec.abortAfter === 0) controller.abort(DISCONNECT);
    let finishReason: string | null = null;
    let done = false;
    let buffer = '';
    const decoder = new TextDecoder();
    for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(bytes, { stream: true });
      // server-sent events: "data: <json>\n\n"
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const data = buffer.slice(0, end).replace(/^data: /, '');
        buffer = buffer.slice(end + 2);
        if (data === '[DONE]') { done = true; continue; }
        const chunk = JSON.parse(data);
        if (chunk.error) return fail(`error chunk: ${JSON.stringify(chunk.error).slice(0, 200)}`);
        if (chunk.usage) {
          out.outputTokens = chunk.usage.completion_tokens;
          out.cachedTokens = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
        }
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        if (choice.finish_reason) finishReason = choice.finish_reason;
        if (choice.text === '') continue;
        out.lastAt = performance.now();
        out.firstAt ??= out.lastAt;
        out.chunks++;
        if (out.chunks === spec.abortAfter) controller.abort(DISCONNECT);
      }
    }
    if (!done) return fail('the stream ended without [DONE]');
    if (finishReason !== 'length' || out.outputTokens !== spec.maxTokens) {
      return fail(`finished with ${finishReason} after ${out.outputTokens} of ${spec.maxTokens} tokens`);
    }
    return out;
  } catch (e) {
    const reason = controller.signal.reason;
    if (reason === CUT) return { ...out, status: 'cut' };
    if (reason === DISCONNECT) return { ...out, status: 'aborted' };
    return fail(`${(e as Error).name}: ${(e as Error).message}${(e as Error).cause ? ` (${(e as Error).cause})` : ''}`);
  } finally {
    runOver.removeEventListener('abort', cut);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The server: its metrics and memory

/** Prometheus text → metric name (labels kept) → value; a failed scrape is retried twice */
async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  for (let attempt = 1; ; attempt++) {
    try {
      const text = await (await fetch(`${url}/metrics`)).text();
      const values = new Map<string, number>();
      for (const line of text.split('\n')) {
        const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
        if (match) values.set(match[1], Number(match[2]));
      }
      return values;
    } catch (e) {
      console.error(`bench/serve: GET /metrics failed (attempt ${attempt}): ${(e as Error).message} (${(e as Error).cause})`);
      if (attempt === 3) throw e;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** resident memory of a process in MiB (Linux) */
function residentMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

/** KV blocks in use, sampled once a second while a run lasts. */
class KvWatch {
  readonly used: number[] = [];
  total = 0;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly url: string) {
    this.done = this.poll();
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      const m = await scrapeMetrics(this.url);
      this.used.push(m.get('kiln_kv_blocks_used') ?? NaN);
      this.total = m.get('kiln_kv_blocks_total') ?? NaN;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

interface Server {
  url: string;
  /** the server process, when known (for its memory) */
  pid?: number;
  vocab: number;
  stop(): Promise<void>;
}

async function startServer(model: string, settings: { maxSeqs: number; ctx: number; maxBatchedTokens?: number; prefixCaching: boolean; threads?: number }): Promise<Server> {
  const args = ['--import', 'tsx', join(REPO, 'bench', 'serve-server.ts'), model, '--max-seqs', String(settings.maxSeqs), '--ctx', String(settings.ctx)];
  if (settings.maxBatchedTokens !== undefined) args.push('--max-batched-tokens', String(settings.maxBatchedTokens));
  if (settings.threads !== undefined) args.push('--threads', String(settings.threads));
  if (!settings.prefixCaching) args.push('--no-prefix-caching');
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const ready = await new Promise<{ url: string; pid: number; vocab: number }>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (data: Buffer) => {
      text += data.toString();
      if (text.includes('\n')) resolve(JSON.parse(text.slice(0, text.indexOf('\n'))));
    });
    child.once('exit', (code) => reject(new Error(`the server exited with status ${code} before listening`)));
  });
  return { ...ready, stop: () => stopProcess(child).then(() => void process.off('exit', killOnExit)) };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Polls /metrics until nothing runs or waits (at most `seconds`); returns the last scrape. */
async function untilIdle(url: string, seconds: number): Promise<Map<string, number>> {
  const deadline = performance.now() + seconds * 1000;
  for (;;) {
    const m = await scrapeMetrics(url);
    const busy = (m.get('kiln_num_sequences_running') ?? 0) + (m.get('kiln_num_sequences_waiting') ?? 0);
    if (busy === 0 || performance.now() > deadline) return m;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// ---------------------------------------------------------------------------------------------------------
// A run: closed-loop clients, then its summary

interface RunPlan {
  label: string;
  prefixCaching: string;
  clients: number;
  /** requests to issue in all (when no duration) */
  requests?: number;
  /** seconds; requests still streaming at the end are cut, unless `drain` */
  duration?: number;
  drain: boolean;
  next: () => RequestSpec;
}

interface RunSummary {
  workload: string;
  prefixCaching: string;
  clients: number;
  seconds: number;
  completed: number;
  aborted: number;
  cut: number;
  failed: number;
  outputTokensPerSecond: number;
  requestsPerSecond: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  tpotP50Ms: number;
  tpotP99Ms: number;
  kvBlocksUsedMax: number;
  kvBlocksUsedMean: number;
  kvBlocksTotal: number;
  /** prompt tokens whose KV came from the prefix cache, over all prompt tokens of completed requests */
  cachedPromptShare: number;
  /** the server's kiln_prefix_cache_hit_rate (since it started) */
  serverPrefixHitRate: number;
  preemptions: number;
}

async function runLoad(server: Server, plan: RunPlan): Promise<{ summary: RunSummary; outcomes: Outcome[] }> {
  const before = await scrapeMetrics(server.url);
  const watch = new KvWatch(server.url);
  const outcomes: Outcome[] = [];
  const runOver = new AbortController();
  setMaxListeners(Infinity, runOver.signal); // one listener per client's request in flight
  const started = performance.now();
  const timer = plan.duration !== undefined && !plan.drain ? setTimeout(() => runOver.abort(), plan.duration * 1000) : undefined;
  const deadline = plan.duration === undefined ? Infinity : started + plan.duration * 1000;
  let issued = 0;
  const client = async () => {
    while (performance.now() < deadline && (plan.requests === undefined || issued < plan.requests)) {
      issued++;
      outcomes.push(await streamCompletion(server.url, plan.next(), runOver.signal));
    }
  };
  await Promise.all(Array.from({ length: plan.clients }, client));
  clearTimeout(timer);
  const seconds = timer === undefined ? (performance.now() - started) / 1000 : plan.duration!;
  await watch.stop();
  const after = await untilIdle(server.url, 30);

  const completed = outcomes.filter((o) => o.status === 'ok');
  const count = (status: Outcome['status']) => outcomes.filter((o) => o.status === status).length;
  // tokens that reached the client: all of a completed request's, the streamed chunks of a cut or aborted one
  const outputTokens = outcomes.reduce((sum, o) => sum + (o.status === 'ok' ? o.outputTokens : o.status === 'failed' ? 0 : o.chunks), 0);
  const ttft = completed.map((o) => o.firstAt! - o.sentAt);
  const tpot = completed.filter((o) => o.outputTokens > 1).map((o) => (o.lastAt! - o.firstAt!) / (o.outputTokens - 1));
  const promptTokens = completed.reduce((sum, o) => sum + o.promptTokens, 0);
  const used = watch.used.filter(Number.isFinite);
  const summary: RunSummary = {
    workload: plan.label,
    prefixCaching: plan.prefixCaching,
    clients: plan.clients,
    seconds,
    completed: completed.length,
    aborted: count('aborted'),
    cut: count('cut'),
    failed: count('failed'),
    outputTokensPerSecond: outputTokens / seconds,
    requestsPerSecond: completed.length / seconds,
    ttftP50Ms: percentile(ttft, 50),
    ttftP99Ms: percentile(ttft, 99),
    tpotP50Ms: percentile(tpot, 50),
    tpotP99Ms: percentile(tpot, 99),
    kvBlocksUsedMax: Math.max(...used),
    kvBlocksUsedMean: used.reduce((a, b) => a + b, 0) / used.length,
    kvBlocksTotal: watch.total,
    cachedPromptShare: promptTokens === 0 ? 0 : completed.reduce((sum, o) => sum + o.cachedTokens, 0) / promptTokens,
    serverPrefixHitRate: after.get('kiln_prefix_cache_hit_rate') ?? NaN,
    preemptions: (after.get('kiln_preemptions_total') ?? 0) - (before.get('kiln_preemptions_total') ?? 0),
  };
  return { summary, outcomes };
}

/** linear interpolation between closest ranks */
function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  return sorted[lo] + (sorted[Math.min(lo + 1, sorted.length - 1)] - sorted[lo]) * (rank - lo);
}

const median = (values: number[]): number => percentile(values, 50);

/** The field-by-field median of repeated runs of one configuration. */
function medianOf(runs: RunSummary[]): RunSummary {
  const out = { ...runs[0] } as Record<string, unknown>;
  for (const [key, value] of Object.entries(runs[0])) {
    if (typeof value === 'number') out[key] = median(runs.map((r) => (r as unknown as Record<string, number>)[key]));
  }
  return out as unknown as RunSummary;
}

// ---------------------------------------------------------------------------------------------------------
// Output

const COLUMNS: [string, (r: RunSummary) => string][] = [
  ['workload', (r) => r.workload],
  ['prefix cache', (r) => r.prefixCaching],
  ['clients', (r) => String(r.clients)],
  ['s', (r) => r.seconds.toFixed(1)],
  ['done', (r) => String(r.completed)],
  ['aborted', (r) => String(r.aborted)],
  ['cut', (r) => String(r.cut)],
  ['failed', (r) => String(r.failed)],
  ['out tok/s', (r) => r.outputTokensPerSecond.toFixed(1)],
  ['req/s', (r) => r.requestsPerSecond.toFixed(3)],
  ['TTFT p50 ms', (r) => r.ttftP50Ms.toFixed(0)],
  ['TTFT p99 ms', (r) => r.ttftP99Ms.toFixed(0)],
  ['TPOT p50 ms', (r) => r.tpotP50Ms.toFixed(1)],
  ['TPOT p99 ms', (r) => r.tpotP99Ms.toFixed(1)],
  ['KV used max/mean/total', (r) => `${r.kvBlocksUsedMax}/${r.kvBlocksUsedMean.toFixed(0)}/${r.kvBlocksTotal}`],
  ['cached prompt', (r) => `${(100 * r.cachedPromptShare).toFixed(1)}%`],
  ['server hit rate', (r) => `${(100 * r.serverPrefixHitRate).toFixed(1)}%`],
  ['preempt', (r) => String(r.preemptions)],
];

function tableRow(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

const tableHeader = (): string => `${tableRow(COLUMNS.map(([name]) => name))}\n${tableRow(COLUMNS.map(() => '---'))}`;

const tableLine = (r: RunSummary, note = ''): string => tableRow(COLUMNS.map(([, cell], i) => (i === 0 ? r.workload + note : cell(r))));

// ---------------------------------------------------------------------------------------------------------
// Main

/** The bench's command line. */
function program() {
  return new Command('bench/serve')
    .argument('[MODEL]', 'a GGUF model file (or --url)')
    .option('--url <url>', 'benchmark this server instead of starting one')
    .addOption(new Option('--server-pid <pid>', 'with --url: the server process, for its resident memory').argParser(integer(1)))
    .addOption(new Option('--vocab <n>', 'with --url: vocabulary size of the served model').argParser(integer(1)).default(32000))
    .addOption(new Option('--workload <kind>', 'the requests').choices(['random', 'shared-prefix'] as const).default('random' as const))
    .option('--clients <list>', 'concurrent clients, a comma list (default 1,8,32; shared-prefix 4; soak 64)')
    .addOption(new Option('--requests <n>', 'requests per run (default max(8, 3 × clients))').argParser(integer(1)))
    .addOption(new Option('--duration <s>', 'seconds per run instead of a request count').argParser(decimal))
    .addOption(new Option('--repeat <n>', 'runs of each configuration; medians are printed too').argParser(integer(1)).default(1))
    .addOption(new Option('--max-seqs <n>', 'server: sequences generated together at most').argParser(integer(1)).default(32))
    .addOption(new Option('--ctx <n>', 'server: context length per sequence').argParser(integer(1)).default(2048))
    .addOption(new Option('--max-batched-tokens <n>', 'server: tokens in one step at most (engine default 512)').argParser(integer(1)))
    .addOption(new Option('--threads <n>', 'server: threads of the WASM backend (default: its own choice)').argParser(integer(1)))
    .option('--prefix-caching <list>', 'server: on, off or on,off (default on; shared-prefix on,off)')
    .addOption(new Option('--seed <s>', 'workload seed').argParser(integer()).default(1))
    .addOption(new Option('--prompt-median <n>', 'random: median prompt tokens').argParser(decimal).default(100))
    .addOption(new Option('--prompt-sigma <s>', 'random: σ of the log prompt length').argParser(decimal).default(1))
    .addOption(new Option('--prompt-max <n>', 'random: prompt tokens at most').argParser(integer(1)).default(1024))
    .addOption(new Option('--output-min <n>', 'output tokens at least (default 20; shared-prefix 16)').argParser(integer(1)))
    .addOption(new Option('--output-max <n>', 'output tokens at most (default 200; shared-prefix 32)').argParser(integer(1)))
    .addOption(new Option('--prefix-tokens <n>', 'shared-prefix: system prompt tokens').argParser(integer(1)).default(1000))
    .addOption(new Option('--disconnect-rate <p>', 'share of requests that disconnect mid-stream').argParser(decimal).default(0))
    .addOption(new Option('--soak <s>', 'soak test of this many seconds (random workload, drained at the end)').argParser(integer(1)))
    .option('--json', 'print JSON instead of tables');
}

type Flags = ReturnType<ReturnType<typeof program>['opts']>;

function intList(text: string, name: string): number[] {
  const values = text.split(',').map(Number);
  if (values.some((v) => !Number.isSafeInteger(v) || v < 1)) throw new UsageError(`--${name} must be positive integers, got ${text}`);
  return values;
}

interface Settings {
  url?: string;
  model: string;
  prefixCaching: string;
  flags: Flags;
}

/** The server of one prefix-caching setting: the one at --url, or a fresh one of our own. */
function openServer({ url, model, prefixCaching, flags }: Settings): Promise<Server> {
  if (url) return Promise.resolve({ url, pid: flags.serverPid, vocab: flags.vocab, stop: async () => {} });
  return startServer(model, {
    maxSeqs: flags.maxSeqs, ctx: flags.ctx, maxBatchedTokens: flags.maxBatchedTokens, prefixCaching: prefixCaching === 'on', threads: flags.threads,
  });
}

/** Soak: one drained run; afterwards the KV blocks still in use once idle and the server's memory over time. */
async function soakRun(server: Server, plan: RunPlan, log: (line: string) => void): Promise<object> {
  const rssStart = server.pid === undefined ? undefined : residentMiB(server.pid);
  const rssEvery30s: number[] = [];
  const timer = server.pid === undefined ? undefined : setInterval(() => rssEvery30s.push(residentMiB(server.pid!)), 30_000);
  const { summary, outcomes } = await runLoad(server, plan);
  clearInterval(timer);
  const idle = await untilIdle(server.url, 60);
  const report = {
    ...summary,
    kvBlocksUsedAtEnd: idle.get('kiln_kv_blocks_used'),
    runningAtEnd: idle.get('kiln_num_sequences_running'),
    waitingAtEnd: idle.get('kiln_num_sequences_waiting'),
    rssStartMiB: rssStart,
    rssEndMiB: server.pid === undefined ? undefined : residentMiB(server.pid),
    rssEvery30sMiB: rssEvery30s,
  };
  log(tableLine(summary));
  logFailures(outcomes, log);
  log(`soak: ${summary.completed} finished, ${summary.aborted} disconnected on purpose, ${summary.failed} failed; ` +
    `KV blocks in use once idle: ${report.kvBlocksUsedAtEnd} (running ${report.runningAtEnd}, waiting ${report.waitingAtEnd})`);
  if (rssStart !== undefined) {
    log(`soak: server VmRSS ${rssStart.toFixed(0)} MiB at start, ${report.rssEndMiB!.toFixed(0)} MiB at end; ` +
      `every 30 s: ${rssEvery30s.map((v) => v.toFixed(0)).join(' ')}`);
  }
  return report;
}

function logFailures(outcomes: Outcome[], log: (line: string) => void): void {
  const errors = new Set(outcomes.filter((o) => o.status === 'failed').map((o) => o.error));
  for (const error of [...errors].slice(0, 5)) log(`  failure: ${error}`);
}

async function main(): Promise<void> {
  const command = program().parse();
  const flags = command.opts();
  const [model] = command.processedArgs;
  const { soak, workload: kind, url } = flags;
  const shared = kind === 'shared-prefix';
  if (!url && !model) throw new UsageError('a model file (or --url) is required');
  const clientCounts = intList(flags.clients ?? (soak ? '64' : shared ? '4' : '1,8,32'), 'clients');
  const prefixSettings = (flags.prefixCaching ?? (shared && !soak ? 'on,off' : 'on')).split(',');
  if (prefixSettings.some((s) => s !== 'on' && s !== 'off')) throw new UsageError('--prefix-caching takes on, off or on,off');
  if (url && prefixSettings.length > 1) throw new UsageError('with --url the server\'s prefix caching is fixed: give --prefix-caching on or off (for the label)');
  const repeat = soak ? 1 : flags.repeat;
  const duration = soak ?? flags.duration;
  const { seed, json } = flags;
  // with --json the tables go to stderr, the JSON alone to stdout
  const log = (line: string) => (json ? console.error(line) : console.log(line));

  const runs: RunSummary[] = [];
  const soakReports: object[] = [];
  log(tableHeader());
  // repeats are interleaved (round r runs every setting and client count) so that the machine's drift
  // spreads over all configurations alike
  for (let r = 0; r < repeat; r++) {
    for (const prefixCaching of prefixSettings) {
      const server = await openServer({ url, model: model ?? '', prefixCaching, flags });
      try {
        const workloadOptions: WorkloadOptions = {
          kind, vocab: server.vocab,
          promptMedian: flags.promptMedian,
          promptSigma: flags.promptSigma,
          promptMax: flags.promptMax,
          outputMin: flags.outputMin ?? (shared ? 16 : 20),
          outputMax: flags.outputMax ?? (shared ? 32 : 200),
          prefixTokens: flags.prefixTokens,
          disconnectRate: flags.disconnectRate,
        };
        // warm-up: kernels compiled, weights faulted in; for shared-prefix the system prompt seen once
        const warmUp = workload({ ...workloadOptions, outputMin: 4, outputMax: 4, disconnectRate: 0 }, seed + 999_999)();
        const warm = await streamCompletion(server.url, warmUp, new AbortController().signal);
        if (warm.status !== 'ok') throw new Error(`the warm-up request failed: ${warm.error}`);
        for (const clients of clientCounts) {
          const plan: RunPlan = {
            label: soak ? 'soak' : kind, prefixCaching, clients,
            requests: duration === undefined ? (flags.requests ?? Math.max(8, 3 * clients)) : undefined,
            duration, drain: soak !== undefined,
            // a fresh seed per run: repeated prompts would otherwise be found in the prefix cache
            next: workload(workloadOptions, seed + 1000 * r + clients),
          };
          if (soak) {
            soakReports.push(await soakRun(server, plan, log));
            continue;
          }
          const { summary, outcomes } = await runLoad(server, plan);
          runs.push(summary);
          log(tableLine(summary, repeat > 1 ? ` (run ${r + 1})` : ''));
          logFailures(outcomes, log);
        }
      } finally {
        await server.stop();
      }
    }
  }
  const medians = repeat > 1
    ? prefixSettings.flatMap((p) => clientCounts.map((c) => medianOf(runs.filter((run) => run.prefixCaching === p && run.clients === c))))
    : [];
  for (const m of medians) log(tableLine(m, ` (median of ${repeat})`));
  if (json) console.log(JSON.stringify({ runs, medians, soak: soakReports }, null, 2));
}

main().catch((e) => {
  console.error(e instanceof UsageError ? `bench/serve: ${e.message}` : e);
  process.exit(e instanceof UsageError ? 2 : 1);
});
