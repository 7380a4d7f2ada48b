// The tokenizer.model (SentencePiece ModelProto) reader and writer: sentencepiece's own test model, the stories260K
// vocabulary against its GGUF's, a write/read round trip, and truncated or lying protobuf.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseSentencePieceModel, sentencePieceModelBytes, SentencePieceModelError } from '../../src/tokenizer/sentencepiece-model.js';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { getArray } from '../../src/gguf/metadata.js';
import { sharedPath } from '../shared.js';

test('sentencepiece\'s test_model.model: 1000 unigram pieces, <unk> <s> </s> first', () => {
  const model = parseSentencePieceModel(readFileSync(sharedPath('data', 'models', 'tokenizers', 'sentencepiece-test_model.model')));
  assert.equal(model.pieces.length, 1000);
  assert.equal(model.modelType, 1);
  assert.deepEqual(model.pieces.slice(0, 3).map((p) => [p.piece, p.type]), [['<unk>', 2], ['<s>', 3], ['</s>', 3]]);
  assert.ok(model.pieces.slice(3).every((p) => p.score < 0 && p.type === 1));
});

test('stories260K\'s tokenizer.model holds the GGUF\'s pieces, scores and types', () => {
  const model = parseSentencePieceModel(readFileSync(sharedPath('conformance', 'hf', 'stories260K-f32', 'tokenizer.model')));
  const meta = readGGUFHeader(sharedPath('data', 'models', 'stories260K.gguf')).metadata;
  assert.deepEqual(model.pieces.map((p) => p.piece), getArray(meta, 'tokenizer.ggml.tokens'));
  assert.deepEqual(model.pieces.map((p) => p.score), getArray(meta, 'tokenizer.ggml.scores'));
  assert.deepEqual(model.pieces.map((p) => p.type), getArray(meta, 'tokenizer.ggml.token_type'));
  assert.deepEqual([model.modelType, model.byteFallback, model.addDummyPrefix], [2, true, true]);
});

test('written and read back, a model is unchanged', () => {
  const model = parseSentencePieceModel(readFileSync(sharedPath('data', 'models', 'tokenizers', 'sentencepiece-test_model.model')));
  assert.deepEqual(parseSentencePieceModel(sentencePieceModelBytes(model)), model);
  const other = { ...model, modelType: 2, byteFallback: true, addDummyPrefix: false, pieces: model.pieces.slice(0, 5) };
  assert.deepEqual(parseSentencePieceModel(sentencePieceModelBytes(other)), other);
});

test('truncated or lying protobuf is a SentencePieceModelError', () => {
  const bytes = readFileSync(sharedPath('conformance', 'hf', 'stories260K-f32', 'tokenizer.model'));
  assert.throws(() => parseSentencePieceModel(bytes.subarray(0, 1001)), SentencePieceModelError); // cut inside a piece
  assert.throws(() => parseSentencePieceModel(Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0x0f)), /runs past/); // a 4 GiB piece
  assert.throws(() => parseSentencePieceModel(Uint8Array.of(0x0a)), /truncated varint/);
  assert.throws(() => parseSentencePieceModel(Uint8Array.of(0x08, 0x01)), /wire type 0, expected 2/); // pieces as a varint
  assert.throws(() => parseSentencePieceModel(Uint8Array.of(0x0b)), /wire type 3/); // a protobuf group
  assert.throws(() => parseSentencePieceModel(new Uint8Array(0)), /no pieces/);
});
