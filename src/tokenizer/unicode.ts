// Code point classes and conversions with the meaning llama.cpp's unicode tables give them
// (generated there from Python's `regex` \p{..} classes, `regex` \s, str.lower() and NFD).

const LETTER = /\p{L}/u;
const NUMBER = /\p{N}/u;
const MARK = /\p{M}/u;
const PUNCTUATION = /\p{P}/u;
const SYMBOL = /\p{S}/u;
/** \p{C}: control, format, private use, surrogate and unassigned code points */
const CONTROL = /\p{C}/u;
/** the Unicode White_Space property (what `regex`'s \s matches; JS \s differs at U+0085 and U+FEFF) */
const WHITESPACE = /\p{White_Space}/u;

function test(re: RegExp, cp: number): boolean {
  return re.test(String.fromCodePoint(cp));
}

export const isLetter = (cp: number): boolean => test(LETTER, cp);
export const isNumber = (cp: number): boolean => test(NUMBER, cp);
export const isMark = (cp: number): boolean => test(MARK, cp);
export const isPunctuation = (cp: number): boolean => test(PUNCTUATION, cp);
export const isSymbol = (cp: number): boolean => test(SYMBOL, cp);
export const isControl = (cp: number): boolean => test(CONTROL, cp);
export const isWhitespace = (cp: number): boolean => test(WHITESPACE, cp);

/** First code point of the lowercase form (llama.cpp's unicode_tolower). */
export function toLower(cp: number): number {
  return String.fromCodePoint(cp).toLowerCase().codePointAt(0)!;
}

/** First code point of the NFD decomposition: a letter without its accents (llama.cpp's NFD table). */
export function nfdBase(cp: number): number {
  return String.fromCodePoint(cp).normalize('NFD').codePointAt(0)!;
}

export function codePoints(text: string): number[] {
  const out: number[] = [];
  for (const ch of text) out.push(ch.codePointAt(0)!);
  return out;
}

const utf8Encoder = new TextEncoder();

export function utf8Bytes(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Replaces every whitespace character outside ASCII with U+000B (vertical tab), one UTF-16 unit for one,
 *  as llama.cpp does before running a pre-tokenizer regex: such characters then match only \s. */
export function foldWhitespace(text: string): string {
  return text.replace(/[^\P{White_Space}\t\n\v\f\r ]/gu, '\v');
}
