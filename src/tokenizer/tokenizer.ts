// Text <-> token ids for a GGUF model, matching llama.cpp's llama_tokenize / llama_token_to_piece /
// llama_detokenize for SentencePiece ("llama"), byte-level BPE ("gpt2") and WordPiece ("bert") vocabularies.

import type { Metadata } from '../gguf/metadata.js';
import { BpeTokenizer } from './bpe.js';
import { CHAR_TO_BYTE } from './bytes-to-unicode.js';
import { partitionSpecial } from './special-tokens.js';
import { SpmTokenizer } from './spm.js';
import { utf8Bytes } from './unicode.js';
import { Attr, loadVocab, TokenizerError, type TokenizerModel, type Vocab } from './vocab.js';
import { WpmTokenizer } from './wpm.js';

export interface EncodeOptions {
  /** add BOS / EOS (WordPiece: CLS / SEP) as the model asks; default true */
  addSpecial?: boolean;
  /** turn the text of control tokens (e.g. "<s>") into those tokens; default true (user-defined tokens are
   *  always cut out of the text, as in llama.cpp) */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** drop a leading BOS and trailing EOS that the model adds, and render control tokens as nothing; default false */
  skipSpecial?: boolean;
}

export interface PieceOptions {
  /** render control and unknown tokens as their text instead of nothing; default false */
  special?: boolean;
}

const EMPTY = new Uint8Array(0);
const SPACE = 0x20;
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

export class Tokenizer {
  readonly model: TokenizerModel;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** end of turn, e.g. <|eot_id|> or <|im_end|> */
  readonly eotId: number | null;
  /** end of message, <|eom_id|> */
  readonly eomId: number | null;
  readonly unkId: number | null;
  readonly sepId: number | null;
  readonly padId: number | null;
  /** the token a lone "\n" becomes */
  readonly nlId: number | null;
  /** whether encode({ addSpecial: true }) starts with BOS / ends with EOS (WordPiece always adds CLS and SEP) */
  readonly addBos: boolean;
  readonly addEos: boolean;

  private readonly encoder: { encode(text: string, out: number[]): void };
  /** [n_vocab] piece bytes of each token, special tokens as their text; filled on first use */
  private readonly pieces: (Uint8Array | undefined)[];

  private constructor(private readonly vocab: Vocab) {
    this.model = vocab.model;
    ({ bos: this.bosId, eos: this.eosId, eot: this.eotId, eom: this.eomId, unk: this.unkId, sep: this.sepId, pad: this.padId } =
      vocab.special);
    this.addBos = vocab.addBos;
    this.addEos = vocab.addEos;
    this.pieces = new Array(vocab.tokens.length);
    switch (vocab.model) {
      case 'llama':
        this.encoder = new SpmTokenizer(vocab);
        this.nlId = vocab.tokenToId.get('<0x0A>') ?? vocab.tokenToId.get('\n') ?? this.padId;
        break;
      case 'gpt2':
        this.encoder = new BpeTokenizer(vocab, vocab.preTokenizer!);
        this.nlId = this.encode('\n', { addSpecial: false, parseSpecial: false })[0] ?? this.padId;
        break;
      case 'bert':
        this.encoder = new WpmTokenizer(vocab);
        this.nlId = this.padId;
        break;
    }
  }

  /** Builds the tokenizer a GGUF file's `tokenizer.ggml.*` metadata describes. */
  static fromMetadata(metadata: Metadata): Tokenizer {
    return new Tokenizer(loadVocab(metadata));
  }

  get vocabSize(): number {
    return this.vocab.tokens.length;
  }

  /** `tokenizer.ggml.pre` ("default" when absent) */
  get pre(): string {
    return this.vocab.pre;
  }

  /** The token's text as stored in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>"). */
  tokenText(id: number): string {
    this.check(id);
    return this.vocab.tokens[id];
  }

  /** Whether generating this token ends the generation (EOS, EOT, EOM and their kin). */
  isEog(id: number): boolean {
    return this.vocab.eogIds.has(id);
  }

  /** Control tokens (BOS, EOS, chat markers) render as nothing unless asked for. */
  isControl(id: number): boolean {
    this.check(id);
    return (this.vocab.attrs[id] & Attr.CONTROL) !== 0;
  }

  encode(text: string, { addSpecial = true, parseSpecial = true }: EncodeOptions = {}): number[] {
    const { special } = this.vocab;
    const out: number[] = [];
    const fragments = partitionSpecial(this.vocab, text, parseSpecial);
    if (addSpecial && (this.addBos || this.model === 'bert')) out.push(this.required(special.bos, 'BOS'));
    // SentencePiece: text at the start or right after a special token gets a leading space
    let afterSpecial = true;
    for (const fragment of fragments) {
      if (typeof fragment === 'number') {
        out.push(fragment);
        afterSpecial = true;
      } else if (this.model === 'llama') {
        const spaced = this.vocab.addSpacePrefix && afterSpecial ? ' ' + fragment : fragment;
        this.encoder.encode(spaced.replaceAll(' ', '\u2581'), out);
        afterSpecial = false;
      } else {
        this.encoder.encode(fragment, out);
      }
    }
    if (addSpecial && this.model === 'bert') out.push(this.required(special.sep, 'SEP'));
    else if (addSpecial && this.addEos) out.push(this.required(special.eos, 'EOS'));
    return out;
  }

