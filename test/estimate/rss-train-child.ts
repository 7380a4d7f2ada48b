// Child process of rss-train.test.ts: trains with the configuration file CONFIG (kiln's trainer, to the end:
// checkpoint, final validation pass and GGUF) and prints its peak RSS and the steps done as JSON.
//   node --import tsx test/estimate/rss-train-child.ts CONFIG

import { readFileSync } from 'node:fs';
import { readTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';

/** peak resident set size in bytes (VmHWM) */
function peakRss(): number {
  const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return kib ? Number(kib[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

const result = await train(readTrainConfig(process.argv[2]));
console.log(JSON.stringify({ peakRss: peakRss(), steps: result.step }));
process.exit(0);
