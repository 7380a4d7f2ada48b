// Tokenizer behaviour beyond the conformance ids: special-token parsing, BOS/EOS, decoding, streaming, errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { GGUFValueType, type GGUFValue } from '../../src/gguf/types.js';
import { StreamDecoder, Tokenizer, TokenizerError } from '../../src/tokenizer/index.js';
import { sharedPath } from '../shared.js';

const load = (...parts: string[]) => Tokenizer.fromMetadata(readGGUFHeader(sharedPath(...parts)).metadata);
const vocabFile = (name: string) => load('conformance', 'tokenizers', `ggml-vocab-${name}.gguf`);
const stories = load('data', 'models', 'stories260K.gguf');
const llama2 = load('data', 'models', 'llama-2-tiny-random.gguf');
const utf8 = (text: string) => new TextEncoder().encode(text);

test('SPM: BOS by default, "<s>" parsed as a token only when parsing specials', () => {
  for (const tok of [stories, llama2]) {
    assert.equal(tok.bosId, 1);
    assert.equal(tok.eosId, 2);
    const hello = tok.encode('hello', { addSpecial: false });
    // text after a special token gets the SentencePiece prefix space, like text at the start
    assert.deepEqual(tok.encode('<s>hello'), [1, 1, ...hello]);
    assert.deepEqual(tok.encode('<s>hello', { addSpecial: false }), [1, ...hello]);
    const literal = tok.encode('<s>hello', { parseSpecial: false });
    assert.equal(literal[0], 1);
    assert.ok(!literal.slice(1).includes(1), 'literal "<s>" must not become the BOS token');
    assert.equal(tok.decode(literal, { skipSpecial: true }), '<s>hello');
  }
  // ▁hello = 22172 in the Llama 2 vocabulary
  assert.deepEqual(llama2.encode('<s>hello</s>'), [1, 1, 22172, 2]);
  assert.deepEqual(llama2.encode('Hello world'), [1, 15043, 3186]);
});

test('SPM decode: round trip, prefix space, BOS rendering', () => {
  const texts = ['Hello world', ' this is 🦙.cpp', '  two spaces\n\nand lines\t', 'нещо на Български', '我想在apple工作1314151天～'];
  for (const tok of [stories, llama2]) {
    for (const text of texts) {
      assert.equal(tok.decode(tok.encode(text, { addSpecial: false })), text);
      assert.equal(tok.decode(tok.encode(text), { skipSpecial: true }), text);
    }
  }
  // llama.cpp's detokenize with specials rendered: the BOS text, then the token's own space
  assert.equal(llama2.decode([1, 15043, 3186]), '<s> Hello world');
  assert.equal(llama2.decode([15043, 3186]), 'Hello world');
});

test('decodeToken: byte tokens, ▁ as space, control tokens only when asked', () => {
  assert.deepEqual(llama2.decodeToken(243), Uint8Array.of(0xf0)); // <0xF0>
  assert.deepEqual(llama2.decodeToken(15043), utf8(' Hello'));
  assert.deepEqual(llama2.decodeToken(1), new Uint8Array(0));
  assert.deepEqual(llama2.decodeToken(1, { special: true }), utf8('<s>'));
  assert.equal(llama2.tokenText(15043), '▁Hello');
  assert.throws(() => llama2.decodeToken(-1), TokenizerError);
  assert.throws(() => llama2.decodeToken(llama2.vocabSize), TokenizerError);
});

test('StreamDecoder holds back an emoji split across byte tokens', () => {
  const text = ' this is 🦙.cpp';
  const ids = llama2.encode(text, { addSpecial: false });
  const stream = new StreamDecoder(llama2);
  const pieces = ids.map((id) => stream.push(id));
  const emoji = ids.indexOf(243); // 🦙 = F0 9F A6 99 = byte tokens 243 162 169 156
  assert.deepEqual(ids.slice(emoji, emoji + 4), [243, 162, 169, 156]);
  assert.deepEqual(pieces.slice(emoji, emoji + 4), ['', '', '', '🦙']);
  assert.equal(pieces.join('') + stream.flush(), ' ' + text); // streaming keeps the prefix space, as llama.cpp prints it

  const cut = new StreamDecoder(llama2);
  assert.equal(cut.push(243) + cut.push(162), '');
  assert.equal(cut.flush(), '\uFFFD');
  assert.equal(cut.push(15043), ' Hello');
});

