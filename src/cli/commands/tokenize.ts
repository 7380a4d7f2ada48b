// `kiln tokenize MODEL TEXT [--no-bos] [--no-parse-special] [--ids]`: the token ids a model's tokenizer makes
// of TEXT, one `id 'piece'` line per token (like llama.cpp's llama-tokenize), or a JSON array with --ids.

import { optBool, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { readGGUFHeader } from '../../gguf/reader.js';
import { Tokenizer } from '../../tokenizer/index.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A piece as text; bytes that are not whole UTF-8 characters (part of a split emoji) as \xHH. */
function showPiece(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return [...bytes].map((b) => (b < 0x80 ? String.fromCharCode(b) : `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
  }
}

export const tokenizeCommand: Command = {
  name: 'tokenize',
  usage: 'MODEL TEXT [--no-bos] [--no-parse-special] [--ids]',
  summary: 'show the tokens a model\'s tokenizer makes of a text',
  options: [
    { name: 'no-bos', boolean: true, description: 'do not add the BOS/EOS tokens the model asks for' },
    { name: 'no-parse-special', boolean: true, description: 'treat the text of special tokens (e.g. "<s>") as plain text' },
    { name: 'ids', boolean: true, description: 'print only a JSON array of the ids' },
  ],
  run(args: ParsedArgs): void {
    if (args.positionals.length !== 2) throw new UsageError('expected MODEL and TEXT');
    const [modelPath, text] = args.positionals;
    const tokenizer = Tokenizer.fromMetadata(readGGUFHeader(modelPath).metadata);
    const ids = tokenizer.encode(text, { addSpecial: !optBool(args, 'no-bos'), parseSpecial: !optBool(args, 'no-parse-special') });
    if (optBool(args, 'ids')) {
      console.log(JSON.stringify(ids));
      return;
    }
    for (const id of ids) console.log(`${String(id).padStart(6)} '${showPiece(tokenizer.decodeToken(id, { special: true }))}'`);
  },
};
