// `kiln train` end to end on a tiny model: seeded determinism, bit-identical resume, the run's files, and the
// exported GGUF loading in kiln's inference path with logits and greedy generation matching the trained model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrainConfig, TrainConfigError } from '../../src/train/config.js';
import { train, runPaths } from '../../src/train/trainer.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { Param } from '../../src/train/autograd.js';
import { bindModel, forwardLogits } from '../../src/train/llama-model.js';
import { Model } from '../../src/generate/model.js';
import { evaluate, generate } from '../../src/generate/generate.js';
import { trainBPE } from '../../src/train/bpe-trainer.js';
import { writeHFTokenizerJson } from '../../src/tokenizer/hf-tokenizer-json.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-train-'));
const corpus = join(dir, 'corpus.txt');
// a learnable text: short verses with repeated structure
writeFileSync(corpus, Array.from({ length: 300 }, (_, i) => `the ${['cat', 'dog', 'owl'][i % 3]} sat on mat ${i % 7}.\n`).join(''));

function config(name: string, overrides: Record<string, unknown> = {}) {
  return parseTrainConfig({
    model: { dim: 16, layers: 2, heads: 2, kvHeads: 1, ffn: 32, ctx: 24 },
    tokenizer: 'bytes', corpus, steps: 10, batchSize: 4, seqLen: 16, lr: 1e-2, warmup: 2,
    evalInterval: 5, evalTokens: 64, seed: 42, output: `${name}.gguf`, ...overrides,
  }, dir);
}

const losses = (h: { train: { loss: number }[] }) => h.train.map((p) => p.loss);

test('the same seed gives bit-identical losses, with 1 or 2 threads; another seed does not', async () => {
  const a = await train(config('a'));
  const b = await train(config('b', { threads: 2, batchSize: 8, model: { dim: 64, layers: 2, heads: 2, kvHeads: 1, ffn: 128, ctx: 24 } }));
  const a64 = await train(config('a64', { batchSize: 8, model: { dim: 64, layers: 2, heads: 2, kvHeads: 1, ffn: 128, ctx: 24 } }));
  const c = await train(config('c', { seed: 43 }));
  assert.equal(a.history.train.length, 10);
  assert.deepEqual(losses(b.history), losses(a64.history)); // big enough that the matmuls are split across threads
  assert.deepEqual(b.history.val, a64.history.val);
  assert.notDeepEqual(losses(c.history), losses(a.history));
  assert.ok(a.history.train[9].loss < a.history.train[0].loss - 0.5, `loss fell from ${a.history.train[0].loss} to ${a.history.train[9].loss}`);
  assert.deepEqual(a.history.val.map((p) => p.step), [5, 10]);
  assert.ok(a.finalValLoss !== undefined && a.finalValLoss > 0 && a.finalValLoss < 5.6);
  // the run's files: model, checkpoint, loss curve
  assert.ok(existsSync(join(dir, 'a.gguf')) && existsSync(join(dir, 'a.ckpt')));
  const svg = readFileSync(join(dir, 'a.loss.svg'), 'utf8');
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/<circle /g) ?? []).length, 2); // one dot per validation
});

test('train 5 steps, resume, 5 more: identical to 10 in one go (with gradient accumulation)', async () => {
  const overrides = { accumulation: 2, steps: 10 };
  const whole = await train(config('whole', overrides));
  const first = await train(config('pieces', overrides), { stopAt: 5 });
  assert.equal(first.step, 5);
  assert.equal(first.modelPath, undefined);
  const rest = await train(config('pieces', overrides), { resume: true });
  assert.equal(rest.step, 10);
  assert.deepEqual(losses(rest.history), losses(whole.history));
  assert.deepEqual(rest.history.val, whole.history.val);
  assert.equal(rest.finalValLoss, whole.finalValLoss);
  const [a, b] = ['pieces', 'whole'].map((name) => readCheckpoint(join(dir, `${name}.ckpt`)));
  assert.deepEqual(a.params, b.params);
  assert.deepEqual(a.optimizer, b.optimizer);
  assert.deepEqual(a.rng, b.rng);
});

