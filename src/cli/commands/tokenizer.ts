// `kiln tokenizer train CORPUS --vocab-size N [--special TOKEN]... -o tokenizer.json`:
// trains a byte-level BPE on a text file and writes a Hugging Face tokenizer.json.

import { readFileSync } from 'node:fs';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { trainBPE } from '../../train/bpe-trainer.js';
import { writeHFTokenizerJson } from '../../tokenizer/hf-tokenizer-json.js';
import { collect, integer, outputOption } from '../options.js';
import { withProgress } from '../progress.js';

function tokenizerTrainCommand(): CommandUnknownOpts {
  return new Command('train')
    .summary('train a byte-level BPE tokenizer (GPT-2 pre-tokenization) and write a tokenizer.json')
    .argument('<CORPUS>', 'UTF-8 text to learn the merges from')
    .addOption(new Option('--vocab-size <n>', 'final vocab size, including specials and the 256 bytes').argParser(integer(1)).makeOptionMandatory())
    .addOption(new Option('--special <token>', 'special token (repeatable); gets an id, is never merged').argParser(collect))
    .addOption(outputOption('where to write the tokenizer.json').makeOptionMandatory())
    .action(async (corpus, o) => {
      const started = performance.now();
      const text = readFileSync(corpus, 'utf8');
      // training may stop early (no pair left to merge), short of its total
      const bpe = await withProgress('merge', 1, (progress) =>
        trainBPE(text, { vocabSize: o.vocabSize, specials: o.special ?? [], onProgress: (done, total) => progress.update(done, '', total) }));
      writeHFTokenizerJson(o.output, bpe);
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      console.log(`wrote ${o.output}: ${bpe.vocab.length} tokens, ${bpe.merges.length} merges in ${seconds} s`);
    });
}

export function tokenizerCommand(): CommandUnknownOpts {
  return new Command('tokenizer')
    .summary('train a tokenizer: kiln tokenizer train CORPUS --vocab-size N -o tokenizer.json')
    .addCommand(tokenizerTrainCommand());
}
