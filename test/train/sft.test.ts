// SFT data (response-only loss masks, chat template turns), prompt tuning and full fine-tuning learning, and
// `kiln finetune` end to end: adapter, merged model and full model files that `kiln run` loads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/generate/rng.js';
import { ChatTemplate, CHATML_TEMPLATE } from '../../src/generate/chat-template.js';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { writeGGUF } from '../../src/gguf/writer.js';
import { kiln } from '../helpers/cli.js';
import { dequantizeTensor } from '../../src/tensor/index.js';
import { byteTokenizer, createModel, modelGGUF, tokenizerMetadata } from '../../src/train/llama-model.js';
import { createPromptTuning, promptTuningLogits } from '../../src/train/prompt-tuning.js';
import { batchOf, evaluateSft, fullTuning, promptTuning, readSftExamples, sft, SftDataError, type SftExample } from '../../src/train/sft.js';

const tokenizer = Tokenizer.fromMetadata(tokenizerMetadata(byteTokenizer()));
const chatml = new ChatTemplate(CHATML_TEMPLATE, '', '');
const text = (e: SftExample, learned: boolean) => Buffer.from([...e.tokens].filter((_, i) => (e.learn[i] === 1) === learned)).toString('latin1');

function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-sft-'));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('examples: only response tokens are learned; chat turns learn the assistant text and its end marker', () => withDir((dir) => {
  const path = join(dir, 'data.jsonl');
  writeFileSync(path, [
    JSON.stringify({ prompt: 'Q: sky?', response: ' A: [BLUE]' }),
    '',
    JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'bye' }, { role: 'assistant', content: 'ciao' }] }),
  ].join('\n'));
  const [pair, chat] = readSftExamples(path, tokenizer, chatml, 1000);
  assert.equal(text(pair, false), 'Q: sky?');
  assert.equal(text(pair, true), ' A: [BLUE]' + String.fromCharCode(tokenizer.eosId!)); // the pair ends with EOS, learned
  assert.equal(text(chat, true), 'hello<|im_end|>\nciao<|im_end|>\n');
  assert.equal(Buffer.from(chat.tokens).toString('latin1'), chatml.render([
    { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'bye' }, { role: 'assistant', content: 'ciao' },
  ], false));
  // targets: the next token where it is learned, −1 elsewhere; padding is masked
  const { tokens, targets, seqLen } = batchOf([pair, chat]);
  assert.equal(seqLen, chat.tokens.length - 1);
  assert.deepEqual([...targets.subarray(0, pair.tokens.length - 1)], [...pair.tokens.subarray(1)].map((t, i) => (pair.learn[i + 1] ? t : -1)));
  assert.ok(targets.subarray(pair.tokens.length - 1, seqLen).every((t) => t === -1));
  assert.equal(tokens[seqLen], chat.tokens[0]);

  writeFileSync(path, '{"prompt": "x"}\n');
  assert.throws(() => readSftExamples(path, tokenizer, chatml, 1000), SftDataError);
  writeFileSync(path, '{"messages": [{"role": "user", "content": "x"}]}\n');
  assert.throws(() => readSftExamples(path, tokenizer, chatml, 1000), /no assistant message/);
  writeFileSync(path, 'nope\n');
  assert.throws(() => readSftExamples(path, tokenizer, chatml, 1000), /data.jsonl:1: not JSON/);
}));

