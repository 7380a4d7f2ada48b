// `kiln run --grammar FILE` and `--json-schema FILE`: the generated text is a sentence of the grammar.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kiln } from '../helpers/cli.js';
import { sharedPath } from '../shared.js';

const MODEL = sharedPath('data', 'models', 'stories260K.gguf');
const dir = mkdtempSync(join(tmpdir(), 'kiln-grammar-'));

test('kiln run --grammar holds the text to a llama.cpp grammar (chess.gbnf), ending where it may end', async () => {
  const chess = fileURLToPath(new URL('./grammars/chess.gbnf', import.meta.url));
  const run = await kiln('run', MODEL, '-p', 'x', '--grammar', chess, '-n', '40', '--seed', '4', '--json');
  assert.equal(run.status, 0, run.stderr);
  const { text } = JSON.parse(run.stdout);
  const move = '(([a-h]x)?[a-h][1-8](=[NBKQR])?|[NBKQR][a-h]?[1-8]?x?[a-h][1-8]|O-O(-O)?)[+#]?';
  assert.match(text, new RegExp(`^1\\. ${move} ${move}\\n([1-9][0-9]?\\. ${move} ${move}\\n)+$`));
});

test('kiln run --json-schema writes a document of the schema; a bad schema or both flags fail clearly', async () => {
  const schema = join(dir, 'schema.json');
  writeFileSync(schema, JSON.stringify({ type: 'object', properties: { answer: { enum: ['yes', 'no'] }, n: { type: 'integer', minimum: 1, maximum: 9 } }, required: ['answer', 'n'], additionalProperties: false }));
  const run = await kiln('run', MODEL, '-p', 'Once upon a time', '--json-schema', schema, '-n', '40', '--seed', '1', '--json');
  assert.equal(run.status, 0, run.stderr);
  const value = JSON.parse(JSON.parse(run.stdout).text);
  assert.ok(['yes', 'no'].includes(value.answer) && Number.isInteger(value.n) && value.n >= 1 && value.n <= 9, JSON.stringify(value));

  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ type: 'object', patternProperties: {} }));
  const refused = await kiln('run', MODEL, '-p', 'x', '--json-schema', bad, '-n', '4');
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /patternProperties/);
  assert.equal((await kiln('run', MODEL, '-p', 'x', '--json-schema', bad, '--grammar', bad)).status, 2);
});

test('kiln bench --grammar times sampled decoding with and without the grammar', async () => {
  const json = fileURLToPath(new URL('./grammars/json.gbnf', import.meta.url));
  const run = await kiln('bench', MODEL, '-p', '0', '-n', '16', '-r', '2', '-t', '1', '--grammar', json, '--json');
  assert.equal(run.status, 0, run.stderr);
  const { grammar } = JSON.parse(run.stdout);
  assert.equal(grammar.plain.length, 2);
  assert.equal(grammar.constrained.length, 2);
  assert.ok(grammar.maskMs.every((ms: number) => ms > 0) && grammar.masksComputed > 0, JSON.stringify(grammar));
  const table = await kiln('bench', MODEL, '-p', '0', '-n', '8', '-r', '1', '-t', '1', '--grammar', json);
  assert.match(table.stdout, /^ {2}mask time per token \d+\.\d+ ms/m);
});
