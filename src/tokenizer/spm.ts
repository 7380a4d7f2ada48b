// SentencePiece BPE (`tokenizer.ggml.model` = "llama"), as llama.cpp's llm_tokenizer_spm does it: start from
// single characters, repeatedly merge the adjacent pair whose joined text is the token with the highest score
// (ties: leftmost), then emit each remaining piece as its token, or as <0xXX> byte tokens if it is none.

import { mergeSymbols } from './bigram-queue.js';
import { utf8Bytes } from './unicode.js';
import { TokenizerError, type Vocab } from './vocab.js';

export class SpmTokenizer {
  /** [256] token id of each byte value */
  private readonly byteTokens: Int32Array;

  constructor(private readonly vocab: Vocab) {
    this.byteTokens = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      // llama.cpp falls back to a token that is the byte itself, which only an ASCII byte can be
      const plain = b < 0x80 ? vocab.tokenToId.get(String.fromCharCode(b)) : undefined;
      this.byteTokens[b] = vocab.tokenToId.get(hex) ?? plain ?? vocab.special.unk ?? -1;
    }
  }

  /** Appends the ids of `text` (spaces already replaced by ▁) to `out`. */
  encode(text: string, out: number[]): void {
    // symbols: one per code point, merged highest score first (the key is the negated score)
    const start: number[] = [], length: number[] = [];
    for (let offset = 0; offset < text.length;) {
      const width = text.codePointAt(offset)! > 0xffff ? 2 : 1;
      start.push(offset);
      length.push(width);
      offset += width;
    }
    if (start.length === 0) return;
    const next = mergeSymbols(text, start, length, (left, right) => {
      const id = this.vocab.tokenToId.get(left + right);
      return id === undefined ? undefined : -this.vocab.scores[id];
    });

    for (let i = 0; i !== -1; i = next[i]) {
      const piece = text.substr(start[i], length[i]);
      const id = this.vocab.tokenToId.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const byte of utf8Bytes(piece)) {
        if (this.byteTokens[byte] < 0) throw new TokenizerError(`no token for byte 0x${byte.toString(16)} and no unknown token`);
        out.push(this.byteTokens[byte]);
      }
    }
  }
}