/** responses: the prompt's last letter in brackets, as a fixed-format toy task */
function examples(count: number, rng: Rng): SftExample[] {
  return Array.from({ length: count }, () => {
    const c = String.fromCharCode(97 + Math.floor(rng.nextFloat() * 4));
    const prompt = `k ${c}:`, bytes = Buffer.from(`${prompt}[${c}]`);
    return { tokens: Int32Array.from(bytes), learn: Uint8Array.from(bytes, (_, i) => (i >= prompt.length ? 1 : 0)) };
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('prompt tuning trains only the virtual tokens and lowers the loss; full fine-tuning lowers it too', () => {
  const shape = { dim: 64, layers: 1, heads: 2, kvHeads: 2, ffn: 128, vocab: 256, ctx: 32 };
  const data = examples(64, new Rng(4));
  const model = createModel(shape, new Rng(1));
  const base = model.params.map((p) => p.value.slice());
  const tuned = createPromptTuning(model, 4, new Rng(2));
  const tokens = Int32Array.from(Buffer.from('k a:[a]'));
  assert.equal(promptTuningLogits(model, tuned, tokens, 1, tokens.length).rows, tokens.length); // virtual rows dropped
  const tuning = promptTuning(model, tuned);
  const before = evaluateSft(tuning, data, 32);
  sft(tuning, data, { steps: 40, lr: 1e-1, batchSize: 8, warmup: 4, weightDecay: 0, gradClip: 1, seed: 1 });
  const after = evaluateSft(tuning, data, 32);
  model.params.forEach((p, i) => assert.deepEqual(p.value, base[i], `${p.name} changed`));
  // a random base model leaves the virtual tokens little to steer: the gain is modest but real
  console.log(`prompt tuning: response loss ${before.loss.toFixed(3)} → ${after.loss.toFixed(3)}`);
  assert.ok(after.loss < before.loss - 0.1, `prompt tuning loss ${before.loss} → ${after.loss}`);

  const fullLosses = sft(fullTuning(model), data, { steps: 40, lr: 3e-3, batchSize: 8, warmup: 4, weightDecay: 0, gradClip: 1, seed: 1 });
  console.log(`full fine-tuning loss ${mean(fullLosses.slice(0, 10)).toFixed(3)} → ${mean(fullLosses.slice(-10)).toFixed(3)}`);
  assert.ok(mean(fullLosses.slice(-10)) < 0.5 * mean(fullLosses.slice(0, 10)), `full fine-tuning loss ${fullLosses[0]} → ${fullLosses.at(-1)}`);
});

test('kiln finetune: LoRA adapter (run --lora loads it), --merge, full and prompt-tuning outputs', () => withDir(async (dir) => {
  const basePath = join(dir, 'base.gguf'), data = join(dir, 'train.jsonl');
  const model = createModel({ dim: 64, layers: 1, heads: 2, kvHeads: 2, ffn: 128, vocab: 256, ctx: 32 }, new Rng(1));
  await writeGGUF(basePath, modelGGUF(model, byteTokenizer(), 'base'));
  writeFileSync(data, ['a', 'b', 'c', 'd'].map((c) => JSON.stringify({ prompt: `k ${c}:`, response: `[${c}]` })).join('\n'));
  const finetune = async (...argv: string[]) => {
    const { status, stderr } = await kiln('finetune', basePath, '--data', data, '--eval', data, '--steps', '5', '--batch', '4', ...argv);
    assert.equal(status, 0, stderr);
  };

  const adapterPath = join(dir, 'adapter.gguf');
  await finetune('--lora', '--rank', '2', '--targets', 'q,v,down', '-o', adapterPath);
  const adapter = loadGGUF(adapterPath);
  assert.equal(adapter.metadata.get('general.type')!.value, 'adapter');
  assert.deepEqual(adapter.tensorInfos.map((t) => `${t.name} ${t.dims}`), [
    'blk.0.attn_q.weight.lora_a 64,2', 'blk.0.attn_q.weight.lora_b 2,64',
    'blk.0.attn_v.weight.lora_a 64,2', 'blk.0.attn_v.weight.lora_b 2,64',
    'blk.0.ffn_down.weight.lora_a 128,2', 'blk.0.ffn_down.weight.lora_b 2,64',
  ]);
  // after 5 steps B is no longer 0: the adapter does something
  assert.ok(dequantizeTensor(adapter.tensor('blk.0.attn_q.weight.lora_b')).some((v) => v !== 0));
  const run = await kiln('run', basePath, '-p', 'k a:', '-n', '3', '--temp', '0', '--json', '--lora', adapterPath);
  assert.equal(JSON.parse(run.stdout).tokens.length, 3);

  const mergedPath = join(dir, 'merged.gguf'), fullPath = join(dir, 'full.gguf'), promptPath = join(dir, 'prompt.gguf');
  await finetune('--lora', '--merge', '-o', mergedPath);
  await finetune('-o', fullPath);
  await finetune('--prompt-tokens', '3', '-o', promptPath);
  const base = loadGGUF(basePath), merged = loadGGUF(mergedPath), full = loadGGUF(fullPath);
  const differs = (f: typeof base, name: string) => dequantizeTensor(f.tensor(name)).some((v, i) => v !== dequantizeTensor(base.tensor(name))[i]);
  assert.ok(differs(merged, 'blk.0.attn_q.weight') && !differs(merged, 'blk.0.attn_k.weight'));
  assert.ok(differs(full, 'blk.0.attn_k.weight') && differs(full, 'token_embd.weight'));
  assert.deepEqual(loadGGUF(promptPath).tensorInfos.map((t) => `${t.name} ${t.dims}`), ['prompt_tuning.weight 64,3']);
}));
