// `kiln tokenize`: ids as JSON or one `id 'piece'` line per token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

/** the lines `kiln tokenize ...argv` prints */
async function run(...argv: string[]): Promise<string[]> {
  const { stdout, stderr, status } = await kiln('tokenize', ...argv);
  assert.equal(status, 0, stderr);
  return stdout.trimEnd().split('\n');
}

const model = sharedPath('data', 'models', 'llama-2-tiny-random.gguf');

test('kiln tokenize --ids prints the ids as JSON; --no-bos and --no-parse-special are honoured', async () => {
  assert.deepEqual(await run(model, '<s>Hello world', '--ids'), ['[1,1,15043,3186]']);
  assert.deepEqual(await run(model, 'Hello world', '--ids', '--no-bos'), ['[15043,3186]']);
  const literal = JSON.parse((await run(model, '<s>Hello', '--ids', '--no-bos', '--no-parse-special'))[0]) as number[];
  assert.ok(!literal.includes(1));
});

test('kiln tokenize prints one id and piece per token, split bytes escaped', async () => {
  assert.deepEqual(await run(model, 'Hello 🦙'), [
    "     1 '<s>'", " 15043 ' Hello'", " 29871 ' '", "   243 '\\xF0'", "   162 '\\x9F'", "   169 '\\xA6'", "   156 '\\x99'",
  ]);
  const noText = await kiln('tokenize', model);
  assert.equal(noText.status, 2);
  assert.match(noText.stderr, /missing required argument 'TEXT'/);
});