test('the exported GGUF loads for inference: logits within 1e-3, same greedy continuation', async () => {
  const result = await train(config('export', { steps: 30 }));
  const ckpt = readCheckpoint(runPaths(result.modelPath!).checkpoint);
  const trained = bindModel(ckpt.shape, ckpt.params.map((p) => new Param(p.name, p.dims, p.value)));
  const model = Model.load(result.modelPath!);
  assert.equal(model.vocabSize, 256);

  const prompt = model.tokenizer.encode('the dog s', { addSpecial: false });
  assert.deepEqual(prompt, [...Buffer.from('the dog s')]); // byte tokens: id = byte
  const ours = forwardLogits(trained, Int32Array.from(prompt), 1, prompt.length).value;
  const theirs = evaluate(model, prompt);
  let maxDiff = 0;
  for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - theirs[i]));
  assert.ok(maxDiff < 1e-3, `max logit difference ${maxDiff}`);

  // greedy decoding with the training forward pass: argmax of the last row, appended, repeated
  const tokens = [...prompt];
  while (tokens.length < 24) {
    const logits = forwardLogits(trained, Int32Array.from(tokens), 1, tokens.length).value.subarray((tokens.length - 1) * 256);
    tokens.push(logits.indexOf(Math.max(...logits)));
  }
  const generated = generate(model, prompt, { maxTokens: 24 - prompt.length, sampling: { temperature: 0 }, stopAtEog: false });
  assert.deepEqual(generated.tokens, tokens.slice(prompt.length));
  assert.equal(generated.text, Buffer.from(tokens.slice(prompt.length)).toString('latin1'));
});

test('a mixture-of-experts model trains and its GGUF gives the same logits in inference', async () => {
  const result = await train(config('moe', { model: { dim: 16, layers: 2, heads: 2, kvHeads: 1, ffn: 16, ctx: 24, experts: 4, expertsUsed: 2 }, steps: 4 }));
  const ckpt = readCheckpoint(runPaths(result.modelPath!).checkpoint);
  assert.ok(ckpt.params.some((p) => p.name === 'blk.0.ffn_gate_exps.weight'));
  const trained = bindModel(ckpt.shape, ckpt.params.map((p) => new Param(p.name, p.dims, p.value)));
  const model = Model.load(result.modelPath!);
  const prompt = [...Buffer.from('the owl sat')];
  const ours = forwardLogits(trained, Int32Array.from(prompt), 1, prompt.length).value;
  const theirs = evaluate(model, prompt);
  let maxDiff = 0;
  for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - theirs[i]));
  assert.ok(maxDiff < 1e-3, `max logit difference ${maxDiff}`);
});

test('a tokenizer.json vocabulary: the corpus is encoded with it and the GGUF carries it', async () => {
  const bpe = trainBPE(readFileSync(corpus, 'utf8'), { vocabSize: 280, specials: ['<|endoftext|>'] });
  const tokenizerPath = join(dir, 'tokenizer.json');
  writeHFTokenizerJson(tokenizerPath, bpe);
  const result = await train(config('bpe', { tokenizer: 'tokenizer.json', steps: 3 }));
  const model = Model.load(result.modelPath!);
  assert.equal(model.vocabSize, 280);
  const text = 'the owl sat on mat 3.';
  const ids = model.tokenizer.encode(text, { addSpecial: false });
  assert.ok(ids.length < text.length, 'merges apply');
  assert.equal(model.tokenizer.decode(ids), text);
  assert.equal(model.tokenizer.encode('<|endoftext|>', { addSpecial: false }).length, 1);
});

test('configuration errors are reported clearly', () => {
  assert.throws(() => parseTrainConfig({ tokenizer: 'bytes' }, dir), TrainConfigError);
  assert.throws(() => config('x', { seqLen: 100 }), /seqLen must be an integer in \[1, 24\]/);
  assert.throws(() => config('x', { lr: 'fast' }), /lr must be a number/);
  assert.throws(() => parseTrainConfig({ ...config('x'), model: { dim: 16, layers: 2, heads: 3, ffn: 8, ctx: 8 } }, dir), /not a multiple/);
});
