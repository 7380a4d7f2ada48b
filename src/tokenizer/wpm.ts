// WordPiece (`tokenizer.ggml.model` = "bert"), as llama.cpp's llm_tokenizer_wpm does it: normalize (accents
// removed, lowercase), split at whitespace and around punctuation and CJK ideographs, then cut each word
// greedily into the longest vocabulary entries. The GGUF vocabulary marks word starts with ▁ (the converter
// turned "##x" into "x" and "x" into "▁x"), so a word is matched as "▁" + word.

import { codePoints, isControl, isMark, isPunctuation, isSymbol, isWhitespace, nfdBase, toLower } from './unicode.js';
import { TokenizerError, type Vocab } from './vocab.js';

/** CJK ideograph blocks that BERT's basic tokenizer splits into single characters (ranges as in HF's code) */
function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** Normalized words of `text`. */
export function wordPieceWords(text: string): string[] {
  const words = [''];
  const endWord = () => {
    if (words[words.length - 1] !== '') words.push('');
  };
  for (const original of codePoints(text)) {
    const cp = nfdBase(original);
    if (isWhitespace(cp)) {
      endWord();
      continue;
    }
    if (cp === 0 || cp === 0xfffd || isControl(cp) || isMark(cp)) continue;
    const ch = String.fromCodePoint(toLower(cp));
    if (isPunctuation(cp) || (cp < 0x7f && isSymbol(cp)) || isChineseChar(cp)) {
      endWord();
      words[words.length - 1] = ch; // a word of its own
      words.push('');
    } else {
      words[words.length - 1] += ch;
    }
  }
  if (words[words.length - 1] === '') words.pop();
  return words;
}

export class WpmTokenizer {
  constructor(private readonly vocab: Vocab) {}

  /** Appends the ids of `text` to `out`. */
  encode(text: string, out: number[]): void {
    const { tokenToId, maxTokenLength, special } = this.vocab;
    for (const word of wordPieceWords(text)) {
      const phantom = '\u2581' + word;
      const bounds = [0]; // UTF-16 offset of each code point boundary in `phantom`
      for (const ch of phantom) bounds.push(bounds[bounds.length - 1] + ch.length);
      const n = bounds.length - 1;
      const before = out.length;
      for (let i = 0; i < n;) {
        let j = Math.min(n, i + maxTokenLength);
        for (; j > i; j--) {
          const id = tokenToId.get(phantom.slice(bounds[i], bounds[j]));
          if (id !== undefined) {
            out.push(id);
            break;
          }
        }
        if (j === i) { // no piece fits here: the whole word becomes the unknown token
          out.length = before;
          break;
        }
        i = j;
      }
      if (out.length === before) {
        if (special.unk === null) throw new TokenizerError(`"${word}" has no WordPiece tokens and the vocabulary has no unknown token`);
        out.push(special.unk);
      }
    }
  }
}
