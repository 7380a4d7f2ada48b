import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { BpeTrainingError, countPreTokens, trainBPE, type TrainedBPE } from '../../src/train/bpe-trainer.js';
import {
  HFTokenizerJsonError, hfTokenizerJsonText, parseHFTokenizerJson, readHFTokenizerJson,
} from '../../src/tokenizer/hf-tokenizer-json.js';
import { bytesToUnicode } from '../../src/tokenizer/bytes-to-unicode.js';
import { kiln } from '../helpers/cli.js';

const FIXTURES = ['data', 'text', 'cs336-fixtures'];
const ENDOFTEXT = '<|endoftext|>';

/** merges as the reference file spells them: "a b" in byte-to-unicode form */
const mergeLines = (bpe: TrainedBPE) => bpe.merges.map(([a, b]) => `${bytesToUnicode(a)} ${bytesToUnicode(b)}`);
/** vocab as token strings in id order (specials as their text) */
const vocabTokens = (bpe: TrainedBPE) =>
  bpe.vocab.map((bytes, id) => bpe.specials.find((s) => s.id === id)?.content ?? bytesToUnicode(bytes));

/** the reference vocab json maps token -> id; list its tokens by id, checking the ids are exactly 0..n-1 */
function referenceTokens(): string[] {
  const ref = JSON.parse(readFileSync(sharedPath(...FIXTURES, 'train-bpe-reference-vocab.json'), 'utf8')) as Record<string, number>;
  const byId = Object.entries(ref).sort((x, y) => x[1] - y[1]);
  assert.deepEqual(byId.map(([, id]) => id), byId.map((_, i) => i));
  return byId.map(([token]) => token);
}

test('reproduces the reference vocab and merges on corpus.en (vocab 500, <|endoftext|>)', () => {
  const text = readFileSync(sharedPath(...FIXTURES, 'corpus.en'), 'utf8');
  const bpe = trainBPE(text, { vocabSize: 500, specials: [ENDOFTEXT] });
  const refMerges = readFileSync(sharedPath(...FIXTURES, 'train-bpe-reference-merges.txt'), 'utf8').split('\n').filter((l) => l !== '');
  assert.equal(refMerges.length, 243);
  assert.deepEqual(mergeLines(bpe), refMerges);
  assert.deepEqual(vocabTokens(bpe), referenceTokens());
  assert.deepEqual(bpe.specials, [{ id: 0, content: ENDOFTEXT }]);
});

