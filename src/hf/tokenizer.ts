// The tokenizer of a Hugging Face folder as GGUF `tokenizer.*` metadata, as llama.cpp's converter writes it:
// SentencePiece `tokenizer.model` → model "llama" (_create_vocab_sentencepiece), byte-level BPE `tokenizer.json` →
// model "gpt2" (_set_vocab_gpt2); then SpecialVocab: merges, special token ids (tokenizer_config.json texts looked up
// among tokenizer.json's added tokens, then config.json's `*_token_id`), add_bos/add_eos, the chat template.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { metaArray, metaBool, metaString, metaU32 } from '../gguf/writer.js';
import { GGUFValueType, type GGUFValue } from '../gguf/types.js';
import { bytesToUnicode } from '../tokenizer/bytes-to-unicode.js';
import { parseHFTokenizerJson } from '../tokenizer/hf-tokenizer-json.js';
import { parseSentencePieceModel, SentencePieceModelError } from '../tokenizer/sentencepiece-model.js';
import { TokenType } from '../tokenizer/vocab.js';
import { HFConfig } from './config.js';
import { HFError } from './safetensors.js';

/** SpecialVocab's token kinds, in its order, with their GGUF keys (gguf-py's spellings, "seperator" included) */
export const SPECIAL_KEYS: Readonly<Record<string, string>> = {
  bos: 'tokenizer.ggml.bos_token_id', eos: 'tokenizer.ggml.eos_token_id', unk: 'tokenizer.ggml.unknown_token_id',
  sep: 'tokenizer.ggml.seperator_token_id', pad: 'tokenizer.ggml.padding_token_id', cls: 'tokenizer.ggml.cls_token_id',
  mask: 'tokenizer.ggml.mask_token_id',
};

/** unused tokens the converter may add to reach config.json's vocab_size (real checkpoints pad to a multiple of 64 or 128) */
const MAX_PADDING = 65536;

/** SentencePiece's Type enum → GGUF token type (the converter: USER_DEFINED pieces count as NORMAL) */
const PIECE_TYPES: Record<number, TokenType> = { 2: TokenType.UNKNOWN, 3: TokenType.CONTROL, 5: TokenType.UNUSED, 6: TokenType.BYTE };

interface Vocabulary {
  entries: [string, GGUFValue][];
  /** added tokens' texts → ids (from tokenizer.json), where special token texts are looked up */
  added: Map<string, number>;
  merges?: string[];
}

/** The vocabulary's keys in the converter's order: model, pre-tokenizer, tokens, scores (SentencePiece only), types. */
function vocabularyEntries(model: string, pre: string, tokens: string[], types: number[], scores?: number[]): [string, GGUFValue][] {
  return [
    ['tokenizer.ggml.model', metaString(model)],
    ['tokenizer.ggml.pre', metaString(pre)],
    ['tokenizer.ggml.tokens', metaArray(GGUFValueType.STRING, tokens)],
    ...(scores ? [['tokenizer.ggml.scores', metaArray(GGUFValueType.FLOAT32, scores)] as [string, GGUFValue]] : []),
    ['tokenizer.ggml.token_type', metaArray(GGUFValueType.INT32, types)],
  ];
}

/** GGUF tokenizer metadata for the folder `dir` (tokenizer.model preferred, as the converter for llama does). */
export function tokenizerMetadata(dir: string, config: HFConfig): [string, GGUFValue][] {
  const configPath = join(dir, 'tokenizer_config.json');
  const tokenizerConfig = existsSync(configPath) ? HFConfig.read(configPath, 'tokenizer_config.json') : undefined;
  const vocabSize = config.has('vocab_size') ? config.count('vocab_size') : undefined;
  const vocab = existsSync(join(dir, 'tokenizer.model'))
    ? sentencePieceVocab(join(dir, 'tokenizer.model'), vocabSize, tokenizerConfig)
    : existsSync(join(dir, 'tokenizer.json'))
      ? tokenizerJsonVocab(join(dir, 'tokenizer.json'))
      : undefined;
  if (!vocab) throw new HFError('MISSING_FILE', dir, '', 'holds neither tokenizer.model nor tokenizer.json');
  return [...vocab.entries, ...specialVocab(config, tokenizerConfig, vocab)];
}

