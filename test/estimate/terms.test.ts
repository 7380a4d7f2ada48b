// KV cache, activations, training terms, parallelism, rules of thumb and device fits against hand-computed cases.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import {
  estimateMemory, inferenceActivationBytes, kvCacheBytes, layerActivationBytes, loraParams, EstimateError,
  type Estimate, type Term,
} from '../../src/estimate/estimate.js';
import { deviceFits, DEVICES } from '../../src/estimate/devices.js';
import { modelFromConfig, modelFromGGUF, modelFromParamCount } from '../../src/estimate/model.js';
import { sharedPath } from '../shared.js';

const LLAMA_7B = modelFromConfig({
  hidden_size: 4096, intermediate_size: 11008, num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32,
  vocab_size: 32000, tie_word_embeddings: false, torch_dtype: 'float16',
});
const term = (e: Estimate, id: Term['id']) => e.terms.find((t) => t.id === id);

test('KV cache of LLaMA-7B at ctx 4096 in f16 is 2 × 32 × 32 × 128 × 4096 × 2 B = 2 GiB exactly', () => {
  assert.equal(kvCacheBytes(LLAMA_7B, 4096, 1, 'f16'), 2 ** 31);
  assert.equal(kvCacheBytes(LLAMA_7B, 4096, 1, 'f32'), 2 ** 32);
  assert.equal(kvCacheBytes(LLAMA_7B, 4096, 4, 'f16'), 2 ** 33);
  // q8_0: 34 bytes per 32 values → 2³⁰ values × 34/32
  assert.equal(kvCacheBytes(LLAMA_7B, 4096, 1, 'q8_0'), 1_140_850_688);
  const e = estimateMemory({ model: LLAMA_7B, ctx: 4096, kvType: 'f16' });
  assert.equal(term(e, 'kv_cache')!.bytes, 2 ** 31);
  assert.throws(() => estimateMemory({ model: LLAMA_7B, kvType: 'q4_k' }), /unknown KV cache type "q4_k"/);
});

test('KV cache of a GQA model from its GGUF header (kq: 2 layers, 2 kv heads of 64)', () => {
  const kq = modelFromGGUF(readGGUFHeader(sharedPath('conformance', 'models', 'kq-f32.gguf')));
  assert.equal(kvCacheBytes(kq, 512, 1, 'f16'), 2 * 2 * 2 * 64 * 512 * 2);
});

test('inference compute buffers: 4 B × [T·(3·dim + kv width + 2·ffn) + heads·T·ctx + batch·vocab]', () => {
  // LLaMA-7B, ctx 4096, batch 1, T = 512: 512·(12288 + 8192 + 22016) + 32·512·4096 + 32000 = 88,898,816 floats
  assert.equal(inferenceActivationBytes(LLAMA_7B, 4096, 1, 512), 4 * 88_898_816);
  // a 100-token context: T = 100
  assert.equal(inferenceActivationBytes(LLAMA_7B, 100, 1, 512), 4 * (100 * 42_496 + 32 * 100 * 100 + 32000));
});

test('training activations: Korthikanti 34·s·b·h + 5·a·s²·b per layer, and with checkpointing', () => {
  // s 2048, b 1, h 4096, a 32: 285,212,672 + 671,088,640
  assert.equal(layerActivationBytes(2048, 1, 4096, 32), 956_301_312);
  const base = { model: LLAMA_7B, mode: 'full' as const, ctx: 2048, batch: 1, mixedPrecision: true };
  const logits = 4 * 2048 * 32000;
  const plain = term(estimateMemory(base), 'activations')!;
  assert.equal(plain.bytes, 32 * 956_301_312 + logits);
  // checkpointing keeps each layer's input (2·s·b·h) plus one layer's full set during its recomputation
  const ckpt = term(estimateMemory({ ...base, gradCheckpointing: true }), 'activations')!;
  assert.equal(ckpt.bytes, 32 * 2 * 2048 * 4096 + 956_301_312 + logits);
  assert.match(ckpt.note!, /without checkpointing: 30,863,785,984 bytes/);
  // tp 2: ÷2; pp 4 (1F1B): the first stage keeps 4 micro-batches of its 8 layers in flight, the logits are on the last
  const split = term(estimateMemory({ ...base, tp: 2, pp: 4 }), 'activations')!;
  assert.equal(split.perDevice, (32 * 956_301_312) / 2);
  // fp32 training doubles the layer activations
  const fp32 = term(estimateMemory({ ...base, mixedPrecision: false }), 'activations')!;
  assert.equal(fp32.bytes, 2 * 32 * 956_301_312 + logits);
});

