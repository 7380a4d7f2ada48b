// Byte-level BPE training, GPT-2 style. Reading order:
//   1. split the corpus on the special tokens and count GPT-2 pre-tokens ("words")
//   2. initial vocab: specials, then the 256 bytes in GPT-2's byte-to-unicode order
//   3. count adjacent token pairs over all words (weighted by word count), index pair -> words
//   4. repeatedly merge the best pair (highest count; ties: greater (bytes_a, bytes_b)), re-counting only
//      the words that contain it, until the vocab is full or no pair is left.

import { BYTE_TO_CHAR } from '../tokenizer/bytes-to-unicode.js';

/** GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other-symbol runs, whitespace. */
export const GPT2_PRETOKENIZER = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Pair ids are packed as a * MAX_VOCAB + b, which must stay below 2^53. */
const MAX_VOCAB = 1 << 24;

export class BpeTrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BpeTrainingError';
  }
}

export interface SpecialToken {
  id: number;
  content: string;
}

/** A byte-level BPE tokenizer: what training produces and what a tokenizer.json holds. */
export interface TrainedBPE {
  /** id -> token bytes; a special token's entry is its UTF-8 text */
  vocab: Uint8Array[];
  /** merge rules in priority order (first = applied first), each a pair of token byte strings */
  merges: [Uint8Array, Uint8Array][];
  /** special tokens: never split, never merged */
  specials: SpecialToken[];
}

export interface TrainOptions {
  /** final vocab size, specials and the 256 bytes included */
  vocabSize: number;
  specials: readonly string[];
  /** called after each merge */
  onProgress?: (mergesDone: number, mergesTotal: number) => void;
}

const utf8 = new TextEncoder();

/** The 256 byte values in the order of their GPT-2 characters: printable bytes first, then the remapped ones. */
const BYTES_IN_CHAR_ORDER: readonly number[] = Array.from({ length: 256 }, (_, b) => b).sort(
  (x, y) => BYTE_TO_CHAR[x].codePointAt(0)! - BYTE_TO_CHAR[y].codePointAt(0)!,
);