test('tokenizer.json round-trips and its vocab equals the reference vocab', () => {
  const text = readFileSync(sharedPath(...FIXTURES, 'corpus.en'), 'utf8');
  const bpe = trainBPE(text, { vocabSize: 500, specials: [ENDOFTEXT] });
  const json = hfTokenizerJsonText(bpe);
  const doc = JSON.parse(json);
  assert.equal(doc.model.type, 'BPE');
  assert.equal(doc.pre_tokenizer.type, 'ByteLevel');
  assert.equal(doc.decoder.type, 'ByteLevel');
  assert.deepEqual(doc.added_tokens.map((t: { id: number; content: string; special: boolean }) => [t.id, t.content, t.special]), [[0, ENDOFTEXT, true]]);
  const ref = JSON.parse(readFileSync(sharedPath(...FIXTURES, 'train-bpe-reference-vocab.json'), 'utf8'));
  assert.deepEqual(doc.model.vocab, ref);
  // written in id order, as the reference file is (integer-like keys such as "0" not hoisted)
  const vocabText = json.slice(json.indexOf('"vocab": {'), json.indexOf('"merges": ['));
  const keyOrder = [...vocabText.matchAll(/^ {6}("(?:[^"\\]|\\.)*"): \d+,?$/gm)].map((m) => JSON.parse(m[1]));
  assert.deepEqual(keyOrder, referenceTokens());

  const dir = mkdtempSync(join(tmpdir(), 'kiln-bpe-'));
  writeFileSync(join(dir, 'tokenizer.json'), json);
  const back = readHFTokenizerJson(join(dir, 'tokenizer.json'));
  assert.deepEqual(back.vocab, bpe.vocab);
  assert.deepEqual(back.merges, bpe.merges);
  assert.deepEqual(back.specials, bpe.specials);
});

test('ties go to the greater (bytes_a, bytes_b) tuple, not the greater concatenation', () => {
  // after "a b" (count 4), ("ab","c") and ("a","z") both count 1: the tuple order picks "ab c" ("ab" > "a"),
  // while comparing concatenations would pick "a z" ("az" > "abc")
  const bpe = trainBPE('ab.ab.ab.abc.az.', { vocabSize: 258, specials: [] });
  assert.deepEqual(mergeLines(bpe), ['a b', 'ab c']);
  // three pairs of count 1: (c,d) > (a,b) > (Ġ,cd) by first element
  assert.deepEqual(mergeLines(trainBPE('ab cd', { vocabSize: 259, specials: [] })), ['c d', 'a b', 'Ġ cd']);
});

test('special tokens split the corpus, get ids first, and training stops when no pair is left', () => {
  assert.deepEqual(countPreTokens('hi!<|endoftext|>hi<|endoftext|>', [ENDOFTEXT]), new Map([['hi', 2], ['!', 1]]));
  const bpe = trainBPE('hi!<|endoftext|>hi', { vocabSize: 1000, specials: [ENDOFTEXT, '<pad>'] });
  assert.deepEqual(mergeLines(bpe), ['h i']);
  assert.equal(bpe.vocab.length, 2 + 256 + 1);
  assert.deepEqual(bpe.specials, [{ id: 0, content: ENDOFTEXT }, { id: 1, content: '<pad>' }]);
  assert.equal(bytesToUnicode(bpe.vocab[2]), '!'); // the first byte in GPT-2 character order
});

test('bad options and malformed tokenizer.json give typed errors', () => {
  assert.throws(() => trainBPE('abc', { vocabSize: 256, specials: [ENDOFTEXT] }), BpeTrainingError);
  assert.throws(() => trainBPE('abc', { vocabSize: 300.5, specials: [] }), BpeTrainingError);
  assert.throws(() => trainBPE('abc', { vocabSize: 300, specials: ['x', 'x'] }), BpeTrainingError);
  const good = () => ({ added_tokens: [], model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] } });
  assert.deepEqual(parseHFTokenizerJson(good()).merges, [[Uint8Array.of(97), Uint8Array.of(98)]]);
  const broken: [string, (d: ReturnType<typeof good>) => void][] = [
    ['not BPE', (d) => { d.model.type = 'WordPiece'; }],
    ['id hole', (d) => { d.model.vocab = { a: 0, b: 1, ab: 5 }; }],
    ['huge id', (d) => { d.model.vocab = { a: 1e12 } as never; }],
    ['duplicate id', (d) => { d.model.vocab = { a: 0, b: 0, ab: 1 }; }],
    ['not byte-level', (d) => { d.model.vocab = { a: 0, b: 1, 'a b': 2 } as never; }],
    ['bad merge', (d) => { d.model.merges = ['a b c']; }],
  ];
  for (const [what, breakIt] of broken) {
    const doc = good();
    breakIt(doc);
    assert.throws(() => parseHFTokenizerJson(doc), HFTokenizerJsonError, what);
  }
});

test('kiln tokenizer train writes a tokenizer.json that reads back, with progress lines from the first merge', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'kiln-bpe-cli-')), 'tok.json');
  const corpus = sharedPath(...FIXTURES, 'corpus.en');
  const { stderr, status } = await kiln('tokenizer', 'train', corpus, '--vocab-size', '300', '--special', ENDOFTEXT, '-o', out);
  assert.equal(status, 0, stderr);
  assert.match(stderr, /^merge 1\/43 \| /);
  assert.match(stderr, /^merge 43\/43 \| /m);
  const bpe = readHFTokenizerJson(out);
  assert.equal(bpe.vocab.length, 300);
  assert.deepEqual(mergeLines(bpe), readFileSync(sharedPath(...FIXTURES, 'train-bpe-reference-merges.txt'), 'utf8').split('\n').slice(0, 43));
});

test('the GGUF tokenizer of a trained BPE ends texts with <|endoftext|> (not llama.cpp\'s default id 11)', async () => {
  const { tokenizerMetadata } = await import('../../src/train/llama-model.js');
  const { Tokenizer } = await import('../../src/tokenizer/index.js');
  const bpe = trainBPE('one two three four five six seven'.repeat(4), { vocabSize: 300, specials: ['<pad>', ENDOFTEXT] });
  const tokenizer = Tokenizer.fromMetadata(tokenizerMetadata(bpe));
  assert.equal(tokenizer.eosId, 1);
  assert.equal(tokenizer.bosId, 1);
  assert.ok(tokenizer.isEog(1) && !tokenizer.isEog(11));
  assert.equal(Tokenizer.fromMetadata(tokenizerMetadata(trainBPE('abc abd', { vocabSize: 258, specials: [] }))).eosId, 11);
});
