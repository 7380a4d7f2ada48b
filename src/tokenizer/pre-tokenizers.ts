// Byte-level BPE pre-tokenizers: the regexes that cut text into words before merging, chosen by
// `tokenizer.ggml.pre`, as llama.cpp's llm_tokenizer_bpe lists them. Each regex in a list splits every piece
// the previous ones produced; the text between matches is kept as a piece of its own.
// Sources are written with \s / \S and compiled with \s = \p{White_Space}; the text is matched after
// foldWhitespace(), so non-ASCII whitespace matches only \s, as in llama.cpp.

import { foldWhitespace } from './unicode.js';

/** GPT-2's split; llama.cpp runs its exact-match custom splitter, which also ends in `|\s+`. */
const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
/** Llama 3's split with the case-insensitive contractions spelled out. */
const LLAMA3 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** Upper/lower-case letter runs as llama.cpp adapts them: "upper" = a letter other than a-z, "lower" = other than A-Z. */
const UPPER = String.raw`(?:(?=\p{L})[^a-z])`;
const LOWER = String.raw`(?:(?=\p{L})[^A-Z])`;
const CONTRACTION = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;
const TEKKEN = String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+|[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const GPT4O = String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+${CONTRACTION}?|[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*${CONTRACTION}?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** Cased letters (Lu, Ll, Lt) as DeepSeek's tokenizer.json enumerates them. */
const DEEPSEEK_CASED = String.raw`A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}` +
  String.raw`\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}` +
  String.raw`\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}` +
  String.raw`\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}` +
  String.raw`\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}` +
  String.raw`\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}` +
  String.raw`\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}` +
  String.raw`\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}` +
  String.raw`\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}` +
  String.raw`\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}` +
  String.raw`\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}`;
/** CJK ideographs, U+0800..U+4E00 and Hangul, as DeepSeek's tokenizer.json writes the range */
const DEEPSEEK_CJK = String.raw`[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+`;

const DEEPSEEK_LLM = [
  String.raw`[\r\n]`,
  String.raw`\s?[${DEEPSEEK_CASED}]+`,
  String.raw`\s?[!-/:-~\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+`,
  String.raw`\s+$`,
  DEEPSEEK_CJK,
  String.raw`\p{N}+`,
];
const DEEPSEEK_CODER = [String.raw`[\r\n]`, String.raw`\s?\p{L}+`, String.raw`\s?\p{P}+`, DEEPSEEK_CJK, String.raw`\p{N}`];
const FALCON = ['[\\p{P}$+<=>^~|`]+', GPT2, '[0-9][0-9][0-9]'];
const STARCODER = [String.raw`\p{N}`, GPT2];
const CHAMELEON = [
  '<sentinel:[0-9]+>',
  '(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z',
  '([\\t\\n]|    |  )',
  String.raw`\p{N}`,
  '[\\p{P}!-/:-@\\[-`{-~]',
  GPT2,
];
const DEFAULT = ['[\\p{P}$+<=>^~|]+', GPT2, String.raw`\p{N}+`, '[0-9][0-9][0-9]'];

export interface PreTokenizer {
  regexes: readonly RegExp[];
  /** detokenize removes spaces before ?!., and around apostrophes (llama.cpp clean_spaces) */
  cleanSpaces: boolean;
  /** a word that is itself a token is emitted whole, without merging */
  ignoreMerges: boolean;
  /** default for add_bos when the file does not say */
  addBos: boolean;
}

interface Spec { regexes: string[]; cleanSpaces: boolean; ignoreMerges?: boolean; addBos?: boolean }

const SPECS: Record<string, Spec> = {};
function define(names: string[], spec: Spec): void {
  for (const name of names) SPECS[name] = spec;
}
define(['default'], { regexes: DEFAULT, cleanSpaces: true });
define(['llama3', 'llama-v3', 'llama-bpe', 'falcon3'], { regexes: [LLAMA3], cleanSpaces: true, ignoreMerges: true, addBos: true });
define(['dbrx', 'smaug-bpe'], { regexes: [LLAMA3], cleanSpaces: true });
define(['deepseek-llm'], { regexes: DEEPSEEK_LLM, cleanSpaces: false });
define(['deepseek-coder'], { regexes: DEEPSEEK_CODER, cleanSpaces: false });
define(['falcon'], { regexes: FALCON, cleanSpaces: true });
define(['gpt-2', 'phi-2', 'mpt', 'olmo', 'jais', 'roberta-bpe', 'gigachat', 'jina-es', 'jina-de', 'jina-v1-en',
  'jina-v2-es', 'jina-v2-de', 'jina-v2-code'], { regexes: [GPT2], cleanSpaces: true });
define(['starcoder', 'refact', 'codeshell', 'exaone', 'minerva-7b'], { regexes: STARCODER, cleanSpaces: true });
define(['command-r', 'smollm'], { regexes: STARCODER, cleanSpaces: false });
define(['qwen2', 'deepseek-r1-qwen', 'megrez'], { regexes: [QWEN2], cleanSpaces: false });
define(['stablelm2'], { regexes: [QWEN2], cleanSpaces: true });
define(['tekken'], { regexes: [TEKKEN], cleanSpaces: false, ignoreMerges: true, addBos: true });
define(['chameleon'], { regexes: CHAMELEON, cleanSpaces: false, addBos: true });
define(['gpt-4o'], { regexes: [GPT4O], cleanSpaces: false });

function compile(source: string): RegExp {
  return new RegExp(source.replaceAll('\\s', '\\p{White_Space}').replaceAll('\\S', '\\P{White_Space}'), 'gu');
}

/** The pre-tokenizer for a `tokenizer.ggml.pre` name, or undefined for a name llama.cpp does not know either. */
export function preTokenizer(name: string): PreTokenizer | undefined {
  const spec = SPECS[name];
  if (spec === undefined) return undefined;
  return {
    regexes: spec.regexes.map(compile),
    cleanSpaces: spec.cleanSpaces,
    ignoreMerges: spec.ignoreMerges ?? false,
    addBos: spec.addBos ?? false,
  };
}

/** Cuts text into words: every regex splits each current piece into its matches and the gaps between them. */
export function splitWords(text: string, regexes: readonly RegExp[]): string[] {
  const folded = foldWhitespace(text);
  let bounds = [0, text.length]; // piece i is text[bounds[i], bounds[i+1])
  for (const re of regexes) {
    const next = [0];
    for (let p = 0; p + 1 < bounds.length; p++) {
      const start = bounds[p], end = bounds[p + 1];
      const piece = folded.slice(start, end);
      let done = 0; // end of the last match, relative to the piece
      for (const m of piece.matchAll(re)) {
        if (m[0].length === 0) continue;
        if (m.index > done) next.push(start + m.index);
        done = m.index + m[0].length;
        next.push(start + done);
      }
      if (done < piece.length) next.push(end);
    }
    bounds = next;
  }
  const words: string[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) words.push(text.slice(bounds[i], bounds[i + 1]));
  return words;
}
