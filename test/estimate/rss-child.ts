// Child process of rss.test.ts: loads MODEL on the default backend, fills BATCH sequences of CTX positions through
// the serving engine (a prompt of CTX − 4 tokens each, then 4 greedy tokens) and prints its peak RSS and the tokens generated as JSON.
//   node --import tsx test/estimate/rss-child.ts MODEL CTX BATCH

import { readFileSync } from 'node:fs';
import { Model } from '../../src/generate/model.js';
import { LLMEngine } from '../../src/engine/engine.js';

const GENERATED = 4;

/** peak resident set size in bytes (VmHWM) */
function peakRss(): number {
  const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return kib ? Number(kib[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

const [path, ctxArg, batchArg] = process.argv.slice(2);
const ctx = Number(ctxArg), batch = Number(batchArg);
const model = Model.load(path);
const engine = new LLMEngine(model, { maxNumSeqs: batch, maxModelLength: ctx, enablePrefixCaching: false });
let generated = 0;
for (let b = 0; b < batch; b++) {
  // distinct ordinary tokens (ids ≥ 3 skip <unk>, <s>, </s>), different per sequence
  const prompt = Array.from({ length: ctx - GENERATED }, (_, i) => 3 + ((i * 7919 + b * 104_729) % (model.vocabSize - 3)));
  engine.submit({ prompt, params: { sampling: { temperature: 0 }, maxTokens: GENERATED, ignoreEos: true }, onDelta: (d) => (generated += d.tokens.length) });
}
engine.runUntilIdle();
console.log(JSON.stringify({ peakRss: peakRss(), generated }));
process.exit(0);
