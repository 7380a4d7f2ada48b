// `kiln run` through the engine: JSON output, streamed text with its speed line, stop strings, context limit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Model } from '../../src/generate/model.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

const modelPath = sharedPath('data', 'models', 'stories260K.gguf');
const tokenizer = Model.load(modelPath).tokenizer;

/** runs `kiln run MODEL ...argv` */
function run(...argv: string[]) {
  return kiln('run', modelPath, ...argv);
}

interface RunJson { prompt_tokens: number[]; tokens: number[]; text: string }

test('kiln run --json: prompt tokens, greedy tokens and their text; streaming prints the same text and the speed line', async () => {
  const json = JSON.parse((await run('-p', 'Once upon a time', '-n', '40', '--temp', '0', '--json')).stdout) as RunJson;
  assert.deepEqual(json.prompt_tokens, tokenizer.encode('Once upon a time'));
  assert.equal(json.tokens.length, 40);
  assert.equal(json.text, tokenizer.decode(json.tokens));
  const streamed = await run('-p', 'Once upon a time', '-n', '40', '--temp', '0');
  assert.equal(streamed.stdout, `${json.text}\n`);
  assert.match(streamed.stderr, /^prompt 5 tokens in [\d.]+ s \([\d.]+ t\/s\); generated 40 tokens in [\d.]+ s \([\d.]+ t\/s\)\n$/);
});

test('kiln run: a stop string cuts the text before it; --ctx ends generation at the context', async () => {
  const free = JSON.parse((await run('-p', 'Once upon a time', '-n', '40', '--temp', '0', '--json')).stdout) as RunJson;
  const cut = free.text.indexOf('girl');
  assert.ok(cut > 0);
  const stopped = JSON.parse((await run('-p', 'Once upon a time', '-n', '40', '--temp', '0', '--stop', 'girl', '--json')).stdout) as RunJson;
  assert.equal(stopped.text, free.text.slice(0, cut));
  const short = JSON.parse((await run('-p', 'Once upon a time', '-n', '40', '--temp', '0', '--ctx', '12', '--json')).stdout) as RunJson;
  assert.deepEqual(short.tokens, free.tokens.slice(0, 12 - 5));
});
