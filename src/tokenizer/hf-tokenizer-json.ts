// Hugging Face `tokenizer.json` for a byte-level BPE: model type "BPE" with vocab and merges spelled in GPT-2's
// byte-to-unicode characters, specials as `added_tokens`, ByteLevel pre-tokenizer and decoder.

import { readFileSync, writeFileSync } from 'node:fs';
import { bytesToUnicode, unicodeToBytes } from './bytes-to-unicode.js';
import type { SpecialToken, TrainedBPE } from '../train/bpe-trainer.js';

export type { SpecialToken, TrainedBPE } from '../train/bpe-trainer.js';

export class HFTokenizerJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HFTokenizerJsonError';
  }
}

const utf8 = new TextEncoder();
const BYTE_LEVEL = { add_prefix_space: false, trim_offsets: true, use_regex: true };

/** tokenizer.json text; the vocab is written in id order (JSON.stringify would hoist integer-like keys such as "0"). */
export function hfTokenizerJsonText(bpe: TrainedBPE): string {
  const specialText = new Map(bpe.specials.map((s) => [s.id, s.content]));
  const tokens = bpe.vocab.map((bytes, id) => specialText.get(id) ?? bytesToUnicode(bytes));
  const doc = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: bpe.specials.map((s) => ({
      id: s.id, content: s.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...BYTE_LEVEL },
    post_processor: { type: 'ByteLevel', ...BYTE_LEVEL },
    decoder: { type: 'ByteLevel', ...BYTE_LEVEL },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: {},
      merges: bpe.merges.map(([a, b]) => `${bytesToUnicode(a)} ${bytesToUnicode(b)}`),
    },
  };
  const vocabLines = tokens.map((t, id) => `      ${JSON.stringify(t)}: ${id}`).join(',\n');
  // the only unescaped `"vocab": {}` in the text is the model's key (quotes inside strings are escaped); a function
  // inserts the lines as they are (a replacement string would read "$$" in a token as "$")
  return JSON.stringify(doc, null, 2).replace('"vocab": {}', () => `"vocab": {\n${vocabLines}\n    }`) + '\n';
}

export function writeHFTokenizerJson(path: string, bpe: TrainedBPE): void {
  writeFileSync(path, hfTokenizerJsonText(bpe));
}

export function readHFTokenizerJson(path: string): TrainedBPE {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new HFTokenizerJsonError(`${path}: ${(e as Error).message}`);
  }
  return parseHFTokenizerJson(doc);
}

/** Checks and converts a parsed tokenizer.json; every id must be unique and the ids must cover 0..n-1. */
export function parseHFTokenizerJson(doc: unknown): TrainedBPE {
  const model = field(doc, 'model');
  if (field(model, 'type') !== 'BPE') throw new HFTokenizerJsonError('model.type must be "BPE"');
  const vocabObject = field(model, 'vocab');
  if (typeof vocabObject !== 'object' || vocabObject === null) throw new HFTokenizerJsonError('model.vocab must be an object');
  const addedTokens = field(doc, 'added_tokens') ?? [];
  if (!Array.isArray(addedTokens)) throw new HFTokenizerJsonError('added_tokens must be an array');

  // id -> token text, from the vocab and the added tokens (an added token usually repeats a vocab entry)
  const textById = new Map<number, string>();
  const specials: SpecialToken[] = [];
  const claim = (id: unknown, text: string): number => {
    if (!Number.isInteger(id) || (id as number) < 0) throw new HFTokenizerJsonError(`token ${JSON.stringify(text)} has a bad id ${String(id)}`);
    const known = textById.get(id as number);
    if (known !== undefined && known !== text) throw new HFTokenizerJsonError(`id ${id} is both ${JSON.stringify(known)} and ${JSON.stringify(text)}`);
    textById.set(id as number, text);
    return id as number;
  };
  for (const [text, id] of Object.entries(vocabObject)) claim(id, text);
  const addedIds = new Set<number>();
  for (const added of addedTokens) {
    const content = field(added, 'content');
    if (typeof content !== 'string') throw new HFTokenizerJsonError('an added token has no content');
    const id = claim(field(added, 'id'), content);
    addedIds.add(id);
    if (field(added, 'special') === true) specials.push({ id, content });
  }

  // ids are distinct, so "all below the count" means no holes; the array size is bounded by the entry count
  const vocab: Uint8Array[] = new Array(textById.size);
  for (const [id, text] of textById) {
    if (id >= textById.size) throw new HFTokenizerJsonError(`token ids are not contiguous: ${id} >= ${textById.size} tokens`);
    vocab[id] = addedIds.has(id) ? utf8.encode(text) : tokenBytes(text);
  }

  const mergesField = field(model, 'merges') ?? [];
  if (!Array.isArray(mergesField)) throw new HFTokenizerJsonError('model.merges must be an array');
  const merges = mergesField.map((m): [Uint8Array, Uint8Array] => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw new HFTokenizerJsonError(`bad merge ${JSON.stringify(m)}: expected "a b" or ["a", "b"]`);
    }
    return [tokenBytes(pair[0]), tokenBytes(pair[1])];
  });
  specials.sort((x, y) => x.id - y.id);
  return { vocab, merges, specials };
}

function tokenBytes(text: string): Uint8Array {
  const bytes = unicodeToBytes(text);
  if (bytes === null) throw new HFTokenizerJsonError(`token ${JSON.stringify(text)} is not in byte-level (byte-to-unicode) form`);
  return bytes;
}

function field(value: unknown, name: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HFTokenizerJsonError(`expected an object holding "${name}"`);
  }
  return (value as Record<string, unknown>)[name];
}
