// llama.cpp's tokenizer conformance vectors (test-tokenizer-0): every input of X.gguf.inp, tokenized with
// add_special = false and parse_special = false, must give exactly the ids on the same line of X.gguf.out.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { GGUFError } from '../../src/gguf/types.js';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { sharedPath } from '../shared.js';

const SETS = ['bert-bge', 'deepseek-coder', 'deepseek-llm', 'falcon', 'gpt-2', 'llama-spm', 'mpt', 'phi-3', 'refact', 'starcoder'];

/** test-tokenizer-0's framing: inputs end at each "\n__ggml_vocab_test__\n"; no empty input after the last one */
function readInputs(path: string): string[] {
  const raw = readFileSync(path, 'utf8');
  const separator = '\n__ggml_vocab_test__\n';
  const inputs: string[] = [];
  for (let pos = 0; pos < raw.length;) {
    const next = raw.indexOf(separator, pos);
    if (next < 0) {
      inputs.push(raw.slice(pos));
      break;
    }
    inputs.push(raw.slice(pos, next));
    pos = next + separator.length;
  }
  return inputs;
}

function readExpected(path: string): number[][] {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((line) => (line.trim() === '' ? [] : line.trim().split(' ').map(Number)));
}

function checkSet(tokenizer: Tokenizer, vectorPath: string): void {
  const inputs = readInputs(`${vectorPath}.inp`);
  const expected = readExpected(`${vectorPath}.out`);
  assert.equal(inputs.length, expected.length, 'inputs and expected lines differ in number');
  for (let i = 0; i < inputs.length; i++) {
    const ids = tokenizer.encode(inputs[i], { addSpecial: false, parseSpecial: false });
    assert.deepEqual(ids, expected[i], `vector ${i}: ${JSON.stringify(inputs[i])}`);
  }
}

for (const name of SETS) {
  test(`tokenizer vectors: ${name}`, () => {
    const path = sharedPath('conformance', 'tokenizers', `ggml-vocab-${name}.gguf`);
    checkSet(Tokenizer.fromMetadata(readGGUFHeader(path).metadata), path);
  });
}

test('tokenizer vectors: llama-spm ids from the same vocabulary in llama-2-tiny-random.gguf', () => {
  const model = sharedPath('data', 'models', 'llama-2-tiny-random.gguf');
  checkSet(Tokenizer.fromMetadata(readGGUFHeader(model).metadata), sharedPath('conformance', 'tokenizers', 'ggml-vocab-llama-spm.gguf'));
});

test('tokenizer vectors: historical/dbrx', (t) => {
  const path = sharedPath('conformance', 'tokenizers', 'historical', 'ggml-vocab-dbrx.gguf');
  let metadata;
  try {
    ({ metadata } = readGGUFHeader(path));
  } catch (e) {
    // this file repeats the key general.file_type, which the GGUF reader (like llama.cpp's) refuses
    if (e instanceof GGUFError && e.code === 'DUPLICATE_NAME') {
      t.skip(`GGUF header refused: ${e.message}`);
      return;
    }
    throw e;
  }
  checkSet(Tokenizer.fromMetadata(metadata), path);
});
