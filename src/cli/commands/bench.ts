// `kiln bench MODEL [-p 512] [-n 128] [-t N] [-r 3] [--json]`: llama-bench style throughput (-p and -n default
// to at most the model's context). pp: one batch of p prompt tokens from an empty cache; tg: n tokens decoded one
// at a time from an empty cache (an encoder, which only embeds, has pp alone: its hidden states instead of logits).
// Each test runs r times after one untimed run; the table shows the median tokens/s
// (± the largest distance of a run from it), and the resident memory after the runs: what loading and running the
// model added, against its file plus KV cache.

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import type { KVCache } from '../../generate/kv-cache.js';
import { SequenceBlocks } from '../../generate/kv-cache.js';
import { WasmBackend } from '../../kernels/wasm.js';
import { BACKEND_NAMES, createBackend } from '../../kernels/select.js';
import { modelFileBytes, readModelMetadata } from '../../hf/checkpoint.js';
import { readBaseHParams } from '../../models/hparams.js';
import { integer, MODEL_DESCRIPTION, threadsOption } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';
import { modelPath } from '../default-model.js';
import { Sampler } from '../../generate/sampler.js';
import type { LogitsProcessor } from '../../generate/logits-processor.js';
import type { GrammarProcessor, GrammarVocabulary } from '../../grammar/vocab-mask.js';
import { outputGrammar } from './grammar-options.js';

export interface BenchResult {
  model: string;
  backend: string;
  threads: number;
  test: string;
  /** tokens/s of each repeat */
  samples: number[];
  median: number;
}