function sentencePieceVocab(path: string, vocabSize: number | undefined, tokenizerConfig: HFConfig | undefined): Vocabulary {
  let pieces;
  try {
    pieces = parseSentencePieceModel(readFileSync(path)).pieces;
  } catch (e) {
    if (e instanceof SentencePieceModelError) throw new HFError('BAD_TOKENIZER', path, 'pieces', e.message);
    throw e;
  }
  // the config's vocab_size, padded with unused [PADi] tokens when larger than the model's pieces (by a bounded number)
  const n = Math.max(vocabSize ?? pieces.length, pieces.length);
  if (n > pieces.length + MAX_PADDING) throw new HFError('CONFIG_MISMATCH', path, 'pieces', `holds ${pieces.length} pieces, far fewer than config.json's vocab_size ${n}`);
  const tokens = Array.from({ length: n }, (_, i) => pieces[i]?.piece ?? `[PAD${i}]`);
  const scores = Array.from({ length: n }, (_, i) => pieces[i]?.score ?? -10000);
  const types = Array.from({ length: n }, (_, i) => (pieces[i] ? PIECE_TYPES[pieces[i].type] ?? TokenType.NORMAL : TokenType.UNUSED));
  const decoder = tokenizerConfig?.values.added_tokens_decoder;
  for (const [key, entry] of Object.entries(typeof decoder === 'object' && decoder !== null ? decoder : {})) {
    const id = Number(key), content = (entry as { content?: unknown }).content;
    if (!Number.isInteger(id) || id < 0 || id >= n || typeof content !== 'string') continue;
    const special = (entry as { special?: unknown }).special === true || looksSpecial(content);
    tokens[id] = special ? content : content.replaceAll('\u2581', ' ');
    types[id] = special ? TokenType.CONTROL : TokenType.USER_DEFINED;
    scores[id] = -1000;
  }
  return {
    entries: vocabularyEntries('llama', 'default', tokens, types, scores),
    added: new Map(),
  };
}

/** the converter's does_token_look_special: added tokens some models leave unmarked but which are control tokens */
function looksSpecial(text: string): boolean {
  return ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(text) || (text.startsWith('<|') && text.endsWith('|>')) ||
    (text.startsWith('<\uff5c') && text.endsWith('\uff5c>')) || (text.startsWith('<unused') && text.endsWith('>'));
}

/** The split regexes of Hugging Face tokenizers by llama.cpp's pre-tokenizer name (a plain ByteLevel step: gpt-2) */
export const SPLIT_REGEX: Readonly<Record<string, string>> = {
  'llama-bpe': String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  qwen2: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
};

/** The `tokenizer.ggml.pre` name for a tokenizer.json's pre_tokenizer. */
function preTokenizerName(path: string, pre: unknown): string {
  const steps = (pre as { type?: string; pretokenizers?: unknown[] } | null)?.type === 'Sequence' ? (pre as { pretokenizers: unknown[] }).pretokenizers : [pre];
  const split = steps.find((s) => (s as { type?: string })?.type === 'Split') as { pattern?: { Regex?: string } } | undefined;
  if (!split) {
    if (steps.some((s) => (s as { type?: string })?.type === 'ByteLevel')) return 'gpt-2';
    throw new HFError('BAD_TOKENIZER', path, 'pre_tokenizer', 'is not a byte-level split kiln knows');
  }
  const regex = split.pattern?.Regex ?? '';
  const name = Object.keys(SPLIT_REGEX).find((n) => SPLIT_REGEX[n] === regex);
  if (!name) throw new HFError('BAD_TOKENIZER', path, 'pre_tokenizer', `splits by ${JSON.stringify(regex)}, a pattern kiln does not know`);
  return name;
}

/** A tokenizer.json's vocabulary: byte-level BPE or WordPiece. */
function tokenizerJsonVocab(path: string): Vocabulary {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new HFError('BAD_TOKENIZER', path, '', `is not JSON: ${(e as Error).message}`);
  }
  const type = (doc.model as { type?: unknown } | undefined)?.type;
  return type === 'WordPiece' ? wordPieceVocab(path, doc) : byteLevelVocab(path, doc);
}

/** added_tokens: text → id, and which ids are special */
function addedTokens(path: string, doc: Record<string, unknown>): { byText: Map<string, number>; byId: Map<number, { content: string; special: boolean }> } {
  const list = doc.added_tokens ?? [];
  if (!Array.isArray(list)) throw new HFError('BAD_TOKENIZER', path, 'added_tokens', 'is not an array');
  const byText = new Map<string, number>(), byId = new Map<number, { content: string; special: boolean }>();
  for (const t of list as { id?: unknown; content?: unknown; special?: unknown }[]) {
    if (!Number.isInteger(t.id) || typeof t.content !== 'string') throw new HFError('BAD_TOKENIZER', path, 'added_tokens', `holds ${JSON.stringify(t)}`);
    byText.set(t.content, t.id as number);
    byId.set(t.id as number, { content: t.content, special: t.special === true });
  }
  return { byText, byId };
}

