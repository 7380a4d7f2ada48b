// kiln's measured peak memory against its estimate. Each configuration runs in a child process that loads a model
// and fills batch × ctx positions (the estimate is for a full context: kiln's KV cache is zero pages until written);
// its peak RSS (VmHWM) must be within 10% of estimateInference(header, ctx, batch) =
//   runtime baseline + weights as stored + f16 KV cache + kiln's compute buffers.
// The baseline is measured once, not fitted: the peak RSS of the same child running a model too small to matter
// (dim 64, one layer: weights, KV and activations under 0.2 MB), i.e. Node, tsx, kiln's code, the WASM kernels
// and their worker threads, as they stand once a model has run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llamaSpec, makeModel } from '../../bench/make-models.js';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { estimateInference, kilnComputeBytes } from '../../src/estimate/estimate.js';
import { modelFromShape } from '../../src/estimate/model.js';
import { sharedPath } from '../shared.js';

const CHILD = join(import.meta.dirname, 'rss-child.ts');
const MiB = 2 ** 20;
const TOLERANCE = 0.1;

/**
 * dim 512, 8 layers (26M parameters in the blocks): weights and KV dominate the baseline. Large vocabularies add
 * embedding and output tables that cost little per token, so that GC timing, which moves the resident compute
 * buffers by ±15 MiB from run to run, is a small share of the total: vocab 32000 in F32, 64000 in F16.
 */
const medium = (vocab: number) => llamaSpec({ name: `medium-${vocab}`, dim: 512, layers: 8, heads: 8, kvHeads: 8, ffn: 1408, vocab, tied: false });
const TINY = llamaSpec({ name: 'tiny', dim: 64, layers: 1, heads: 2, kvHeads: 2, ffn: 64, vocab: 300, tied: false });

function peakRss(model: string, ctx: number, batch: number): number {
  const child = spawnSync(process.execPath, ['--import', 'tsx', CHILD, model, String(ctx), String(batch)], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(child.status, 0, `child failed: ${child.stderr}`);
  const { peakRss, generated } = JSON.parse(child.stdout.trim().split('\n').pop()!);
  assert.equal(generated, 4 * batch, 'every sequence ran to its full context');
  return peakRss;
}

let dir: string;
const models: Record<string, string> = {};
let baseline: number;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-rss-'));
  models.tiny = await makeModel(TINY, 'F32', dir);
  models.f32 = await makeModel(medium(32000), 'F32', dir);
  models.f16 = await makeModel(medium(64000), 'F16', dir);
  models.stories = sharedPath('data', 'models', 'stories260K.gguf');
  baseline = peakRss(models.tiny, 64, 1);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('kiln\'s compute buffers: the terms of kilnComputeBytes', () => {
  const model = modelFromShape({
    arch: 'llama', nLayer: 8, dim: 512, nHead: 8, nKvHead: 8, keyLength: 64, valueLength: 64, ffn: 1408, vocab: 8000,
    tiedEmbeddings: false, nExpert: 0, nExpertUsed: 0, norm: 'rms', qkvBias: false,
  });
  // T = 512: every array of a layer is over SLAB_ITEM_MAX values, one layer's are resident: 4·512·(4·512 + 4·512 +
  // 3·1408) = 17,039,360 B, plus the kept layer output 4·512·512; widest matmul scratch 4·512·(2·1408 + 512) =
  // 6,815,744 B; logits 4·8000
  assert.equal(kilnComputeBytes(model, 512, 1, 512), 17_039_360 + 1_048_576 + 6_815_744 + 32_000);
  // T = 16: still all over 4096 values (16·512); attention's gathered keys/values 2·16·1024 + q/out 4·16·1024
  assert.equal(kilnComputeBytes(model, 16, 1, 512), 4 * 16 * 8320 + 4 * 16 * 512 + Math.max(4 * 16 * 3328, 2 * 16 * 1024 + 4 * 16 * 1024) + 32_000);
  // T = 4: gate, up and the swiglu activation (1408 wide: 5632 values) are handed on; the 512-wide ones (4096 values)
  // live in slabs, all 8 layers' of them; the layer output (2048 values) too
  assert.equal(kilnComputeBytes(model, 4, 1, 512), 4 * 4 * 3 * 1408 + 8 * 4 * 4 * (8320 - 3 * 1408) + Math.max(4 * 4 * 3328, 2 * 4 * 1024 + 4 * 4 * 1024) + 32_000);
});

const CONFIGS = [
  { name: 'stories260K, ctx 256, batch 1', model: 'stories', ctx: 256, batch: 1 },
  { name: 'random llama dim 512 × 8 layers, vocab 32000, F32, ctx 512, batch 1', model: 'f32', ctx: 512, batch: 1 },
  { name: 'random llama dim 512 × 8 layers, vocab 64000, F16, ctx 256, batch 4', model: 'f16', ctx: 256, batch: 4 },
];

for (const c of CONFIGS) {
  test(`peak RSS within 10% of the estimate: ${c.name}`, { timeout: 600_000 }, (t) => {
    const measured = peakRss(models[c.model], c.ctx, c.batch);
    const estimate = estimateInference(readGGUFHeader(models[c.model]), c.ctx, c.batch, 'f16', baseline);
    const terms = estimate.terms.map((term) => `${term.id} ${(term.bytes / MiB).toFixed(1)}`).join(', ');
    const error = estimate.total / measured - 1;
    t.diagnostic(`measured ${(measured / MiB).toFixed(1)} MiB, estimated ${(estimate.total / MiB).toFixed(1)} MiB (${terms}), error ${(100 * error).toFixed(1)}%`);
    assert.ok(Math.abs(error) <= TOLERANCE, `estimate off by ${(100 * error).toFixed(1)}%`);
  });
}