/** Runs `tokens` through the model from an empty cache: one batch (pp) or one token at a time (tg). Returns seconds. */
function timeRun(model: Model, cache: KVCache, tokens: number, batched: boolean): number {
  const seq = new SequenceBlocks(cache.blockSize);
  for (let b = 0; b < cache.nBlocks; b++) seq.blockTable.push(b);
  const vocab = model.vocabSize;
  const started = process.hrtime.bigint();
  const step = batched ? tokens : 1;
  for (let start = 0; start < tokens; start += step) {
    const n = Math.min(step, tokens - start);
    const ids = Int32Array.from({ length: n }, (_, i) => (start + i) * 7919 % vocab);
    const positions = Int32Array.from({ length: n }, (_, i) => start + i);
    const batch = { tokens: ids, positions, sequences: Array(n).fill(seq), outputRows: [n - 1] };
    if (model.generates) model.forward(cache, batch);
    else model.hiddenStates(cache, batch);
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** pp and tg tokens/s of one model and backend. */
export function bench(model: Model, cache: KVCache, name: string, options: { prompt: number; generate: number; repeats: number }): BenchResult[] {
  const backend = model.backend;
  const threads = backend instanceof WasmBackend ? backend.threads : 1;
  const tests: [string, number, boolean][] = [];
  if (options.prompt > 0) tests.push([`pp${options.prompt}`, options.prompt, true]);
  if (options.generate > 0 && model.generates) tests.push([`tg${options.generate}`, options.generate, false]);
  // warm-up: each test once, untimed (faults in the weights; V8 compiles the hot JavaScript while it runs, on the
  // cores the kernels use: a first run is slower by up to a third)
  for (const [, tokens, batched] of tests) timeRun(model, cache, tokens, batched);
  return tests.map(([test, tokens, batched]) => {
    const samples = Array.from({ length: options.repeats }, () => tokens / timeRun(model, cache, tokens, batched));
    return { model: name, backend: backend.name, threads, test, samples, median: median(samples) };
  });
}

/** A grammar's processor that starts the grammar afresh once it is complete, timing its mask and accept calls. */
class TimedGrammar implements LogitsProcessor {
  seconds = 0;
  private processor: GrammarProcessor;
  constructor(private readonly vocabulary: GrammarVocabulary) {
    this.processor = vocabulary.processor();
  }
  process(logits: Float32Array): void {
    const started = performance.now();
    this.processor.process(logits);
    this.seconds += (performance.now() - started) / 1000;
  }
  accept(token: number): void {
    const started = performance.now();
    if (this.vocabulary.trie.eogIds.includes(token)) this.processor = this.vocabulary.processor();
    else this.processor.accept(token);
    this.seconds += (performance.now() - started) / 1000;
  }
}

/**
 * `tokens` decoded one at a time from an empty cache, each sampled (temperature 1, seeded) and fed back: with a
 * grammar, under its mask. Returns the seconds in all and in the grammar's mask and accept calls.
 */
function timeSampledDecode(model: Model, cache: KVCache, tokens: number, vocabulary: GrammarVocabulary | undefined, seed: number): { seconds: number; maskSeconds: number } {
  const seq = new SequenceBlocks(cache.blockSize);
  for (let b = 0; b < cache.nBlocks; b++) seq.blockTable.push(b);
  const grammar = vocabulary && new TimedGrammar(vocabulary);
  const sampler = new Sampler({ temperature: 1, top_k: 0, top_p: 1, min_p: 0, seed }, model.vocabSize, grammar ? [grammar] : []);
  const history: number[] = [];
  let token = model.tokenizer.bosId ?? 0;
  const started = process.hrtime.bigint();
  for (let position = 0; position < tokens; position++) {
    const logits = model.forward(cache, { tokens: Int32Array.of(token), positions: Int32Array.of(position), sequences: [seq], outputRows: [0] });
    token = sampler.sample(logits, history);
    sampler.accept(token);
    history.push(token);
  }
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, maskSeconds: grammar?.seconds ?? 0 };
}

export interface GrammarBenchResult {
  /** tokens/s of each repeat, unconstrained and under the grammar (runs alternate) */
  plain: number[];
  constrained: number[];
  /** milliseconds of mask + accept per token, each constrained repeat */
  maskMs: number[];
  /** the same in the untimed first run, whose masks and token classes were computed afresh */
  coldMaskMs: number;
  /** masks computed (not from the per-state cache) over all runs */
  masksComputed: number;
}

/** Sampled decoding with and without the grammar, alternating, after one untimed run of each (the grammar's fills its caches). */
export function benchGrammar(model: Model, cache: KVCache, vocabulary: GrammarVocabulary, tokens: number, repeats: number): GrammarBenchResult {
  timeSampledDecode(model, cache, tokens, undefined, 0);
  const cold = timeSampledDecode(model, cache, tokens, vocabulary, 0);
  const result: GrammarBenchResult = { plain: [], constrained: [], maskMs: [], coldMaskMs: (cold.maskSeconds / tokens) * 1000, masksComputed: 0 };
  for (let r = 1; r <= repeats; r++) {
    result.plain.push(tokens / timeSampledDecode(model, cache, tokens, undefined, r).seconds);
    const run = timeSampledDecode(model, cache, tokens, vocabulary, r);
    result.constrained.push(tokens / run.seconds);
    result.maskMs.push((run.maskSeconds / tokens) * 1000);
  }
  result.masksComputed = vocabulary.masksComputed;
  return result;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** llama-bench's test sizes, used where the model's context holds them. */
const PROMPT_TOKENS = 512, GENERATED_TOKENS = 128;

function printGrammarBench(g: GrammarBenchResult, vocab: number, tokens: number): void {
  const plain = median(g.plain), constrained = median(g.constrained);
  console.log(`\ngrammar: sampled tg${tokens} over a vocabulary of ${vocab} tokens (medians of ${g.plain.length}, runs alternating)`);
  console.log(`  unconstrained ${plain.toFixed(2)} t/s, constrained ${constrained.toFixed(2)} t/s: ratio ${(constrained / plain).toFixed(3)}`);
  console.log(`  mask time per token ${median(g.maskMs).toFixed(3)} ms (runs: ${g.maskMs.map((m) => m.toFixed(3)).join(', ')}); first run, caches cold: ${g.coldMaskMs.toFixed(3)} ms`);
  console.log(`  ${g.masksComputed} masks computed in all runs, the rest from the per-state cache`);
}

export function benchCommand(): CommandUnknownOpts {
  return new Command('bench')
    .summary('measure prompt processing (pp) and generation (tg) speed')
    .description('llama-bench style throughput: pp = one batch of prompt tokens, tg = tokens decoded one at a time, each from an empty cache.')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .addOption(new Option('-p, --n-prompt <n>', `prompt tokens for the pp test (0 = skip; default ${PROMPT_TOKENS}, at most the model's context)`).argParser(integer(0)))
    .addOption(new Option('-n, --n-gen <n>', `tokens for the tg test (0 = skip; default ${GENERATED_TOKENS}, at most the model's context)`).argParser(integer(0)))
    .addOption(threadsOption())
    .addOption(new Option('-r, --repetitions <n>', 'runs of each test').argParser(integer(1)).default(3))
    .addOption(new Option('--backend <name>', 'compute backend (default $KILN_BACKEND, else wasm)').choices(BACKEND_NAMES))
    .option('--grammar <file>', 'also time sampled decoding under this GBNF grammar against the same without it')
    .option('--json-schema <file>', 'as --grammar, with the grammar of this JSON schema')
    .option('--json', 'print the results as JSON')
    .action((modelArg, o) => {
      const path = modelPath(modelArg);
      // a test runs its tokens from position 0: one context each
      const trained = trainedContext(path, readBaseHParams(readModelMetadata(path)).hp.contextLength);
      const prompt = o.nPrompt === 0 ? 0 : chooseContext(trained, o.nPrompt, { cap: PROMPT_TOKENS, flag: '-p' });
      const generate = o.nGen === 0 ? 0 : chooseContext(trained, o.nGen, { cap: GENERATED_TOKENS, flag: '-n' });
      const backend = createBackend(o.backend, o.threads);
      const baseline = process.memoryUsage().rss; // the runtime itself, before the model
      try {
        const model = Model.load(path, { backend });
        const name = path.split('/').pop()!;
        const cache = model.createCache(Math.max(prompt, generate, 16));
        const vocabulary = outputGrammar(model.tokenizer, o);
        const results = bench(model, cache, name, { prompt, generate, repeats: o.repetitions });
        const grammar = vocabulary && generate > 0 ? benchGrammar(model, cache, vocabulary, generate, o.repetitions) : undefined;
        const fileBytes = modelFileBytes(path);
        const cacheBytes = cache.bytes;
        const rss = process.memoryUsage().rss;
        if (o.json) {
          console.log(JSON.stringify({ results, grammar, fileBytes, cacheBytes, rssBytes: rss, baselineRssBytes: baseline }, null, 2));
          return;
        }
        console.log('| model | size | backend | threads | test | t/s |');
        console.log('| --- | ---: | --- | ---: | --- | ---: |');
        for (const r of results) {
          const spread = Math.max(...r.samples.map((s) => Math.abs(s - r.median)));
          console.log(`| ${r.model} | ${mib(fileBytes)} | ${r.backend} | ${r.threads} | ${r.test} | ${r.median.toFixed(2)} ± ${spread.toFixed(2)} |`);
        }
        if (grammar) printGrammarBench(grammar, model.vocabSize, generate);
        if (backend instanceof WasmBackend) console.log(`\nweights in ${backend.memories.length} WebAssembly memor${backend.memories.length > 1 ? 'ies' : 'y'}`);
        const used = rss - baseline;
        console.log(`resident memory ${mib(rss)}: runtime ${mib(baseline)} before loading + ${mib(used)} = ` +
          `${((used / (fileBytes + cacheBytes)) * 100).toFixed(0)}% of model file ${mib(fileBytes)} + KV cache ${mib(cacheBytes)}`);
      } finally {
        if (backend instanceof WasmBackend) backend.close();
      }
    });
}
