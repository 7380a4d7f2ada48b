// Reproduces kiln's default embedding model, models/kiln-brown-embed.gguf: the default chat model
// (models/kiln-brown.gguf) fine-tuned by kiln's contrastive trainer (src/train/contrastive.ts) on the Brown corpus
// with the inverse cloze task (Lee et al. 2019): a pair is one sentence of a paragraph and the rest of that
// paragraph (half the time the whole paragraph, sentence included), so a short text learns to land near the
// passage it comes from. Mean pooling over the final hidden states (llama.pooling_type = mean), then Q8_0 as the
// chat model. Brown is not among the corpora the retrieval evaluation (bench/rag-eval.ts) asks about.
// Run from the repository root: `npx tsx scripts/train-embed-model.ts [--steps N]`.

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../src/cli/main.js';
import { metaString, metaU32 } from '../src/gguf/writer.js';
import { openModelForTraining, writeLike } from '../src/train/load-model.js';
import { trainContrastive, type ContrastiveOptions } from '../src/train/contrastive.js';
import type { Rng } from '../src/generate/rng.js';
import { brownFiles, brownParagraphs } from './brown-corpus.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const chatModel = join(root, 'models', 'kiln-brown.gguf');
const f32Path = join(root, 'tmp', 'kiln-brown-embed', 'kiln-brown-embed-f32.gguf');
const modelPath = join(root, 'models', 'kiln-brown-embed.gguf');
const stepsArg = process.argv.indexOf('--steps');

export const OPTIONS: ContrastiveOptions = {
  steps: stepsArg > 0 ? Number(process.argv[stepsArg + 1]) : 30,
  batchSize: 32, seqLen: 64, lr: 2e-3, warmup: 5, temperature: 0.05, weightDecay: 0.01, threads: 2, seed: 1337,
};
/** llama_pooling_type: 1 = mean */
const MEAN_POOLING = 1;

const started = performance.now();
const { model, file, tokenizer } = openModelForTraining(chatModel);
const encode = (text: string) => tokenizer.encode(text, { addSpecial: true, parseSpecial: false });
// paragraphs of at least two sentences, each split into its sentences
const paragraphs = brownFiles().flatMap(brownParagraphs)
  .map((p) => p.match(/[^.!?]+[.!?]+["')]*\s*/g)?.map((s) => s.trim()) ?? [])
  .filter((sentences) => sentences.length >= 2);
console.log(`${paragraphs.length} paragraphs of two sentences or more`);

/** `size` inverse-cloze pairs: a sentence, and its paragraph without it (half the time with it) */
function batch(rng: Rng, size: number): [number[], number[]][] {
  return Array.from({ length: size }, () => {
    const sentences = paragraphs[Math.floor(rng.nextFloat() * paragraphs.length)];
    const i = Math.floor(rng.nextFloat() * sentences.length);
    const context = rng.nextFloat() < 0.5 ? sentences : sentences.filter((_, j) => j !== i);
    return [encode(sentences[i]), encode(context.join(' '))];
  });
}

const losses = trainContrastive(model, batch, {
  ...OPTIONS,
  onProgress: ({ step, steps, loss }) => console.log(`step ${step}/${steps} loss ${loss.toFixed(4)} (${((performance.now() - started) / 1000).toFixed(0)} s)`),
});
const first = losses.slice(0, 5).reduce((a, b) => a + b, 0) / 5, last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
console.log(`loss: first 5 steps ${first.toFixed(4)}, last 5 steps ${last.toFixed(4)} (ln ${OPTIONS.batchSize} = ${Math.log(OPTIONS.batchSize).toFixed(4)} is chance)`);

file.metadata.set('general.name', metaString('kiln-brown-embed'));
file.metadata.set('llama.pooling_type', metaU32(MEAN_POOLING));
mkdirSync(dirname(f32Path), { recursive: true });
await writeLike(f32Path, file, model);
await main(['quantize', f32Path, modelPath, 'Q8_0']);
console.log(`wrote ${modelPath} in ${((performance.now() - started) / 60000).toFixed(1)} min`);
