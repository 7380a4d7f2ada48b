// Cutting special tokens out of text before tokenizing the rest, as llama.cpp's tokenizer_st_partition does:
// for each special token, longest text first, every occurrence in every remaining text fragment becomes that
// token. User-defined tokens are always cut out; control and unknown tokens only when parsing specials.

import { Attr, type Vocab } from './vocab.js';

/** a piece of text still to tokenize, or a token id already decided */
export type Fragment = string | number;

const TRAILING_SPACE = /[ \t\n\v\f\r]+$/;
const LEADING_SPACE = /^[ \t\n\v\f\r]+/;

export function partitionSpecial(vocab: Vocab, text: string, parseSpecial: boolean): Fragment[] {
  let fragments: Fragment[] = text === '' ? [] : [text];
  for (const id of vocab.specialTokens) {
    const attr = vocab.attrs[id];
    if (!parseSpecial && attr & (Attr.CONTROL | Attr.UNKNOWN)) continue;
    const special = vocab.tokens[id];
    if (!text.includes(special)) continue;
    const next: Fragment[] = [];
    for (const fragment of fragments) {
      if (typeof fragment === 'number') {
        next.push(fragment);
        continue;
      }
      let rest = fragment;
      for (let at = rest.indexOf(special); at >= 0; at = rest.indexOf(special)) {
        let left = rest.slice(0, at);
        if (attr & Attr.LSTRIP) left = left.replace(TRAILING_SPACE, '');
        if (left !== '') next.push(left);
        next.push(id);
        rest = rest.slice(at + special.length);
        if (attr & Attr.RSTRIP) rest = rest.replace(LEADING_SPACE, '');
      }
      if (rest !== '') next.push(rest);
    }
    fragments = next;
  }
  return fragments;
}
