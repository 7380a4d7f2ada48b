// kiln's measured peak memory while training against its estimate. Each configuration trains a byte-vocabulary
// llama for a few steps in a child process (kiln's trainer to the end: steps, checkpoint, validation, GGUF); its
// peak RSS (VmHWM) must be within 10% of estimateMemory({ mode: 'pretrain', runtime: 'kiln', … }) =
//   runtime baseline + f32 weights + f32 gradients + AdamW m and v + one step's autograd buffers + dataset tokens
//   + the checkpoint buffer.
// The baseline is measured once, not fitted: the peak RSS of the same child training a model too small to matter
// (dim 16, one layer, 8 tokens a step, a 4 KB corpus: under 0.1 MB of model, step and data), i.e. Node, tsx,
// kiln's code and the WebAssembly kernel as they stand once a run has gone through all its phases.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { estimateMemory, kilnTrainingStepBytes } from '../../src/estimate/estimate.js';
import { modelFromShape, type ModelShape } from '../../src/estimate/model.js';
import { sharedPath } from '../shared.js';

const CHILD = join(import.meta.dirname, 'rss-train-child.ts');
const MiB = 2 ** 20;
const TOLERANCE = 0.1;
const BYTE_VOCAB = 256;

interface Run {
  name: string;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  seqLen: number;
  batchSize: number;
  steps: number;
  corpusBytes: number;
}

const TINY: Run = { name: 'tiny', dim: 16, layers: 1, heads: 2, kvHeads: 2, ffn: 32, seqLen: 8, batchSize: 1, steps: 2, corpusBytes: 4096 };
const RUNS: Run[] = [
  { name: 'dim 128 × 4 layers, ffn 384, seq 64, batch 8', dim: 128, layers: 4, heads: 4, kvHeads: 4, ffn: 384, seqLen: 64, batchSize: 8, steps: 3, corpusBytes: 60_000 },
  { name: 'dim 256 × 4 layers, ffn 768, seq 128, batch 4', dim: 256, layers: 4, heads: 4, kvHeads: 4, ffn: 768, seqLen: 128, batchSize: 4, steps: 3, corpusBytes: 60_000 },
  { name: 'dim 192 × 3 layers, 6 heads / 2 kv, ffn 512, seq 96, batch 6', dim: 192, layers: 3, heads: 6, kvHeads: 2, ffn: 512, seqLen: 96, batchSize: 6, steps: 3, corpusBytes: 60_000 },
];

let dir: string;
let baseline: number;

/** writes the run's corpus (the start of Tiny Shakespeare) and configuration; returns the configuration's path */
function writeRun(run: Run, index: number): string {
  const corpus = join(dir, `corpus-${index}.txt`);
  writeFileSync(corpus, readFileSync(sharedPath('data', 'text', 'tinyshakespeare.txt')).subarray(0, run.corpusBytes));
  const config = {
    model: { dim: run.dim, layers: run.layers, heads: run.heads, kvHeads: run.kvHeads, ffn: run.ffn, ctx: run.seqLen },
    tokenizer: 'bytes', corpus, valFraction: 0.05, steps: run.steps, batchSize: run.batchSize, seqLen: run.seqLen,
    lr: 1e-3, evalTokens: 1024, threads: 1, output: join(dir, `run-${index}`, 'model.gguf'),
  };
  const path = join(dir, `config-${index}.json`);
  writeFileSync(path, JSON.stringify(config));
  return path;
}

function peakRss(run: Run, index: number): number {
  const child = spawnSync(process.execPath, ['--import', 'tsx', CHILD, writeRun(run, index)], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(child.status, 0, `child failed: ${child.stderr}`);
  const { peakRss, steps } = JSON.parse(child.stdout.trim().split('\n').pop()!);
  assert.equal(steps, run.steps, 'the run trained every step');
  return peakRss;
}

function shapeOf(run: Run): ModelShape {
  const head = run.dim / run.heads;
  return {
    arch: 'llama', nLayer: run.layers, dim: run.dim, nHead: run.heads, nKvHead: run.kvHeads, keyLength: head, valueLength: head,
    ffn: run.ffn, vocab: BYTE_VOCAB, tiedEmbeddings: false, nExpert: 0, nExpertUsed: 0, norm: 'rms', qkvBias: false,
  };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-rss-train-'));
  baseline = peakRss(TINY, 0);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('kiln training step: the buffers of kilnTrainingStepBytes', () => {
  // dim 8, 1 layer, 2 heads of 4, ffn 16, vocab 10; 2 sequences of 4 tokens: n = 8
  const shape = { ...shapeOf({ ...TINY, dim: 8, heads: 2, ffn: 16 }), vocab: 10 };
  const [values, grads, weightsT, attention, softmax, jsHeap] = kilnTrainingStepBytes(shape, 4, 2).map((p) => p.bytes);
  // per layer n·(6·8 + 2·8 + 2·8 + 8 + 8 + 4·16) = 8·160; embedding and final norm 2·8·8; logits 8·10
  assert.equal(values, 4 * (8 * 160 + 2 * 8 * 8 + 8 * 10));
  assert.equal(grads, 4 * (8 * 144 + 2 * 8 * 8 + 8 * 10));
  // wq, wk, wv, wo 4·8·8; gate, up, down 3·8·16; output 8·10
  assert.equal(weightsT, 4 * (4 * 64 + 3 * 128 + 80));
  // probabilities 2 sequences · 2 heads · 4²; gathers 8·4·4 + 4²
  assert.equal(attention, 4 * (2 * 2 * 16 + 8 * 4 * 4 + 16));
  // the loss's f64 softmax 8·n·V; on the JS heap f64 rope angles 8·n·hd, 1/rms per row of 3 norms
  assert.equal(softmax, 8 * 8 * 10);
  assert.equal(jsHeap, 8 * 8 * 4 + 4 * 8 * 3);
});

RUNS.forEach((run, i) => {
  test(`training peak RSS within 10% of the estimate: ${run.name}`, { timeout: 600_000 }, (t) => {
    const measured = peakRss(run, i + 1);
    const estimate = estimateMemory({
      model: modelFromShape(shapeOf(run), run.name, 'F32'), mode: 'pretrain', runtime: 'kiln',
      ctx: run.seqLen, batch: run.batchSize, datasetTokens: run.corpusBytes, overheadBytes: baseline,
    });
    const terms = estimate.terms.map((term) => `${term.id} ${(term.bytes / MiB).toFixed(1)}`).join(', ');
    const error = estimate.total / measured - 1;
    t.diagnostic(`measured ${(measured / MiB).toFixed(1)} MiB, estimated ${(estimate.total / MiB).toFixed(1)} MiB (${terms}), error ${(100 * error).toFixed(1)}%`);
    assert.ok(Math.abs(error) <= TOLERANCE, `estimate off by ${(100 * error).toFixed(1)}%`);
  });
});
