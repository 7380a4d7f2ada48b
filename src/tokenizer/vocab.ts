// The vocabulary a GGUF file describes under `tokenizer.ggml.*`, read the way llama.cpp's llama_vocab::load
// reads it: token texts, scores and types, merges, special token ids (with per-model defaults), the
// add-BOS/EOS and space-prefix flags, and the end-of-generation set.

import { getArray, getBool, getNumber, getString, type Metadata } from '../gguf/metadata.js';
import { preTokenizer, type PreTokenizer } from './pre-tokenizers.js';

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

/** `tokenizer.ggml.token_type` values */
export enum TokenType { UNDEFINED = 0, NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 }

/** llama.cpp's per-token attribute bits (llama_token_attr) */
export enum Attr {
  UNKNOWN = 1 << 0,
  UNUSED = 1 << 1,
  NORMAL = 1 << 2,
  CONTROL = 1 << 3,
  USER_DEFINED = 1 << 4,
  BYTE = 1 << 5,
  /** strip whitespace to the left of this token when parsing it out of text */
  LSTRIP = 1 << 7,
  /** strip whitespace to the right of it */
  RSTRIP = 1 << 8,
}

const ATTR_OF_TYPE: Record<number, number> = {
  [TokenType.NORMAL]: Attr.NORMAL,
  [TokenType.UNKNOWN]: Attr.UNKNOWN,
  [TokenType.CONTROL]: Attr.CONTROL,
  [TokenType.USER_DEFINED]: Attr.USER_DEFINED,
  [TokenType.UNUSED]: Attr.UNUSED,
  [TokenType.BYTE]: Attr.BYTE,
};

export type TokenizerModel = 'llama' | 'gpt2' | 'bert';

export interface SpecialIds {
  bos: number | null;
  eos: number | null;
  eot: number | null;
  eom: number | null;
  unk: number | null;
  sep: number | null;
  pad: number | null;
}

export interface Vocab {
  model: TokenizerModel;
  /** `tokenizer.ggml.pre` as given ("default" when absent) */
  pre: string;
  tokens: string[];
  /** [n_vocab] SentencePiece merge scores (0 when the file has none) */
  scores: Float32Array;
  /** [n_vocab] Attr bits */
  attrs: Uint16Array;
  tokenToId: Map<string, number>;
  /** "left right" -> merge rank (byte-level BPE only) */
  mergeRanks: Map<string, number>;
  /** longest token text in code points */
  maxTokenLength: number;
  special: SpecialIds;
  eogIds: Set<number>;
  /** control, user-defined and unknown tokens, longest (in UTF-8 bytes) first: what special parsing looks for */
  specialTokens: number[];
  addBos: boolean;
  addEos: boolean;
  /** SentencePiece: a space is put before text that starts the input or follows a special token */
  addSpacePrefix: boolean;
  cleanSpaces: boolean;
  /** byte-level BPE only */
  preTokenizer: PreTokenizer | null;
}

const KEY = 'tokenizer.ggml.';

// Texts that mark end-of-turn and other end-of-generation tokens when the file does not name them.
const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>',
  '<｜end▁of▁sentence｜>'];
