// `kiln embed` (lines with leading values and norm, --json vectors equal to embedTokens, --pooling, --no-normalize),
// and the other commands on an encoder: run, chat and perplexity refuse in one line; bench measures pp alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import type { Command } from '../../src/cli/command.js';
import { embedCommand } from '../../src/cli/commands/embed.js';
import { benchCommand, type BenchResult } from '../../src/cli/commands/bench.js';
import { InvalidRequestError } from '../../src/engine/engine.js';
import { Model } from '../../src/generate/model.js';
import { embedTokens } from '../../src/generate/embed.js';
import { sharedPath } from '../shared.js';

const BERT = sharedPath('conformance', 'models', 'bert-f16.gguf');
const bert = Model.load(BERT);
const TEXTS = ['hello world', 'The quick brown fox jumps over the lazy dog.'];
const tokens = TEXTS.map((t) => bert.tokenizer.encode(t, { addSpecial: true, parseSpecial: true }));

/** what the command prints with console.log, line by line */
async function run(command: Command, ...argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (line: string) => lines.push(line);
  try {
    await command.run(parseArgs(argv, command.options));
  } finally {
    console.log = log;
  }
  return lines;
}

test('kiln embed: one line per text with its first values and norm 1; --json gives embedTokens\'s vectors', async () => {
  const lines = await run(embedCommand, BERT, ...TEXTS);
  assert.equal(lines.length, 2);
  lines.forEach((line, i) => {
    const first = Array.from(embedTokens(bert, tokens[i]).subarray(0, 6), (v) => v.toFixed(6)).join(' ');
    assert.equal(line, `embedding ${i}: ${first} … (64 values, norm 1.000000, ${tokens[i].length} tokens)`);
  });
  const vectors = JSON.parse((await run(embedCommand, BERT, ...TEXTS, '--json')).join('\n')) as number[][];
  assert.deepEqual(vectors.map((v) => Float32Array.from(v)), tokens.map((t) => embedTokens(bert, t)));
});

test('kiln embed --pooling cls --no-normalize: the raw first-token state; bad options and too long a text are refused', async () => {
  const [raw] = JSON.parse((await run(embedCommand, BERT, TEXTS[1], '--json', '--pooling', 'cls', '--no-normalize')).join('\n')) as number[][];
  assert.deepEqual(Float32Array.from(raw), embedTokens(bert, tokens[1], { pooling: 'cls', normalize: false }));
  assert.ok(Math.abs(Math.hypot(...raw) - 1) > 1e-3, 'not normalized');
  await assert.rejects(run(embedCommand, BERT, 'x', '--pooling', 'max'), UsageError);
  await assert.rejects(run(embedCommand, BERT, 'x', '--normalize', '--no-normalize'), UsageError);
  await assert.rejects(run(embedCommand, BERT), UsageError);
  await assert.rejects(run(embedCommand, BERT, 'word '.repeat(600)), (e: unknown) => e instanceof InvalidRequestError && /602 tokens; the context holds 512/.test(e.message));
});

test('kiln bench on an encoder measures prompt processing alone', async () => {
  const { results } = JSON.parse((await run(benchCommand, BERT, '-p', '32', '-n', '8', '-r', '1', '--json')).join('\n')) as { results: BenchResult[] };
  assert.deepEqual(results.map((r) => r.test), ['pp32']);
  assert.ok(results[0].median > 0);
  await assert.rejects(run(benchCommand, BERT, '-p', '513'), UsageError);
});

/** `kiln ARGS…` as a process: exit code and output */
function kiln(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', ...args]);
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

test('kiln run, chat and perplexity on an encoder: one line saying to use kiln embed, exit 1', async () => {
  const results = await Promise.all([
    kiln(['run', BERT, '-p', 'hello']),
    kiln(['chat', BERT], 'hello\n'),
    kiln(['perplexity', BERT, '-f', 'README.md', '-c', '64']),
  ]);
  for (const { code, stdout, stderr } of results) {
    assert.equal(code, 1, stderr);
    assert.equal(stdout, '');
    assert.match(stderr, /^kiln (run|chat|perplexity): .*a bert model has no language-model head: it embeds text \(kiln embed\) but does not generate\n$/);
  }
});
