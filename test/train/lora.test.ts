// LoRA: adapter size, exact start from the base model, frozen base, SFT learning a held-out task, the adapter as a
// llama.cpp-layout GGUF that kiln's inference applies (and the merged model) with the trained model's behaviour.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { Rng } from '../../src/generate/rng.js';
import { Model } from '../../src/generate/model.js';
import { SingleSequence } from '../../src/generate/generate.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { writeGGUF } from '../../src/gguf/writer.js';
import { byteTokenizer, createModel, forwardLogits, modelGGUF } from '../../src/train/llama-model.js';
import { createLora, loraAdapterGGUF, loraForwardLogits, loraParamCount, mergedWeights, type LoraAdapter } from '../../src/train/lora.js';
import { ggufWithTensors } from '../../src/train/load-gguf-params.js';
import { evaluateSft, loraTuning, sft, type SftExample } from '../../src/train/sft.js';

/**
 * The task: a prompt of 4 random letters, a space, a letter c and "?"; the response "LOW." when c < n, else
 * "HIGH.". Held-out prompts are new draws; the base model (random weights) answers none of them.
 */
function taskExamples(count: number, rng: Rng): { prompt: string; response: string; example: SftExample }[] {
  const letter = () => String.fromCharCode(97 + Math.floor(rng.nextFloat() * 26));
  return Array.from({ length: count }, () => {
    const c = letter();
    const prompt = `${letter()}${letter()}${letter()}${letter()} ${c}?`, response = c < 'n' ? 'LOW.' : 'HIGH.';
    const bytes = Buffer.from(prompt + response);
    return { prompt, response, example: { tokens: Int32Array.from(bytes), learn: Uint8Array.from(bytes, (_, i) => (i >= prompt.length ? 1 : 0)) } };
  });
}

const paramCount = (params: { value: Float32Array }[]) => params.reduce((n, p) => n + p.value.length, 0);

test('rank-4 q,v adapters of a dim-256 model: < 1% of its parameters, logits exactly the base model\'s before training', () => {
  const model = createModel({ dim: 256, layers: 2, heads: 4, kvHeads: 4, ffn: 512, vocab: 256, ctx: 32 }, new Rng(7));
  const adapter = createLora(model, { rank: 4, alpha: 8, dropout: 0.05, targets: ['q', 'v'] }, new Rng(3));
  assert.deepEqual([...adapter.pairs.keys()], ['blk.0.attn_q.weight', 'blk.0.attn_v.weight', 'blk.1.attn_q.weight', 'blk.1.attn_v.weight']);
  const share = loraParamCount(adapter) / paramCount(model.params);
  assert.equal(loraParamCount(adapter), 4 * (256 * 4 + 4 * 256));
  assert.ok(share < 0.01, `trainable share ${share}`);
  console.log(`trainable: ${loraParamCount(adapter)} of ${paramCount(model.params)} (${(100 * share).toFixed(3)}%)`);
  const tokens = Int32Array.from(Buffer.from('hello, adapters!'));
  const base = forwardLogits(model, tokens, 1, tokens.length).value.slice();
  assert.deepEqual(loraForwardLogits(model, adapter, tokens, 1, tokens.length).value.slice(), base);
  assert.deepEqual(loraForwardLogits(model, adapter, tokens, 1, tokens.length, new Rng(5)).value.slice(), base); // with dropout
  assert.ok(adapter.params.some((p) => p.name.endsWith('lora_a') && p.value.some((v) => v !== 0)));
  assert.ok(adapter.params.every((p) => !p.name.endsWith('lora_b') || p.value.every((v) => v === 0)));
});