/**
 * WordPiece (BERT) → model "bert" in the converter's phantom-space form: a word-initial piece "x" becomes "▁x", a
 * continuation "##x" becomes "x", bracketed specials stay as they are.
 */
function wordPieceVocab(path: string, doc: Record<string, unknown>): Vocabulary {
  const vocab = (doc.model as { vocab?: unknown }).vocab;
  if (typeof vocab !== 'object' || vocab === null) throw new HFError('BAD_TOKENIZER', path, 'model.vocab', 'is not an object');
  const entries = Object.entries(vocab as Record<string, unknown>);
  const tokens: string[] = new Array(entries.length);
  for (const [text, id] of entries) {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= entries.length || tokens[id as number] !== undefined) {
      throw new HFError('BAD_TOKENIZER', path, 'model.vocab', `id ${JSON.stringify(id)} of ${JSON.stringify(text)} is not one of 0…${entries.length - 1} used once`);
    }
    tokens[id as number] = /^\[.*\]$/.test(text) ? text : text.startsWith('##') ? text.slice(2) : '\u2581' + text;
  }
  const added = addedTokens(path, doc);
  const types = tokens.map((_, id) => {
    const a = added.byId.get(id);
    return !a ? TokenType.NORMAL : a.special || looksSpecial(a.content) ? TokenType.CONTROL : TokenType.USER_DEFINED;
  });
  return {
    entries: vocabularyEntries('bert', 'default', tokens, types),
    added: added.byText,
  };
}

function byteLevelVocab(path: string, doc: Record<string, unknown>): Vocabulary {
  let bpe;
  try {
    bpe = parseHFTokenizerJson(doc);
  } catch (e) {
    throw new HFError('BAD_TOKENIZER', path, 'model', (e as Error).message);
  }
  const added = addedTokens(path, doc);
  const tokens = bpe.vocab.map((bytes, id) => added.byId.get(id)?.content ?? bytesToUnicode(bytes));
  const types = tokens.map((_, id) => {
    const a = added.byId.get(id);
    return !a ? TokenType.NORMAL : a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
  });
  return {
    entries: vocabularyEntries('gpt2', preTokenizerName(path, doc.pre_tokenizer), tokens, types),
    added: added.byText,
    merges: bpe.merges.map(([a, b]) => `${bytesToUnicode(a)} ${bytesToUnicode(b)}`),
  };
}

/** A special token's text in tokenizer_config.json: a string or {content}. */
function tokenText(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  const content = (entry as { content?: unknown } | null)?.content;
  return typeof content === 'string' ? content : undefined;
}

/** SpecialVocab.add_to_gguf: merges, special ids, add_* flags, chat template. */
function specialVocab(config: HFConfig, tokenizerConfig: HFConfig | undefined, vocab: Vocabulary): [string, GGUFValue][] {
  const out: [string, GGUFValue][] = [];
  if (vocab.merges) out.push(['tokenizer.ggml.merges', metaArray(GGUFValueType.STRING, vocab.merges)]);
  const tc = tokenizerConfig?.values ?? {};
  for (const [kind, key] of Object.entries(SPECIAL_KEYS)) {
    const text = tokenText(tc[`${kind}_token`]);
    const id = (text !== undefined ? vocab.added.get(text) : undefined) ?? config.tokenId(`${kind}_token_id`);
    if (id !== undefined) out.push([key, metaU32(id)]);
  }
  for (const kind of Object.keys(SPECIAL_KEYS)) {
    const add = tc[`add_${kind}_token`];
    if (typeof add === 'boolean') out.push([`tokenizer.ggml.add_${kind}_token`, metaBool(add)]);
  }
  const template = chatTemplate(tc.chat_template);
  if (template !== undefined) out.push(['tokenizer.chat_template', metaString(template)]);
  return out;
}

/** tokenizer_config.json's chat_template: a string, or named templates of which "default" is the chat template */
function chatTemplate(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return (value.find((t) => (t as { name?: unknown })?.name === 'default') as { template?: string } | undefined)?.template;
  return undefined;
}
