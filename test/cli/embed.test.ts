// `kiln embed` (lines with leading values and norm, --json vectors equal to embedTokens, --pooling, --no-normalize),
// and the other commands on an encoder: run, chat and perplexity refuse in one line; bench measures pp alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BenchResult } from '../../src/cli/commands/bench.js';
import { Model } from '../../src/generate/model.js';
import { embedTokens } from '../../src/generate/embed.js';
import { sharedPath } from '../shared.js';
import { kiln as kilnInProcess } from '../helpers/cli.js';

const BERT = sharedPath('conformance', 'models', 'bert-f16.gguf');
const bert = Model.load(BERT);
const TEXTS = ['hello world', 'The quick brown fox jumps over the lazy dog.'];
const tokens = TEXTS.map((t) => bert.tokenizer.encode(t, { addSpecial: true, parseSpecial: true }));

/** stdout lines of `kiln ...argv`, which must succeed */
async function run(...argv: string[]): Promise<string[]> {
  const { stdout, stderr, status } = await kilnInProcess(...argv);
  assert.equal(status, 0, stderr);
  return stdout.trimEnd().split('\n');
}

/** `kiln ...argv` must fail with `status`, saying `message` */
async function fails(status: number, message: RegExp, ...argv: string[]): Promise<void> {
  const result = await kilnInProcess(...argv);
  assert.equal(result.status, status, argv.join(' '));
  assert.match(result.stderr, message);
}

test('kiln embed: one line per text with its first values and norm 1; --json gives embedTokens\'s vectors', async () => {
  const lines = await run('embed', BERT, ...TEXTS);
  assert.equal(lines.length, 2);
  lines.forEach((line, i) => {
    const first = Array.from(embedTokens(bert, tokens[i]).subarray(0, 6), (v) => v.toFixed(6)).join(' ');
    assert.equal(line, `embedding ${i}: ${first} … (64 values, norm 1.000000, ${tokens[i].length} tokens)`);
  });
  const vectors = JSON.parse((await run('embed', BERT, ...TEXTS, '--json')).join('\n')) as number[][];
  assert.deepEqual(vectors.map((v) => Float32Array.from(v)), tokens.map((t) => embedTokens(bert, t)));
});

test('kiln embed --pooling cls --no-normalize: the raw first-token state; bad options and too long a text are refused', async () => {
  const [raw] = JSON.parse((await run('embed', BERT, TEXTS[1], '--json', '--pooling', 'cls', '--no-normalize')).join('\n')) as number[][];
  assert.deepEqual(Float32Array.from(raw), embedTokens(bert, tokens[1], { pooling: 'cls', normalize: false }));
  assert.ok(Math.abs(Math.hypot(...raw) - 1) > 1e-3, 'not normalized');
  await fails(2, /--pooling.*max.*(mean, cls, last|Allowed choices)/s, 'embed', BERT, 'x', '--pooling', 'max');
  await fails(2, /missing required argument 'TEXT/, 'embed', BERT);
  await fails(1, /602 tokens.*512/, 'embed', BERT, 'word '.repeat(600));
});

test('kiln bench on an encoder measures prompt processing alone', async () => {
  const { results } = JSON.parse((await run('bench', BERT, '-p', '32', '-n', '8', '-r', '1', '--json')).join('\n')) as { results: BenchResult[] };
  assert.deepEqual(results.map((r) => r.test), ['pp32']);
  assert.ok(results[0].median > 0);
});

test('kiln run, chat and perplexity on an encoder: one line saying to use kiln embed, exit 1', async () => {
  for (const argv of [['run', BERT, '-p', 'hello'], ['chat', BERT], ['perplexity', BERT, '-f', 'README.md', '-c', '64']]) {
    const { status, stdout, stderr } = await kilnInProcess(...argv);
    assert.equal(status, 1, stderr);
    assert.equal(stdout, '');
    assert.match(stderr, /^kiln (run|chat|perplexity): a bert model has no language-model head: it embeds text \(kiln embed\) but does not generate\n$/);
  }
});