test('byte-level BPE: lossless decode, clean_spaces only where the model asks for it', () => {
  const gpt2 = vocabFile('gpt-2');
  const coder = vocabFile('deepseek-coder');
  for (const tok of [gpt2, coder]) {
    for (const text of ['Hello world', ' this is 🦙.cpp\n\n\tend', 'нещо на Български', '🚀 (normal) 😶‍🌫️']) {
      assert.equal(tok.decode(tok.encode(text, { addSpecial: false })), text);
    }
  }
  assert.equal(gpt2.decode(gpt2.encode('Hello , world ! I \'m')), 'Hello, world! I\'m');
  assert.equal(coder.decode(coder.encode('Hello , world !', { addSpecial: false })), 'Hello , world !');
  assert.deepEqual(gpt2.decodeToken(gpt2.encode(' world')[0]), utf8(' world'));
  assert.equal(gpt2.addBos, false);
  assert.deepEqual(gpt2.encode('<|endoftext|>'), [50256]);
  assert.equal(gpt2.encode('<|endoftext|>', { parseSpecial: false }).includes(50256), false);
  assert.equal(gpt2.nlId, 198);
  // deepseek-coder asks for BOS in its metadata
  assert.equal(coder.encode('x')[0], coder.bosId);
});

test('end of generation and special ids', () => {
  assert.ok(llama2.isEog(2));
  assert.ok(!llama2.isEog(1));
  assert.equal(llama2.eotId, null);
  const phi3 = vocabFile('phi-3');
  assert.equal(phi3.eosId, 32000);
  assert.equal(phi3.tokenText(phi3.eotId!), '<|end|>');
  assert.ok(phi3.isEog(32000) && phi3.isEog(phi3.eotId!));
  assert.ok(!phi3.isEog(1));
  const gpt2 = vocabFile('gpt-2');
  assert.ok(gpt2.isEog(50256) && gpt2.isControl(50256));
});

test('Phi-3 special tokens swallow the whitespace after them', () => {
  const phi3 = vocabFile('phi-3');
  const ids = phi3.encode('<|user|>\n  Hi', { addSpecial: false });
  assert.equal(phi3.tokenText(ids[0]), '<|user|>');
  assert.deepEqual(ids, phi3.encode('<|user|>Hi', { addSpecial: false }));
});

test('WordPiece adds CLS and SEP around the words', () => {
  const bert = vocabFile('bert-bge');
  const words = bert.encode('Hello, World!', { addSpecial: false });
  assert.deepEqual(bert.encode('Hello, World!'), [101, ...words, 102]);
  // lowercased, punctuation split off; the ▁ word marks decode to spaces that llama.cpp keeps
  assert.equal(bert.decode(words), ' hello, world!');
});

test('bad metadata gives a TokenizerError', () => {
  const str = (value: string): GGUFValue => ({ type: GGUFValueType.STRING, value });
  const tokens: GGUFValue = { type: GGUFValueType.ARRAY, itemType: GGUFValueType.STRING, value: ['a', 'b'] };
  const merges: GGUFValue = { type: GGUFValueType.ARRAY, itemType: GGUFValueType.STRING, value: ['a b'] };
  assert.throws(() => Tokenizer.fromMetadata(new Map([['tokenizer.ggml.model', str('rwkv')]])), TokenizerError);
  assert.throws(() => Tokenizer.fromMetadata(new Map([['tokenizer.ggml.model', str('llama')]])), TokenizerError);
  assert.throws(() => Tokenizer.fromMetadata(new Map([
    ['tokenizer.ggml.model', str('gpt2')], ['tokenizer.ggml.pre', str('no-such-pre')],
    ['tokenizer.ggml.tokens', tokens], ['tokenizer.ggml.merges', merges],
  ])), TokenizerError);
  const duplicate: GGUFValue = { type: GGUFValueType.ARRAY, itemType: GGUFValueType.STRING, value: ['a', 'a'] };
  assert.throws(() => Tokenizer.fromMetadata(new Map([['tokenizer.ggml.model', str('llama')], ['tokenizer.ggml.tokens', duplicate]])),
    TokenizerError);
});