test('LoRA SFT: held-out accuracy from 0 to ≥ 90%, base frozen; the GGUF adapter and the merged model give the same answers in kiln', async () => {
  const rng = new Rng(1);
  const train = taskExamples(400, rng), held = taskExamples(100, rng);
  const model = createModel({ dim: 128, layers: 2, heads: 4, kvHeads: 4, ffn: 256, vocab: 256, ctx: 32 }, new Rng(7));
  const baseValues = model.params.map((p) => p.value.slice());
  const adapter: LoraAdapter = createLora(model, { rank: 4, alpha: 32, dropout: 0, targets: ['q', 'v'] }, new Rng(3));
  const tuning = loraTuning(model, adapter);
  const heldExamples = held.map((h) => h.example);
  const before = evaluateSft(tuning, heldExamples, 50);
  const losses = sft(tuning, train.map((t) => t.example), { steps: 200, lr: 1e-2, batchSize: 16, warmup: 10, weightDecay: 0, gradClip: 1, seed: 2 });
  const after = evaluateSft(tuning, heldExamples, 50);
  console.log(`held-out exact match: ${before.accuracy} → ${after.accuracy}; loss ${before.loss.toFixed(3)} → ${after.loss.toFixed(3)}; train loss ${losses[0].toFixed(3)} → ${losses.at(-1)!.toFixed(3)}`);
  assert.ok(before.accuracy <= 0.05, `before: ${before.accuracy}`);
  assert.ok(after.accuracy >= 0.9, `after: ${after.accuracy}`);
  model.params.forEach((p, i) => assert.deepEqual(p.value, baseValues[i], `${p.name} changed`));

  const dir = mkdtempSync(join(tmpdir(), 'kiln-lora-'));
  try {
    const basePath = join(dir, 'base.gguf'), adapterPath = join(dir, 'adapter.gguf'), mergedPath = join(dir, 'merged.gguf');
    await writeGGUF(basePath, modelGGUF(model, byteTokenizer(), 'base'));
    await writeGGUF(adapterPath, loraAdapterGGUF(adapter, 'llama', 'adapter'));
    await writeGGUF(mergedPath, ggufWithTensors(loadGGUF(basePath), mergedWeights(model, adapter)));

    // llama.cpp's adapter layout, as in the reference adapter kq-lora.gguf
    const mine = loadGGUF(adapterPath), reference = loadGGUF(sharedPath('conformance', 'models', 'kq-lora.gguf'));
    assert.deepEqual([...mine.metadata.keys()], [...reference.metadata.keys()]);
    for (const [key, value] of reference.metadata) assert.equal(mine.metadata.get(key)!.type, value.type, key);
    assert.equal(mine.metadata.get('adapter.lora.alpha')!.value, 32);
    const pattern = /^blk\.\d+\.[a-z_]+\.weight\.lora_[ab]$/;
    for (const file of [mine, reference]) {
      for (const t of file.tensorInfos) {
        assert.match(t.name, pattern);
        assert.equal(t.type, 0); // F32
      }
    }
    for (const t of mine.tensorInfos) {
      const w = model.params.find((p) => t.name.startsWith(p.name + '.'))!;
      assert.deepEqual(t.dims, t.name.endsWith('lora_a') ? [w.dims[0], 4] : [4, w.dims[1]]); // [nIn, r], [r, nOut]
    }

    // kiln inference: greedy answers of the base + adapter and of the merged model
    const withAdapter = Model.load(basePath, { lora: [{ path: adapterPath, scale: 1 }] }), merged = Model.load(mergedPath);
    const answer = (m: Model, prompt: string, length: number) => {
      const seq = new SingleSequence(m, prompt.length + length);
      let logits = seq.feed([...Buffer.from(prompt)]);
      const out: number[] = [];
      for (let i = 0; i < length; i++) {
        out.push(logits.indexOf(Math.max(...logits)));
        logits = seq.feed([out[i]]);
      }
      return Buffer.from(out).toString('latin1');
    };
    const cases = held.slice(0, 20);
    const adapterRight = cases.filter((h) => answer(withAdapter, h.prompt, h.response.length) === h.response).length;
    const mergedRight = cases.filter((h) => answer(merged, h.prompt, h.response.length) === h.response).length;
    assert.ok(adapterRight >= 18 && mergedRight >= 18, `kiln greedy answers right: adapter ${adapterRight}/20, merged ${mergedRight}/20`);
    const plainRight = cases.filter((h) => answer(Model.load(basePath), h.prompt, h.response.length) === h.response).length;
    assert.equal(plainRight, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