const EOM_TEXTS = ['<|eom_id|>'];
/** fill-in-the-middle pad, repository and file-separator tokens also end generation: [metadata key, texts] */
const FIM_EOG: [string, string[]][] = [
  ['fim_pad_token_id', ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>']],
  ['fim_rep_token_id', ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>']],
  ['fim_sep_token_id', ['<|file_sep|>']],
];
const EOG_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|eom_id|>', '<EOT>', '_<EOT>',
  '<|end_of_text|>', '<end_of_utterance>'];

function requireArray<T>(meta: Metadata, key: string, kind: 'string' | 'number', minLength: number): T[] | undefined {
  const values = getArray(meta, key);
  if (values === undefined) return undefined;
  if (values.length < minLength) throw new TokenizerError(`${key} has ${values.length} entries, fewer than the ${minLength} tokens`);
  for (const v of values) {
    if (typeof v !== kind) throw new TokenizerError(`${key} must be an array of ${kind}s`);
  }
  return values as T[];
}

function defaultSpecialIds(model: TokenizerModel): SpecialIds {
  const none = { eot: null, eom: null };
  switch (model) {
    case 'llama': return { ...none, bos: 1, eos: 2, unk: 0, sep: null, pad: null };
    case 'bert': return { ...none, bos: 101, eos: null, unk: 100, sep: 102, pad: 0 };
    case 'gpt2': return { ...none, bos: 11, eos: 11, unk: null, sep: null, pad: null };
  }
}

/** A token id from the metadata; one outside the vocabulary (e.g. 0xFFFFFFFF for "none") counts as absent. */
function tokenId(meta: Metadata, key: string, n: number): number | null {
  const id = getNumber(meta, key);
  return id !== undefined && Number.isInteger(id) && id >= 0 && id < n ? id : null;
}

/** The id of the first of `texts` in the vocabulary, marking it a control token. */
function findByText(vocab: Pick<Vocab, 'tokenToId' | 'attrs'>, texts: string[]): number | null {
  for (const text of texts) {
    const id = vocab.tokenToId.get(text);
    if (id !== undefined) {
      vocab.attrs[id] |= Attr.CONTROL;
      return id;
    }
  }
  return null;
}

export function loadVocab(meta: Metadata): Vocab {
  const modelName = getString(meta, KEY + 'model');
  if (modelName !== 'llama' && modelName !== 'gpt2' && modelName !== 'bert') {
    throw new TokenizerError(`tokenizer model "${modelName ?? '(missing)'}" is not supported (llama, gpt2 and bert are)`);
  }
  const model: TokenizerModel = modelName;
  const pre = getString(meta, KEY + 'pre') ?? 'default';

  const stored = requireArray<string>(meta, KEY + 'tokens', 'string', 1);
  if (stored === undefined) throw new TokenizerError(`${KEY}tokens is missing`);
  const tokens = [...stored]; // a copy: empty texts get placeholders below
  const n = tokens.length;
  const scores = new Float32Array(n);
  scores.set(requireArray<number>(meta, KEY + 'scores', 'number', n)?.slice(0, n) ?? []);
  const types = requireArray<number>(meta, KEY + 'token_type', 'number', n);

  const attrs = new Uint16Array(n);
  const tokenToId = new Map<string, number>();
  let maxTokenLength = 0;
  for (let id = 0; id < n; id++) {
    if (tokens[id] === '') tokens[id] = `[EMPTY_${id}]`;
    if (tokenToId.has(tokens[id])) {
      throw new TokenizerError(`duplicate token in vocabulary: "${tokens[id]}" has ids ${tokenToId.get(tokens[id])} and ${id}`);
    }
    tokenToId.set(tokens[id], id);
    maxTokenLength = Math.max(maxTokenLength, [...tokens[id]].length);
    attrs[id] = types ? (ATTR_OF_TYPE[types[id]] ?? 0) : Attr.NORMAL;
  }

  const mergeRanks = new Map<string, number>();
  let pretok: PreTokenizer | null = null;
  let addBos = true, addSpacePrefix = false, cleanSpaces = true;
  if (model === 'gpt2') {
    const merges = requireArray<string>(meta, KEY + 'merges', 'string', 0);
    if (merges === undefined) throw new TokenizerError(`${KEY}merges is missing`);
    merges.forEach((merge, rank) => {
      // "left right"; the left part may itself be a space, hence the search from index 1
      if (merge.indexOf(' ', 1) > 0 && !mergeRanks.has(merge)) mergeRanks.set(merge, rank);
    });
    pretok = preTokenizer(pre) ?? null;
    if (pretok === null) throw new TokenizerError(`unknown pre-tokenizer type: "${pre}"`);
    addBos = pretok.addBos;
    cleanSpaces = pretok.cleanSpaces;
  } else if (model === 'llama') {
    addSpacePrefix = true;
    cleanSpaces = false;
  }
  addSpacePrefix = getBool(meta, KEY + 'add_space_prefix') ?? addSpacePrefix;

  const special = defaultSpecialIds(model);
  const keys: [keyof SpecialIds, string][] = [
    ['bos', 'bos_token_id'], ['eos', 'eos_token_id'], ['eot', 'eot_token_id'], ['eom', 'eom_token_id'],
    ['unk', 'unknown_token_id'], ['sep', 'seperator_token_id'], ['pad', 'padding_token_id'],
  ];
  for (const [name, key] of keys) {
    const current = special[name];
    if (current !== null && current >= n) special[name] = null;
    special[name] = tokenId(meta, KEY + key, n) ?? special[name];
  }
  addBos = getBool(meta, KEY + 'add_bos_token') ?? addBos;
  const addEos = getBool(meta, KEY + 'add_eos_token') ?? false;
  if (addBos && special.bos === null) throw new TokenizerError(`${KEY}add_bos_token is true, but ${KEY}bos_token_id is not set`);
  if (addEos && special.eos === null) throw new TokenizerError(`${KEY}add_eos_token is true, but ${KEY}eos_token_id is not set`);

  const vocab = { tokenToId, attrs };
  special.eot ??= findByText(vocab, EOT_TEXTS);
  special.eom ??= findByText(vocab, EOM_TEXTS);
  const eogIds = new Set<number>();
  for (const [key, texts] of FIM_EOG) {
    const id = tokenId(meta, KEY + key, n) ?? findByText(vocab, texts);
    if (id !== null) eogIds.add(id);
  }
  for (const text of EOG_TEXTS) {
    const id = findByText(vocab, [text]);
    if (id !== null) eogIds.add(id);
  }
  for (const id of [special.eos, special.eot, special.eom]) if (id !== null) eogIds.add(id);

  const specialTokens: number[] = [];
  for (let id = 0; id < n; id++) if (attrs[id] & (Attr.CONTROL | Attr.USER_DEFINED | Attr.UNKNOWN)) specialTokens.push(id);
  const byteLength = new Map(specialTokens.map((id) => [id, new TextEncoder().encode(tokens[id]).length]));
  specialTokens.sort((a, b) => byteLength.get(b)! - byteLength.get(a)! || a - b);

  // llama.cpp: Phi-3's special tokens swallow the whitespace after them, except <unk>, <s> and <|endoftext|>
  const generalName = (getString(meta, 'general.name') ?? '').toLowerCase();
  if (generalName.includes('phi-3') || generalName.includes('phi3')) {
    for (const id of specialTokens) attrs[id] |= Attr.RSTRIP;
    const setRstrip = (text: string, on: boolean) => {
      const id = tokenToId.get(text);
      if (id !== undefined) attrs[id] = on ? attrs[id] | Attr.RSTRIP : attrs[id] & ~Attr.RSTRIP;
    };
    setRstrip('</s>', true);
    for (const text of ['<unk>', '<s>', '<|endoftext|>']) setRstrip(text, false);
  }

  return {
    model, pre, tokens, scores, attrs, tokenToId, mergeRanks, maxTokenLength, special, eogIds, specialTokens,
    addBos, addEos, addSpacePrefix, cleanSpaces, preTokenizer: pretok,
  };
}