export function trainBPE(text: string, options: TrainOptions): TrainedBPE {
  const { vocabSize, specials } = options;
  checkOptions(vocabSize, specials);
  const wordCounts = countPreTokens(text, specials);

  // vocab[id] = bytes; tokenKey[id] = the same bytes as a latin1 string, so `<` compares them as byte strings
  const vocab: Uint8Array[] = specials.map((s) => utf8.encode(s));
  const byteToId = new Int32Array(256);
  for (const b of BYTES_IN_CHAR_ORDER) {
    byteToId[b] = vocab.length;
    vocab.push(Uint8Array.of(b));
  }
  const tokenKey = vocab.map(latin1);

  // words[w]: token ids of distinct pre-token w; wordCount[w]: how often it occurs
  const words: Int32Array[] = [];
  const wordCount: number[] = [];
  for (const [word, count] of wordCounts) {
    words.push(Int32Array.from(utf8.encode(word), (b) => byteToId[b]));
    wordCount.push(count);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  for (let w = 0; w < words.length; w++) addWordPairs(w, words[w], wordCount[w], pairCount, pairWords, null);

  const heap = new PairHeap(tokenKey);
  for (const [pair, count] of pairCount) heap.push(count, pair);

  const merges: [Uint8Array, Uint8Array][] = [];
  const mergesTotal = vocabSize - vocab.length;
  while (vocab.length < vocabSize) {
    const best = popCurrentBest(heap, pairCount);
    if (best === null) break; // every word is a single token
    const a = Math.floor(best / MAX_VOCAB);
    const b = best - a * MAX_VOCAB;
    const merged = vocab.length;
    vocab.push(concatBytes(vocab[a], vocab[b]));
    tokenKey.push(tokenKey[a] + tokenKey[b]);
    merges.push([vocab[a], vocab[b]]);

    const changed = new Set<number>();
    for (const w of [...pairWords.get(best)!]) {
      removeWordPairs(w, words[w], wordCount[w], pairCount, pairWords, changed);
      words[w] = mergeInWord(words[w], a, b, merged);
      addWordPairs(w, words[w], wordCount[w], pairCount, pairWords, changed);
    }
    for (const pair of changed) {
      const count = pairCount.get(pair);
      if (count !== undefined) heap.push(count, pair);
    }
    options.onProgress?.(merges.length, mergesTotal);
  }
  return { vocab, merges, specials: specials.map((content, id) => ({ id, content })) };
}

function checkOptions(vocabSize: number, specials: readonly string[]): void {
  if (new Set(specials).size !== specials.length) throw new BpeTrainingError('special tokens must be distinct');
  if (specials.some((s) => s.length === 0)) throw new BpeTrainingError('a special token cannot be empty');
  const minimum = specials.length + 256;
  if (!Number.isInteger(vocabSize) || vocabSize < minimum || vocabSize > MAX_VOCAB) {
    throw new BpeTrainingError(`vocab size must be an integer in [${minimum}, ${MAX_VOCAB}] (specials + 256 bytes), got ${vocabSize}`);
  }
}

/** Pre-token -> occurrences. The text is split on the specials first so no pre-token spans one. */
export function countPreTokens(text: string, specials: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const chunk of splitOnSpecials(text, specials)) {
    for (const match of chunk.matchAll(GPT2_PRETOKENIZER)) {
      const word = match[0];
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  return counts;
}

function splitOnSpecials(text: string, specials: readonly string[]): string[] {
  if (specials.length === 0) return [text];
  // longest first, so a special that contains another wins
  const alternatives = [...specials].sort((x, y) => y.length - x.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return text.split(new RegExp(alternatives.join('|'), 'u'));
}

function addWordPairs(
  w: number, word: Int32Array, count: number,
  pairCount: Map<number, number>, pairWords: Map<number, Set<number>>, changed: Set<number> | null,
): void {
  for (let i = 0; i + 1 < word.length; i++) {
    const pair = word[i] * MAX_VOCAB + word[i + 1];
    pairCount.set(pair, (pairCount.get(pair) ?? 0) + count);
    let set = pairWords.get(pair);
    if (set === undefined) pairWords.set(pair, (set = new Set()));
    set.add(w);
    changed?.add(pair);
  }
}

function removeWordPairs(
  w: number, word: Int32Array, count: number,
  pairCount: Map<number, number>, pairWords: Map<number, Set<number>>, changed: Set<number>,
): void {
  for (let i = 0; i + 1 < word.length; i++) {
    const pair = word[i] * MAX_VOCAB + word[i + 1];
    const left = pairCount.get(pair)! - count;
    if (left === 0) {
      pairCount.delete(pair);
      pairWords.delete(pair);
    } else {
      pairCount.set(pair, left);
      pairWords.get(pair)!.delete(w);
    }
    changed.add(pair);
  }
}

/** Replace every non-overlapping (a, b), left to right, with `merged`. */
function mergeInWord(word: Int32Array, a: number, b: number, merged: number): Int32Array {
  const out = new Int32Array(word.length);
  let n = 0;
  for (let i = 0; i < word.length; i++) {
    if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
      out[n++] = merged;
      i++;
    } else {
      out[n++] = word[i];
    }
  }
  return out.subarray(0, n);
}

/** Pops entries until one still matches the pair's live count (older entries are stale); null when empty. */
function popCurrentBest(heap: PairHeap, pairCount: Map<number, number>): number | null {
  while (heap.size > 0) {
    const { count, pair } = heap.pop();
    if (pairCount.get(pair) === count) return pair;
  }
  return null;
}

/** Max-heap of (count, pair) with lazy deletion: a pair is pushed again whenever its count changes. */
class PairHeap {
  private readonly entries: { count: number; pair: number }[] = [];
  constructor(private readonly tokenKey: readonly string[]) {}

  get size(): number {
    return this.entries.length;
  }

  push(count: number, pair: number): void {
    const e = this.entries;
    e.push({ count, pair });
    for (let i = e.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      [e[i], e[parent]] = [e[parent], e[i]];
      i = parent;
    }
  }

  pop(): { count: number; pair: number } {
    const e = this.entries;
    const top = e[0];
    const last = e.pop()!;
    if (e.length > 0) {
      e[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1, r = l + 1;
        let best = i;
        if (l < e.length && this.above(l, best)) best = l;
        if (r < e.length && this.above(r, best)) best = r;
        if (best === i) break;
        [e[i], e[best]] = [e[best], e[i]];
        i = best;
      }
    }
    return top;
  }

  /** entry i ranks above entry j: higher count, then the greater (bytes_a, bytes_b) */
  private above(i: number, j: number): boolean {
    const x = this.entries[i], y = this.entries[j];
    if (x.count !== y.count) return x.count > y.count;
    const xa = this.tokenKey[Math.floor(x.pair / MAX_VOCAB)], ya = this.tokenKey[Math.floor(y.pair / MAX_VOCAB)];
    if (xa !== ya) return xa > ya;
    return this.tokenKey[x.pair % MAX_VOCAB] > this.tokenKey[y.pair % MAX_VOCAB];
  }
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function concatBytes(x: Uint8Array, y: Uint8Array): Uint8Array {
  const out = new Uint8Array(x.length + y.length);
  out.set(x);
  out.set(y, x.length);
  return out;
}
