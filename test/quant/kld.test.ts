// KL divergence statistics on hand-made distributions, the base-logits file (round trip, refusal of damaged
// files), and kiln perplexity --save-logits / --kl-base end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { KLDStats, LogitsFileError, LogitsReader, LogitsWriter, percentile, scoredPerChunk } from '../../src/quant/kld.js';
import { kiln } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-kld-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const logits = (...p: number[]) => Float32Array.from(p, Math.log);
// logits are float32: ln p is exact to ~1e-7
const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('KLD, Δp, top-1 agreement and both perplexities of hand-made distributions', () => {
  const stats = new KLDStats(3);
  // base (½, ¼, ¼) vs (¼, ½, ¼), target 0: KL = ½ln2 − ¼ln2 = ¼ln2, Δp = −¼, different top token
  stats.add(logits(0.5, 0.25, 0.25), 0, logits(0.25, 0.5, 0.25), 0, 0);
  // identical distributions (logits shifted by a constant), target 2: KL 0, Δp 0, same top token
  stats.add(Float32Array.of(2, 0, 1), 0, Float32Array.of(7, 5, 6), 0, 2);
  const s = stats.summary();
  assert.equal(s.positions, 2);
  close(s.meanKld, Math.LN2 / 8);
  close(s.kldPercentiles.get(100)!, Math.LN2 / 4);
  close(s.kldPercentiles.get(0)!, 0);
  close(s.kldPercentiles.get(50)!, Math.LN2 / 8);
  close(s.meanKldError, Math.LN2 / 8); // two values 0 and ¼ln2: sd ¼ln2·½, over √1
  assert.equal(s.sameTop, 0.5);
  close(s.meanDeltaP, -0.125);
  close(s.rmsDeltaP, Math.sqrt(0.0625 / 2));
  const p2 = Math.exp(1) / (Math.exp(2) + 1 + Math.exp(1)); // p(target 2) in both
  close(s.basePpl, Math.exp((Math.log(2) - Math.log(p2)) / 2));
  close(s.ppl, Math.exp((Math.log(4) - Math.log(p2)) / 2));
  close(s.lnPplRatio, Math.log(s.ppl / s.basePpl));
});

test('percentile interpolates between sorted neighbours', () => {
  const sorted = [0, 1, 2, 3, 10];
  assert.equal(percentile(sorted, 0), 0);
  assert.equal(percentile(sorted, 100), 10);
  assert.equal(percentile(sorted, 50), 2);
  close(percentile(sorted, 90), 7.2, 1e-12);
});

test('the logits file reads back what was written and refuses damaged files', () => {
  const path = join(dir, 'round.logits');
  const nVocab = 5, nCtx = 8;
  const writer = new LogitsWriter(path, nVocab, nCtx);
  const chunks = [0, 1].map((c) => ({
    tokens: Array.from({ length: nCtx }, (_, i) => 10 * c + i),
    logits: Float32Array.from({ length: nCtx * nVocab }, (_, i) => c * 1000 + i),
  }));
  for (const c of chunks) writer.addChunk(c.tokens, c.logits);
  writer.close();
  const reader = new LogitsReader(path);
  assert.deepEqual([reader.nVocab, reader.nCtx, reader.nChunks], [nVocab, nCtx, 2]);
  const second = reader.chunk(1);
  assert.deepEqual([...second.tokens], chunks[1].tokens);
  assert.equal(second.logits.length, scoredPerChunk(nCtx) * nVocab);
  assert.deepEqual(second.logits, chunks[1].logits.slice((nCtx >> 1) * nVocab, (nCtx - 1) * nVocab));
  assert.deepEqual([...reader.tokens(0)], chunks[0].tokens);
  assert.throws(() => reader.chunk(2), LogitsFileError);
  reader.close();

  truncateSync(path, 100);
  assert.throws(() => new LogitsReader(path), LogitsFileError);
  writeFileSync(path, 'not a logits file at all');
  assert.throws(() => new LogitsReader(path), LogitsFileError);
});

test('kiln perplexity --save-logits then --kl-base: the same model has KLD 0 and 100 % agreement; Q4_0 does not', async () => {
  const text = sharedPath('data', 'text', 'tinystories-sample-197k.txt');
  const model = sharedPath('conformance', 'models', 'kq-f32.gguf');
  const base = join(dir, 'kq.logits');
  const run = async (argv: string[]) => {
    const { stdout, stderr, status } = await kiln('perplexity', ...argv);
    if (status !== 0) throw new Error(stderr);
    return stdout.trimEnd();
  };
  const saved = await run([model, '-f', text, '-c', '32', '--chunks', '2', '--save-logits', base]);
  assert.match(saved, /saved the logits of 30 positions/);
  const same = await run([model, '-f', text, '--kl-base', base]);
  assert.match(same, /Mean    KLD:\s+0\.000000 ± 0\.000000/);
  assert.match(same, /Same top p:\s+100\.000 ± 0\.000 %/);
  assert.equal(/PPL = (\S+)/.exec(same)![1], /PPL = (\S+)/.exec(saved)![1]);
  const q4 = await run([sharedPath('conformance', 'models', 'kq-Q4_0.gguf'), '-f', text, '--kl-base', base]);
  const kld = Number(/Mean    KLD:\s+(\S+)/.exec(q4)![1]);
  assert.ok(kld > 1e-4 && kld < 1, `Q4_0 mean KLD ${kld}`);
  assert.match(q4, /Mean ln\(PPL\(Q\)\/PPL\(base\)\)/);
  // without -f the base file's own tokens are used: the same numbers
  const q4NoText = await run([sharedPath('conformance', 'models', 'kq-Q4_0.gguf'), '--kl-base', base]);
  assert.equal(q4NoText, q4);
  await assert.rejects(run([model, '-f', text, '-c', '64', '--kl-base', base]), /differs from the 32 tokens per chunk/);
  assert.ok(readFileSync(base).length > 0);
});