  /** The bytes one token stands for (llama_token_to_piece): a byte token its byte, ▁ a space, GPT-2 byte
   *  characters their bytes; control and unknown tokens are empty unless `special` is set. */
  decodeToken(id: number, { special = false }: PieceOptions = {}): Uint8Array {
    this.check(id);
    if (!special && this.vocab.attrs[id] & (Attr.CONTROL | Attr.UNKNOWN)) return EMPTY;
    return (this.pieces[id] ??= this.piece(id));
  }

  /** Text of a token sequence (llama_detokenize): SentencePiece's prefix space is dropped from the first
   *  token, and for models that ask for it spaces before punctuation and contractions are cleaned up.
   *  With skipSpecial the BOS is dropped and the space is taken from the token after it, as HF's
   *  decode(skip_special_tokens) does (llama.cpp's remove_special keeps that space). */
  decode(ids: readonly number[], { skipSpecial = false }: DecodeOptions = {}): string {
    let first = 0, end = ids.length;
    let removeSpace = this.vocab.addSpacePrefix;
    if (skipSpecial && this.addBos && ids.length > 0 && ids[0] === this.bosId) first = 1;
    if (skipSpecial && this.addEos && end > first && ids[end - 1] === this.eosId) end--;

    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = first; i < end; i++) {
      let piece = this.decodeToken(ids[i], { special: !skipSpecial });
      if (removeSpace && piece[0] === SPACE) piece = piece.subarray(1);
      removeSpace = false;
      parts.push(piece);
      total += piece.length;
    }
    let bytes: Uint8Array = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
      bytes.set(part, offset);
      offset += part.length;
    }
    if (this.vocab.cleanSpaces) bytes = cleanSpaces(bytes);
    return utf8Decoder.decode(bytes);
  }

  private piece(id: number): Uint8Array {
    const text = this.vocab.tokens[id];
    const attr = this.vocab.attrs[id];
    if (attr & (Attr.CONTROL | Attr.UNKNOWN | Attr.USER_DEFINED)) return utf8Bytes(text);
    if (attr & Attr.NORMAL) return this.model === 'gpt2' ? gpt2Bytes(text) : utf8Bytes(text.replaceAll('\u2581', ' '));
    if (attr & Attr.BYTE) return Uint8Array.of(parseInt(text.substring(3, 5), 16));
    return EMPTY; // unused and undefined tokens
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.tokens.length) {
      throw new TokenizerError(`token id ${id} is outside the vocabulary of ${this.vocab.tokens.length}`);
    }
  }

  private required(id: number | null, what: string): number {
    if (id === null) throw new TokenizerError(`the model has no ${what} token to add`);
    return id;
  }
}

/** Bytes of a token written in GPT-2 byte characters; a character outside that alphabet becomes a marker
 *  "[UNK_BYTE_0x<its UTF-8 in hex><token text>]" as llama.cpp writes it. */
function gpt2Bytes(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const byte = CHAR_TO_BYTE.get(ch);
    if (byte !== undefined) {
      out.push(byte);
      continue;
    }
    const hex = [...utf8Bytes(ch)].map((b) => b.toString(16).padStart(2, '0')).join('');
    out.push(...utf8Bytes(`[UNK_BYTE_0x${hex}${text}]`));
  }
  return Uint8Array.from(out);
}

const APOSTROPHE = 0x27;
const code = (ch: string) => ch.charCodeAt(0);

/** llama.cpp's clean_spaces, three in-place passes over the bytes: " ?" " !" " ." " ," lose the space,
 *  " ' " becomes "'", and " 's" " 'm" " 're" " 've" lose the space. */
function cleanSpaces(input: Uint8Array): Uint8Array {
  const t = input.slice();
  let total = t.length;

  const total1 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total1; i++) {
    const x = t[i];
    if (t[i - 1] === SPACE && (x === code('?') || x === code('!') || x === code('.') || x === code(','))) total--;
    t[total++] = x;
  }

  const total2 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total2; i++) {
    const x = t[i];
    if (x === APOSTROPHE && i + 1 < total2 && t[i - 1] === SPACE && t[i + 1] === SPACE) {
      total--; // the space before
      t[++i] = 0; // and the one after
    }
    t[total++] = x;
  }

  const total3 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total3; i++) {
    const x = t[i];
    if (t[i - 1] === SPACE && x === APOSTROPHE && i + 1 < total3) {
      const x1 = t[i + 1];
      if (x1 === code('s') || x1 === code('m')) {
        total--;
      } else if (i + 2 < total3) {
        const x2 = t[i + 2];
        if ((x1 === code('r') && x2 === code('e')) || (x1 === code('v') && x2 === code('e'))) total--;
      }
    }
    t[total++] = x;
  }
  return t.subarray(0, total);
}
