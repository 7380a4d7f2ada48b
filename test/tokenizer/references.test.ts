// The tokenizer against llama.cpp's own runs in ../shared/conformance/reference: each prompt's tokens (BOS as
// the model says, specials not parsed), the bytes of the greedy tokens' pieces, and their streamed text;
// and the [CLS] … [SEP] tokens llama-embedding made for the BERT texts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { StreamDecoder, Tokenizer } from '../../src/tokenizer/index.js';
import { sharedPath } from '../shared.js';

interface Run {
  prompt: string;
  prompt_tokens: number[];
  greedy: number[];
  greedy_text: string | null;
  greedy_bytes_hex?: string;
}

const referenceDir = sharedPath('conformance', 'reference');
const tokenizers = new Map<string, Tokenizer>();

/** "kq-f32.lora-0.5.s1.json" -> the tokenizer of kq-f32.gguf */
function tokenizerFor(referenceName: string): Tokenizer {
  const model = referenceName.replace(/\.(lora-[\d.]+\.)?[sb]\d\.json$/, '');
  let tokenizer = tokenizers.get(model);
  if (tokenizer === undefined) {
    const path = model === 'stories260K' ? sharedPath('data', 'models', `${model}.gguf`) : sharedPath('conformance', 'models', `${model}.gguf`);
    tokenizer = Tokenizer.fromMetadata(readGGUFHeader(path).metadata);
    tokenizers.set(model, tokenizer);
  }
  return tokenizer;
}

const runs = readdirSync(referenceDir).filter((name) => /\.[sb]\d\.json$/.test(name)).sort();

test('reference runs exist', () => {
  assert.ok(runs.length >= 20, `only ${runs.length} reference runs found`);
});

for (const name of runs) {
  test(`llama.cpp reference ${name}: prompt tokens, greedy piece bytes and streamed text`, () => {
    const run = JSON.parse(readFileSync(`${referenceDir}/${name}`, 'utf8')) as Run;
    const tokenizer = tokenizerFor(name);
    assert.deepEqual(tokenizer.encode(run.prompt, { addSpecial: true, parseSpecial: false }), run.prompt_tokens);
    if (run.greedy_bytes_hex !== undefined) {
      const bytes = Buffer.concat(run.greedy.map((id) => tokenizer.decodeToken(id)));
      assert.equal(bytes.toString('hex'), run.greedy_bytes_hex);
    }
    if (run.greedy_text !== null) {
      const stream = new StreamDecoder(tokenizer);
      assert.equal(run.greedy.map((id) => stream.push(id)).join('') + stream.flush(), run.greedy_text);
    }
  });
}

test('llama.cpp reference bert-f16.embd.json: WordPiece tokens with [CLS] and [SEP]', () => {
  const ref = JSON.parse(readFileSync(`${referenceDir}/bert-f16.embd.json`, 'utf8')) as { texts: string[]; tokens: number[][] };
  const bert = Tokenizer.fromMetadata(readGGUFHeader(sharedPath('conformance', 'models', 'bert-f16.gguf')).metadata);
  ref.texts.forEach((text, i) => assert.deepEqual(bert.encode(text), ref.tokens[i]));
});
