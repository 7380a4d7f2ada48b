// Every architecture of the model zoo through the everyday commands: `kiln run` gives llama.cpp's greedy tokens,
// `kiln serve` the same text as `kiln run`, `kiln chat` answers a piped line, `kiln perplexity` and `kiln bench`
// report figures; the encoder (bert) embeds and benches its prompt, and is refused by the generating commands.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import type { CompletionCreateParamsNonStreaming } from 'openai/resources/completions';
import { kiln } from '../helpers/cli.js';
import { startServer } from '../server/helpers.js';

const text = sharedPath('data', 'text', 'tinystories-sample-197k.txt');
const decoders = [
  ['gpt2-f16.gguf', 'gpt2-f16.b1.json'],
  ['phi3-f32.gguf', 'phi3-f32.s1.json'],
  ['gemma2-f32.gguf', 'gemma2-f32.s1.json'],
  ['deepseek2-f32.gguf', 'deepseek2-f32.s1.json'],
] as const;

/** `kiln ...argv`, which must succeed */
async function ok(...argv: string[]) {
  const result = await kiln(...argv);
  assert.equal(result.status, 0, result.stderr);
  return result;
}

for (const [file, referenceFile] of decoders) {
  const path = sharedPath('conformance', 'models', file);
  const reference = JSON.parse(readFileSync(sharedPath('conformance', 'reference', referenceFile), 'utf8')) as { prompt: string; greedy: number[] };
  const n = 8;

  test(`${file}: run (llama.cpp's greedy tokens), serve (the same text), chat, perplexity, bench`, { timeout: 600_000 }, async () => {
    const run = JSON.parse((await ok('run', path, '-p', reference.prompt, '-n', String(n), '--temp', '0', '--ignore-eos', '--json')).stdout);
    assert.deepEqual(run.tokens, reference.greedy.slice(0, n));

    const served = await startServer({}, {}, { path, name: file });
    try {
      const completion = await served.client.completions.create({
        model: file, prompt: reference.prompt, max_tokens: n, temperature: 0, ignore_eos: true,
      } as CompletionCreateParamsNonStreaming);
      assert.equal(completion.choices[0].text, run.text);
      assert.equal(completion.usage?.completion_tokens, n);
    } finally {
      await served.close();
    }

    const chat = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', 'chat', path, '-n', '4', '--temp', '0'], {
      input: 'Hi\n', encoding: 'utf8', timeout: 300_000,
    });
    assert.equal(chat.status, 0, chat.stderr);
    assert.notEqual(chat.stdout.trim(), '');

    const ppl = await ok('perplexity', path, '-f', text, '--chunks', '2', '-c', '32');
    const figure = /^PPL = ([0-9.]+) \+\/- [0-9.]+ \(2 chunks of 32 tokens/m.exec(ppl.stdout);
    assert.ok(figure && Number(figure[1]) > 1, ppl.stdout);

    const bench = JSON.parse((await ok('bench', path, '-p', '16', '-n', '4', '-r', '1', '--json')).stdout);
    assert.deepEqual(bench.results.map((r: { test: string }) => r.test), ['pp16', 'tg4']);
    for (const r of bench.results) assert.ok(r.median > 0);
  });
}

test('bert-f16.gguf: embed and bench its prompt; run and perplexity refuse an encoder in one line', async () => {
  const path = sharedPath('conformance', 'models', 'bert-f16.gguf');
  const vectors = JSON.parse((await ok('embed', path, 'hello world', 'good night', '--json')).stdout) as number[][];
  assert.deepEqual(vectors.map((v) => v.length), [64, 64]);
  for (const v of vectors) assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5);
  const bench = JSON.parse((await ok('bench', path, '-p', '16', '-r', '1', '--json')).stdout);
  assert.deepEqual(bench.results.map((r: { test: string }) => r.test), ['pp16']);
  for (const argv of [['run', path, '-p', 'hello'], ['perplexity', path, '-f', text]]) {
    const refused = await kiln(...argv);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /^kiln \w+: a bert model has no language-model head[^\n]*\n$/);
  }
});
