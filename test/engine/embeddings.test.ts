// Embedding requests in the serving engine and LLM.embed: batched with each other and with generation, each
// input computed whole in one step, vectors identical to embedTokens (one sequence alone), blocks freed at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedPath } from '../shared.js';
import { Model, NoLanguageModelHeadError } from '../../src/generate/model.js';
import { embedTokens } from '../../src/generate/embed.js';
import { LLMEngine, InvalidRequestError } from '../../src/engine/engine.js';
import { RequestAbortedError } from '../../src/engine/embedding.js';
import { LLM } from '../../src/engine/llm.js';
import type { ForwardBatch } from '../../src/generate/inference-ops.js';
import type { Pooling } from '../../src/models/hparams.js';

const decoder = Model.load(sharedPath('data', 'models', 'stories260K.gguf'));
const encoder = Model.load(sharedPath('conformance', 'models', 'bert-f16.gguf'));
const bertRef = JSON.parse(readFileSync(sharedPath('conformance', 'reference', 'bert-f16.embd.json'), 'utf8')) as { texts: string[]; tokens: number[][]; embeddings: number[][] };

const encode = (model: Model, text: string) => model.tokenizer.encode(text, { addSpecial: true, parseSpecial: true });
const maxError = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(b).reduce((m, v, i) => Math.max(m, Math.abs(a[i] - v)), 0);

interface StepRecord { batch: ForwardBatch; logitRows: readonly number[] }

/** A model whose every engine step is recorded. */
function recording(path: string[]): { model: Model; steps: StepRecord[] } {
  const model = Model.load(sharedPath(...path));
  const steps: StepRecord[] = [];
  const forward = model.forwardOutputs.bind(model);
  model.forwardOutputs = (cache, batch, logitRows) => {
    steps.push({ batch, logitRows });
    return forward(cache, batch, logitRows);
  };
  return { model, steps };
}

async function generateTokens(engine: LLMEngine, prompt: number[], onFirst?: () => void): Promise<number[]> {
  const tokens: number[] = [];
  for await (const delta of engine.submit({ prompt, params: { sampling: { temperature: 0 }, maxTokens: 24, ignoreEos: true } })) {
    if (tokens.length === 0) onFirst?.();
    tokens.push(...delta.tokens);
  }
  return tokens;
}

test('a decoder embeds beside a generation request: vectors equal embedTokens, generated tokens equal a run alone, blocks freed', async () => {
  const { model, steps } = recording(['data', 'models', 'stories260K.gguf']);
  const prompt = encode(model, 'Once upon a time');
  const alone = await generateTokens(new LLMEngine(decoder, { maxNumSeqs: 1 }), prompt);

  const engine = new LLMEngine(model, { maxNumBatchedTokens: 24 });
  const inputs = ['The little dog ran to the park', 'Lily and Tom went to the park to play with a big red ball. They', 'Tim'].map((t) => encode(model, t));
  const options: { pooling: Pooling; normalize: boolean }[] = [{ pooling: 'mean', normalize: true }, { pooling: 'last', normalize: false }, { pooling: 'cls', normalize: true }];
  let embeddings: Promise<Float32Array[]> | undefined;
  // the embeddings arrive while the generation decodes
  const generated = await generateTokens(engine, prompt, () => {
    embeddings ??= Promise.all(inputs.flatMap((tokens) => options.map(async (o) => (await engine.embed({ tokens, ...o })).embedding)));
  });
  const vectors = await embeddings!;
  assert.deepEqual(generated, alone);
  inputs.forEach((tokens, i) => options.forEach((o, j) => {
    assert.deepEqual(vectors[i * options.length + j], embedTokens(decoder, tokens, o), `input ${i}, ${o.pooling}`);
  }));
  assert.ok(maxError(vectors[0], vectors[3]) > 1e-3, 'different inputs, different vectors');
  // one step carried embedding rows (output rows without logits) beside the decode's logits row
  assert.ok(steps.some((s) => s.logitRows.length > 0 && s.batch.outputRows.length > s.logitRows.length), 'a step mixes embeddings with decoding');
  assert.ok(steps.every((s) => s.batch.tokens.length <= 24), 'inputs that fit the budget stay within it');
  const stats = engine.stats();
  assert.deepEqual([stats.kvBlocksUsed, stats.running, stats.waiting, stats.prefixCacheHitRate], [0, 0, 0, 0]);
});

