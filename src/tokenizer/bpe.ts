// Byte-level BPE (`tokenizer.ggml.model` = "gpt2"), as llama.cpp's llm_tokenizer_bpe does it: pre-tokenize
// into words, write each word's UTF-8 bytes as GPT-2 byte characters, then repeatedly merge the adjacent
// pair with the lowest merge rank (ties: leftmost) and emit each final piece as its token.

import { bytesToUnicode } from './bytes-to-unicode.js';
import { mergeSymbols } from './bigram-queue.js';
import { splitWords, type PreTokenizer } from './pre-tokenizers.js';
import { utf8Bytes } from './unicode.js';
import type { Vocab } from './vocab.js';

/** words remembered with their ids; the cache is emptied when it reaches this size */
const CACHE_LIMIT = 65536;

export class BpeTokenizer {
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly vocab: Vocab, private readonly pre: PreTokenizer) {}

  /** Appends the ids of `text` to `out`. */
  encode(text: string, out: number[]): void {
    for (const word of splitWords(text, this.pre.regexes)) {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(bytesToUnicode(utf8Bytes(word)));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** `word` is in GPT-2 byte characters, one UTF-16 unit each. */
  private encodeWord(word: string): number[] {
    const { tokenToId, mergeRanks } = this.vocab;
    if (this.pre.ignoreMerges) {
      const id = tokenToId.get(word);
      if (id !== undefined) return [id];
    }
    // symbols: one per character, merged by rank
    const n = word.length;
    const start = Array.from({ length: n }, (_, i) => i);
    const length = new Array<number>(n).fill(1);
    const next = mergeSymbols(word, start, length, (left, right) => mergeRanks.get(left + ' ' + right));

    const ids: number[] = [];
    for (let i = n > 0 ? 0 : -1; i !== -1; i = next[i]) {
      const piece = word.substr(start[i], length[i]);
      const id = tokenToId.get(piece);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // llama.cpp falls back to single-byte tokens, which exist only for the ASCII characters
      for (const ch of piece) {
        const byteId = ch.charCodeAt(0) < 0x80 ? tokenToId.get(ch) : undefined;
        if (byteId !== undefined) ids.push(byteId);
      }
    }
    return ids;
  }
}