test('ZeRO paper (Rajbhandari et al.): 7.5B params, 64 GPUs, mixed-precision Adam → 120, 31.4, 16.6, 1.9 GB', () => {
  const model = modelFromParamCount(7.5e9);
  const modelStates = (zero: 0 | 1 | 2 | 3) => {
    const e = estimateMemory({ model, mode: 'full', mixedPrecision: true, optimizer: 'adamw', dp: 64, zero });
    return e.terms.filter((t) => t.id !== 'activations' && t.id !== 'overhead').reduce((n, t) => n + t.perDevice, 0);
  };
  // (2 + 2 + 12)·Ψ; 2Ψ + 2Ψ + 12Ψ/64; 2Ψ + 14Ψ/64; 16Ψ/64
  assert.equal(modelStates(0), 120e9);
  assert.equal(modelStates(1), 31.40625e9);
  assert.equal(modelStates(2), 16.640625e9);
  assert.equal(modelStates(3), 1.875e9);
  const e = estimateMemory({ model, mode: 'full', mixedPrecision: true });
  assert.deepEqual(e.terms.map((t) => [t.id, t.bytes / 7.5e9]).slice(0, 4), [['weights', 2], ['gradients', 2], ['optimizer', 8], ['master_weights', 4]]);
});

test('optimizer states: AdamW 8 B, 8-bit AdamW 2 B, SGD momentum 4 B per trainable parameter; fp32 training 4+4+8', () => {
  const model = modelFromParamCount(1e9);
  const opt = (optimizer: 'adamw' | 'adamw8bit' | 'sgd') => term(estimateMemory({ model, mode: 'full', optimizer }), 'optimizer')!.bytes;
  assert.equal(opt('adamw'), 8e9);
  assert.equal(opt('adamw8bit'), 2e9);
  assert.equal(opt('sgd'), 4e9);
  const fp32 = estimateMemory({ model, mode: 'full' });
  assert.equal(term(fp32, 'weights')!.bytes, 4e9);
  assert.equal(term(fp32, 'gradients')!.bytes, 4e9);
  assert.equal(term(fp32, 'master_weights'), undefined);
  assert.throws(() => estimateMemory({ model, mode: 'full', weightType: 'Q4_K_M' }), EstimateError);
});

test('LoRA parameters r·(n_in + n_out) per adapted matrix match the kq-lora adapter file', () => {
  const kq = modelFromGGUF(readGGUFHeader(sharedPath('conformance', 'models', 'kq-f32.gguf')));
  const adapter = readGGUFHeader(sharedPath('conformance', 'models', 'kq-lora.gguf'));
  const inFile = adapter.tensors.reduce((n, t) => n + t.nElements, 0);
  // rank 8 on attn_q (256→256), attn_v (256→128), ffn_down (768→256) of 2 layers: 2·8·(512 + 384 + 1024)
  assert.equal(inFile, 30_720);
  assert.equal(loraParams(kq, 8, ['q', 'v', 'down']), inFile);
});

test('LoRA and QLoRA on LLaMA-7B: frozen base, trainable adapters with their gradients and optimizer states', () => {
  // r 16 on q,k,v,o (4 × 16·8192) and gate, up, down (3 × 16·15104) per layer
  const perLayer = 4 * 16 * 8192 + 3 * 16 * (4096 + 11008);
  const lora = estimateMemory({ model: LLAMA_7B, mode: 'lora', loraRank: 16, mixedPrecision: true });
  assert.equal(lora.trainableParams, 32 * perLayer);
  assert.equal(term(lora, 'gradients')!.bytes, 32 * perLayer * 2);
  assert.equal(term(lora, 'optimizer')!.bytes, 32 * perLayer * 8);
  assert.equal(term(lora, 'master_weights')!.bytes, 32 * perLayer * 4);
  // base in the config's f16 (norms F32 as in GGUF) + 16-bit adapters
  assert.equal(term(lora, 'weights')!.bytes, 13_477_363_712 + 32 * perLayer * 2);

  const qlora = estimateMemory({ model: LLAMA_7B, mode: 'qlora', loraRank: 16, mixedPrecision: true });
  // block linears in NF4 (8452 bytes per 16384 values; 202,375,168 per layer = 12,352 blocks), the rest 16-bit
  const nf4 = 32 * 12_352 * 8452;
  const sixteenBit = 2 * (2 * 4096 * 32000 + 65 * 4096);
  assert.equal(term(qlora, 'weights')!.bytes, nf4 + sixteenBit + 32 * perLayer * 2);
  assert.throws(() => estimateMemory({ model: LLAMA_7B, mode: 'lora', loraTargets: ['x'] }), EstimateError);
});

