// `kiln tokenize MODEL TEXT [--no-bos] [--no-parse-special] [--ids]`: the token ids a model's tokenizer makes
// of TEXT, one `id 'piece'` line per token (like llama.cpp's llama-tokenize), or a JSON array with --ids.

import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { readModelMetadata } from '../../hf/checkpoint.js';
import { Tokenizer } from '../../tokenizer/index.js';
import { MODEL_DESCRIPTION } from '../options.js';
import { modelPath } from '../default-model.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A piece as text; bytes that are not whole UTF-8 characters (part of a split emoji) as \xHH. */
function showPiece(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return [...bytes].map((b) => (b < 0x80 ? String.fromCharCode(b) : `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
  }
}

export function tokenizeCommand(): CommandUnknownOpts {
  return new Command('tokenize')
    .summary('show the tokens a model\'s tokenizer makes of a text')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .argument('<TEXT>', 'the text')
    .option('--no-bos', 'do not add the BOS/EOS tokens the model asks for')
    .option('--no-parse-special', 'treat the text of special tokens (e.g. "<s>") as plain text')
    .option('--ids', 'print only a JSON array of the ids')
    .action((modelArg, text, o) => {
      // only the header is needed
      const tokenizer = Tokenizer.fromMetadata(readModelMetadata(modelPath(modelArg)));
      const ids = tokenizer.encode(text, { addSpecial: o.bos, parseSpecial: o.parseSpecial });
      if (o.ids) {
        console.log(JSON.stringify(ids));
        return;
      }
      for (const id of ids) console.log(`${String(id).padStart(6)} '${showPiece(tokenizer.decodeToken(id, { special: true }))}'`);
    });
}
