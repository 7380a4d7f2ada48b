// `kiln tokenizer train CORPUS --vocab-size N [--special TOKEN]... -o tokenizer.json`:
// trains a byte-level BPE on a text file and writes a Hugging Face tokenizer.json.

import { readFileSync } from 'node:fs';
import type { Command } from '../command.js';
import { optInt, optList, optString, UsageError, type ParsedArgs } from '../args.js';
import { trainBPE } from '../../train/bpe-trainer.js';
import { writeHFTokenizerJson } from '../../train/hf-tokenizer-json.js';

export const tokenizerCommand: Command = {
  name: 'tokenizer',
  usage: 'train CORPUS --vocab-size N [--special TOKEN]... -o tokenizer.json',
  summary: 'train a byte-level BPE tokenizer (GPT-2 pre-tokenization) and write a tokenizer.json',
  options: [
    { name: 'vocab-size', description: 'final vocab size, including specials and the 256 bytes' },
    { name: 'special', multiple: true, description: 'special token (repeatable); gets an id, is never merged' },
    { name: 'output', short: 'o', description: 'where to write the tokenizer.json' },
  ],
  run(args: ParsedArgs): void {
    const [sub, corpus, ...extra] = args.positionals;
    if (sub !== 'train') throw new UsageError(`unknown tokenizer subcommand "${sub ?? ''}"; expected "train"`);
    if (corpus === undefined || extra.length > 0) throw new UsageError('expected exactly one CORPUS file');
    const vocabSize = optInt(args, 'vocab-size');
    if (vocabSize === undefined) throw new UsageError('--vocab-size is required');
    const output = optString(args, 'output');
    if (output === undefined) throw new UsageError('-o/--output is required');

    const started = performance.now();
    const text = readFileSync(corpus, 'utf8');
    const progress = progressReporter();
    const bpe = trainBPE(text, { vocabSize, specials: optList(args, 'special'), onProgress: progress.update });
    progress.end();
    writeHFTokenizerJson(output, bpe);
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    console.log(`wrote ${output}: ${bpe.vocab.length} tokens, ${bpe.merges.length} merges in ${seconds} s`);
  },
};

/** On a TTY one self-overwriting line (redrawn at most every 100 ms); otherwise one line per 10% of the merges. */
function progressReporter(): { update: (done: number, total: number) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  let lastDraw = 0;
  let lastTenth = 0;
  let line = '';
  return {
    update(done, total) {
      line = `merges ${done}/${total}`;
      if (tty) {
        const now = performance.now();
        if (done < total && now - lastDraw < 100) return;
        lastDraw = now;
        process.stderr.write(`\r${line}`);
      } else {
        const tenth = Math.floor((10 * done) / total);
        if (tenth === lastTenth) return;
        lastTenth = tenth;
        process.stderr.write(`${line}\n`);
      }
    },
    // training may stop early (no pair left): finish the TTY line either way
    end() {
      if (tty && line !== '') process.stderr.write(`\r${line}\n`);
    },
  };
}
