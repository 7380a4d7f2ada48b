// One context policy in every command (src/cli/context.ts): without -c the model's trained context (capped where
// memory or time needs it), more than it with one warning, and what a context cuts short said, never done
// silently. The model is stories260K with its trained context set to 16, so that every default shows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { metaU32, writeGGUF } from '../../src/gguf/writer.js';
import { ggufWithTensors } from '../../src/train/load-gguf-params.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-context-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const model = join(dir, 'stories-ctx16.gguf');
const text = sharedPath('data', 'text', 'tinystories-sample-197k.txt');
const BEYOND = /^warning: -c 32 goes past the 16 positions stories-ctx16\.gguf was trained for; expect worse output beyond them$/m;

const ready = (async () => {
  const stories = ggufWithTensors(loadGGUF(sharedPath('data', 'models', 'stories260K.gguf')), new Map());
  await writeGGUF(model, { ...stories, metadata: new Map([...stories.metadata, ['llama.context_length', metaU32(16)]]) });
})();

/** `kiln ...argv`, which must succeed */
async function ok(...argv: string[]) {
  await ready;
  const result = await kiln(...argv);
  assert.equal(result.status, 0, result.stderr);
  return result;
}

test('run: the prompt and -n past the context are said before generating, and generation ends there', async () => {
  // the default model was trained for 256 positions: 4 prompt tokens leave room for 252
  const cut = await ok('run', '-p', 'The jury said', '-n', '300', '--temp', '0', '--ignore-eos', '--json');
  assert.match(cut.stderr, /^warning: the prompt \(4 tokens\) and 300 more need 304 positions, the context holds 256: generation stops after 252 tokens/);
  assert.equal(JSON.parse(cut.stdout).tokens.length, 252);
  const fits = await ok('run', model, '-p', 'Once', '-n', '4', '--temp', '0', '--json');
  assert.equal(fits.stderr, '');
  const longer = await ok('run', model, '-p', 'Once', '-n', '20', '-c', '32', '--temp', '0', '--json');
  assert.match(longer.stderr, BEYOND);
  assert.equal(JSON.parse(longer.stdout).tokens.length, 20);
});

test('eval: a prompt longer than the trained context is evaluated with a warning', async () => {
  assert.equal((await ok('eval', model, '-p', 'Once upon a time', '--json')).stderr, '');
  const long = await ok('eval', model, '-p', 'Once upon a time there was a little girl named Lily who loved to play', '--json');
  assert.match(long.stderr, /^warning: the prompt \(\d+ tokens\) goes past the 16 positions stories-ctx16\.gguf was trained for/);
  assert.ok(JSON.parse(long.stdout).prompt_tokens.length > 16);
});

test('perplexity and imatrix: chunks of the trained context by default, progress lines from the first chunk', async () => {
  const ppl = await ok('perplexity', model, '-f', text, '--chunks', '3');
  assert.match(ppl.stdout, /^PPL = [0-9.]+ \+\/- [0-9.]+ \(3 chunks of 16 tokens, 21 tokens scored\)$/m);
  assert.match(ppl.stderr, /^chunk 1\/3 \| PPL [0-9.]+ \| /);
  const longer = await ok('perplexity', model, '-f', text, '--chunks', '1', '-c', '32');
  assert.match(longer.stdout, /\(1 chunks of 32 tokens/);
  assert.match(longer.stderr, BEYOND);
  const imatrix = await ok('imatrix', model, '-f', text, '--chunks', '2', '-o', join(dir, 'imatrix.dat'));
  assert.match(imatrix.stdout, /over 2 chunks of 16 tokens/);
  assert.match(imatrix.stderr, /^chunk 1\/2 \| PPL [0-9.]+ \| /);
});

test('quant-report: chunks of the trained context by default', async () => {
  const report = await ok('quant-report', model, '-f', text, '--types', 'int8-channel', '--chunks', '1');
  assert.match(report.stderr, /^stories-ctx16\.gguf: base logits over 1 chunks of 16 tokens$/m);
  assert.match((await ok('quant-report', model, '-f', text, '--types', 'int8-channel', '--chunks', '1', '-c', '32')).stderr, BEYOND);
});

test('bench: pp and tg within the trained context by default; more with a warning', async () => {
  const tests = (stdout: string) => (JSON.parse(stdout) as { results: { test: string }[] }).results.map((r) => r.test);
  const byDefault = await ok('bench', model, '-r', '1', '-t', '1', '--json');
  assert.deepEqual(tests(byDefault.stdout), ['pp16', 'tg16']);
  assert.equal(byDefault.stderr, '');
  const longer = await ok('bench', model, '-r', '1', '-t', '1', '-p', '32', '-n', '8', '--json');
  assert.deepEqual(tests(longer.stdout), ['pp32', 'tg8']);
  assert.match(longer.stderr, /^warning: -p 32 goes past the 16 positions/);
});

/** `kiln ...argv` as a process, its stderr once `until` shows in it (then killed) or it exits */
async function stderrOf(argv: string[], until: RegExp, input = ''): Promise<string> {
  await ready;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', ...argv], { stdio: ['pipe', 'ignore', 'pipe'] });
  child.stdin.end(input);
  let stderr = '';
  return new Promise((resolve) => {
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
      if (until.test(stderr)) child.kill('SIGKILL');
    });
    child.once('exit', () => resolve(stderr));
  });
}

test('serve and chat: the trained context by default (serve at most 2048), more with a warning', { timeout: 120_000 }, async () => {
  assert.match(await stderrOf(['serve', model, '--port', '0'], /at http:/), /stories-ctx16 \(context 16\) at http:/);
  const longer = await stderrOf(['serve', model, '--port', '0', '-c', '32'], /at http:/);
  assert.match(longer, BEYOND);
  assert.match(longer, /\(context 32\)/);
  assert.match(await stderrOf(['chat', model, '-c', '32'], /kiln chat/), BEYOND);
});
