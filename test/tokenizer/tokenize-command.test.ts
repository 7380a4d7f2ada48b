// `kiln tokenize`: ids as JSON or one `id 'piece'` line per token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { tokenizeCommand } from '../../src/cli/commands/tokenize.js';
import { sharedPath } from '../shared.js';

function run(...argv: string[]): string[] {
  const lines: string[] = [];
  const log = console.log;
  console.log = (line: string) => lines.push(line);
  try {
    tokenizeCommand.run(parseArgs(argv, tokenizeCommand.options));
  } finally {
    console.log = log;
  }
  return lines;
}

const model = sharedPath('data', 'models', 'llama-2-tiny-random.gguf');

test('kiln tokenize --ids prints the ids as JSON; --no-bos and --no-parse-special are honoured', () => {
  assert.deepEqual(run(model, '<s>Hello world', '--ids'), ['[1,1,15043,3186]']);
  assert.deepEqual(run(model, 'Hello world', '--ids', '--no-bos'), ['[15043,3186]']);
  const literal = JSON.parse(run(model, '<s>Hello', '--ids', '--no-bos', '--no-parse-special')[0]) as number[];
  assert.ok(!literal.includes(1));
});

test('kiln tokenize prints one id and piece per token, split bytes escaped', () => {
  assert.deepEqual(run(model, 'Hello 🦙'), [
    "     1 '<s>'", " 15043 ' Hello'", " 29871 ' '", "   243 '\\xF0'", "   162 '\\x9F'", "   169 '\\xA6'", "   156 '\\x99'",
  ]);
  assert.throws(() => run(model), UsageError);
});