test('an encoder input runs whole in one step, even past the token budget, from position 0 and outside the prefix cache', async () => {
  const { model, steps } = recording(['conformance', 'models', 'bert-f16.gguf']);
  const engine = new LLMEngine(model, { maxNumBatchedTokens: 8 }); // every reference input is longer (9 and 12 tokens)
  const twice = [...bertRef.tokens, bertRef.tokens[0]];
  const results = await Promise.all(twice.map((tokens) => engine.embed({ tokens })));
  results.forEach((r, i) => {
    assert.deepEqual(r.embedding, embedTokens(encoder, twice[i]), `input ${i}`);
    assert.ok(maxError(r.embedding, bertRef.embeddings[i % bertRef.tokens.length]) <= 1e-3, `input ${i} against llama-embedding`);
    assert.equal(r.metrics.promptTokens, twice[i].length);
  });
  // one input per step (each is over the budget, so each waits for a step's first admission), all its positions
  assert.deepEqual(steps.map((s) => Array.from(s.batch.positions)), twice.map((tokens) => tokens.map((_, p) => p)));
  assert.deepEqual(steps.map((s) => s.logitRows.length), twice.map(() => 0));
  assert.deepEqual(results[3].embedding, results[0].embedding);
  const stats = engine.stats();
  assert.deepEqual([stats.kvBlocksUsed, stats.prefixCacheHitRate], [0, 0]);
});

test('bad inputs are refused before queuing; an aborted input rejects; a failed step rejects its inputs and frees their blocks', async () => {
  const engine = new LLMEngine(encoder, { maxModelLength: 16 });
  assert.throws(() => engine.embed({ tokens: [] }), InvalidRequestError);
  assert.throws(() => engine.embed({ tokens: [101, encoder.vocabSize] }), /input token 30522 is not an id below 30522/);
  assert.throws(() => engine.embed({ tokens: new Array(17).fill(101) }), /the input has 17 tokens; the context holds 16/);
  assert.throws(() => engine.embed({ tokens: [101], pooling: 'max' as Pooling }), /pooling must be one of mean, cls, last/);
  assert.throws(() => engine.submit({ prompt: [101, 102], params: { sampling: {}, maxTokens: 1 } }), NoLanguageModelHeadError);
  assert.equal(engine.stats().waiting, 0);

  const controller = new AbortController();
  controller.abort();
  await assert.rejects(engine.embed({ tokens: bertRef.tokens[0], signal: controller.signal }), RequestAbortedError);

  const broken = Model.load(sharedPath('conformance', 'models', 'bert-f16.gguf'));
  broken.forwardOutputs = () => { throw new Error('backend failure'); };
  const failing = new LLMEngine(broken);
  await Promise.all(bertRef.tokens.map((tokens) => assert.rejects(failing.embed({ tokens }), /backend failure/)));
  assert.equal(failing.stats().kvBlocksUsed, 0);
});

test('LLM.embed: texts, one text, token ids; vectors equal embedTokens; options reach the engine', async () => {
  const llm = new LLM({ model: encoder });
  const outputs = await llm.embed(bertRef.texts);
  assert.deepEqual(outputs.map((o) => o.prompt), bertRef.texts);
  assert.deepEqual(outputs.map((o) => o.prompt_token_ids), bertRef.tokens);
  outputs.forEach((o, i) => assert.deepEqual(o.outputs.embedding, embedTokens(encoder, bertRef.tokens[i])));
  const [one] = await llm.embed(bertRef.texts[1]);
  assert.deepEqual(one.outputs.embedding, outputs[1].outputs.embedding);
  const [byIds] = await llm.embed(bertRef.tokens[2]);
  assert.equal(byIds.prompt, null);
  assert.deepEqual(byIds.outputs.embedding, outputs[2].outputs.embedding);
  const raw = await llm.embed(bertRef.tokens, { pooling: 'cls', normalize: false });
  raw.forEach((o, i) => assert.deepEqual(o.outputs.embedding, embedTokens(encoder, bertRef.tokens[i], { pooling: 'cls', normalize: false })));
  await llm.close();

  const decoderLlm = new LLM({ model: decoder });
  const [last] = await decoderLlm.embed('Once upon a time');
  assert.deepEqual(last.outputs.embedding, embedTokens(decoder, encode(decoder, 'Once upon a time'), { pooling: 'last' }));
  await decoderLlm.close();
});