test('tensor parallel divides by tp; pipeline gives each stage ⌈L/pp⌉ layers; devices = tp·pp·dp', () => {
  const base = estimateMemory({ model: LLAMA_7B, weightType: 'F16', ctx: 4096 });
  const tp2 = estimateMemory({ model: LLAMA_7B, weightType: 'F16', ctx: 4096, tp: 2 });
  assert.equal(term(tp2, 'weights')!.perDevice, term(base, 'weights')!.bytes / 2);
  assert.equal(term(tp2, 'kv_cache')!.perDevice, 2 ** 30);
  const pp4 = estimateMemory({ model: LLAMA_7B, weightType: 'F16', ctx: 4096, pp: 4, dp: 3 });
  assert.equal(pp4.devices, 12);
  // non-layer tensors (embeddings, output, final norm) stay whole; 8 of 32 layers
  const nonLayer = 2 * 2 * 4096 * 32000 + 4 * 4096;
  const layers = 13_477_363_712 - nonLayer;
  assert.equal(term(pp4, 'weights')!.perDevice, nonLayer + layers / 4);
  assert.equal(term(pp4, 'kv_cache')!.perDevice, 2 ** 31 / 4);
  assert.throws(() => estimateMemory({ model: LLAMA_7B, pp: 33 }), EstimateError);
});

test('rules of thumb: S = N×B, S′ = S×(1.1–1.2), and the mode\'s multiple of S', () => {
  const model = modelFromParamCount(7e9);
  const inf = estimateMemory({ model, weightType: 'F16' }).rulesOfThumb;
  assert.deepEqual(inf.map((r) => [r.low, r.high]), [[14e9, 14e9], [14e9 * 1.1, 14e9 * 1.2], [14e9 * 1.2, 14e9 * 5]]);
  const full = estimateMemory({ model, mode: 'full', mixedPrecision: true }).rulesOfThumb;
  assert.deepEqual([full[2].low, full[2].high], [8 * 14e9, 15 * 14e9]);
  const pre = estimateMemory({ model, mode: 'pretrain', mixedPrecision: true }).rulesOfThumb;
  assert.deepEqual([pre[2].low, pre[2].high], [12 * 14e9, 20 * 14e9]);
  const lora = estimateMemory({ model, mode: 'lora' }).rulesOfThumb;
  assert.deepEqual([lora[2].low, lora[2].high], [1.2 * 14e9, 2 * 14e9]);
});

test('a device fits when the per-device total is at most its memory', () => {
  const rtx3090 = DEVICES.find((d) => d.name === 'RTX 3090')!;
  assert.equal(deviceFits(24 * 2 ** 30, [rtx3090])[0].fits, true);
  assert.equal(deviceFits(24 * 2 ** 30 + 1, [rtx3090])[0].fits, false);
  assert.equal(deviceFits(24 * 2 ** 30 + 1, [rtx3090])[0].headroomBytes, -1);
  // LLaMA-7B Q4_K_M at ctx 4096 (≈ 6.4 GiB) fits an 8 GB machine but not at F16 (≈ 15 GiB)
  const q4 = estimateMemory({ model: LLAMA_7B, weightType: 'Q4_K_M' });
  const f16 = estimateMemory({ model: LLAMA_7B, weightType: 'F16' });
  const fits = (e: Estimate, name: string) => e.fits.find((f) => f.device.name === name)!.fits;
  assert.equal(fits(q4, 'CPU 8 GB RAM'), true);
  assert.equal(fits(f16, 'CPU 8 GB RAM'), false);
  assert.equal(fits(f16, 'CPU 16 GB RAM'), true);
  assert.equal(q4.total, q4.terms.reduce((n, t) => n + t.bytes, 0));
});
