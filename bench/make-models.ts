// Writes random-weight GGUFs in real models' shapes for `kiln bench` and llama.cpp's llama-bench:
//   - llama: stories15M, SmolLM2-135M, TinyLlama-1.1B (the kernel benchmarks);
//   - the zoo (bench/zoo.ts): a ~100M-parameter model of every architecture kiln runs, in its real proportions,
//     and a llama of the same size as the baseline (see ZOO).
// A model is written from its GGUF metadata: the architecture's own `hparams()` reads the hyper-parameters back,
// and its tensor list (`tensorList`) gives every tensor's name and dims — the same code that loads the file.
// Types are mixed the way llama-quantize mixes them (src/quant/mix.ts: e.g. Q4_K_M gives output.weight and some
// attn_v/ffn_down Q6_K, and falls back where rows do not split into 256-blocks). Decoders carry a random-ish
// SentencePiece ("llama") vocabulary, bert a WordPiece one with [CLS]/[SEP], so llama.cpp loads them too. For speed,
// tensors of the same shape and type share one random matrix (every layer is the same); the bytes per token and
// the work per token are those of the real model.
//
//   npx tsx bench/make-models.ts [--shape stories15M,smollm2-135M,tinyllama-1.1B|zoo|NAME,…] [--type F16,Q8_0,Q4_0,Q4_K_M] [--out bench/models]
// Files: <out>/<shape>-<type>.gguf (bench/models/ is git-ignored). F32 works too (tinyllama-1.1B-F32 is 4.4 GB:
// larger than one wasm32 memory).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeGGUF, metaArray, metaBool, metaF32, metaString, metaU32, type GGUFTensorInput } from '../src/gguf/writer.js';
import { GGUFValueType, type GGUFValue } from '../src/gguf/types.js';
import { GGMLType } from '../src/tensor/ggml-type.js';
import { quantizeRows } from '../src/quant/ggml-quantize.js';
import { chooseTensorTypes, fileTypeFromName, quantizationOrder } from '../src/quant/mix.js';
import { tensorList } from '../src/models/architecture.js';
import { findArchitecture } from '../src/models/registry.js';

export interface ModelSpec {
  name: string;
  /** `general.architecture` */
  arch: string;
  /** the `{arch}.KEY` hyper-parameters (`vocab_size` is added) */
  hparams: Record<string, GGUFValue>;
  vocab: number;
  /** SentencePiece for decoders, WordPiece (with [CLS] and [SEP]) for bert */
  tokenizer: 'llama' | 'bert';
  /** the token embedding is the output projection (no output.weight) */
  tied: boolean;
  /** control tokens at the end of the vocabulary (chat markers) */
  addedTokens?: string[];
}

/** A llama in the usual terms. */
export interface LlamaShape {
  name: string;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  tied: boolean;
}

export function llamaSpec(s: LlamaShape): ModelSpec {
  return {
    name: s.name, arch: 'llama', vocab: s.vocab, tokenizer: 'llama', tied: s.tied,
    hparams: {
      context_length: metaU32(2048),
      embedding_length: metaU32(s.dim),
      block_count: metaU32(s.layers),
      feed_forward_length: metaU32(s.ffn),
      'attention.head_count': metaU32(s.heads),
      'attention.head_count_kv': metaU32(s.kvHeads),
      'rope.dimension_count': metaU32(s.dim / s.heads),
      'rope.freq_base': metaF32(10000),
      'attention.layer_norm_rms_epsilon': metaF32(1e-5),
    },
  };
}

const u32 = metaU32, f32 = metaF32;

/**
 * ~100M parameters of each architecture, in the proportions of its real models; the first is the llama baseline
 * that bench/zoo.ts measures the others against.
 */
export const ZOO: ModelSpec[] = [
  // TinyLlama's proportions (GQA 3:1, ffn 2.67·dim, untied) at GPT-2 small's width
  llamaSpec({ name: 'llama-125M', dim: 768, layers: 12, heads: 12, kvHeads: 4, ffn: 2048, vocab: 32000, tied: false }),
  { // GPT-2 small itself, with output.weight as convert_hf_to_gguf.py writes it (llama.cpp c392e509 requires it)
    name: 'gpt2-124M', arch: 'gpt2', vocab: 50257, tokenizer: 'llama', tied: false,
    hparams: {
      context_length: u32(1024), embedding_length: u32(768), block_count: u32(12), feed_forward_length: u32(3072),
      'attention.head_count': u32(12), 'attention.layer_norm_epsilon': f32(1e-5),
    },
  },
  { // BERT-base (bge-base-en-v1.5's shape), mean pooling
    name: 'bert-109M', arch: 'bert', vocab: 30522, tokenizer: 'bert', tied: true,
    hparams: {
      context_length: u32(512), embedding_length: u32(768), block_count: u32(12), feed_forward_length: u32(3072),
      'attention.head_count': u32(12), 'attention.layer_norm_epsilon': f32(1e-12), 'attention.causal': metaBool(false),
      pooling_type: u32(1),
    },
  },
  { // Gemma 2 2B's proportions (26 layers: llama.cpp's gemma2 graph takes only 26/42/46; GQA 2:1; ffn 4·dim;
    // soft-caps 50/30; window 4096 of 8192) with a 32000 vocabulary
    name: 'gemma2-118M', arch: 'gemma2', vocab: 32000, tokenizer: 'llama', tied: true,
    hparams: {
      context_length: u32(8192), embedding_length: u32(512), block_count: u32(26), feed_forward_length: u32(2048),
      'attention.head_count': u32(4), 'attention.head_count_kv': u32(2), 'attention.key_length': u32(128),
      'attention.value_length': u32(128), 'rope.freq_base': f32(10000), 'attention.layer_norm_rms_epsilon': f32(1e-6),
      'attention.sliding_window': u32(4096), attn_logit_softcapping: f32(50), final_logit_softcapping: f32(30),
    },
  },
  { // Phi-3-mini's proportions (head dim 96, no GQA, ffn 2.67·dim, window 2047 of 4096, vocab 32064, untied) and
    // its chat tokens (llama.cpp sets attributes on <|endoftext|> of models named phi3, and fails without it)
    name: 'phi3-134M', arch: 'phi3', vocab: 32064, tokenizer: 'llama', tied: false,
    addedTokens: ['<|endoftext|>', '<|assistant|>', '<|system|>', '<|end|>', '<|user|>'],
    hparams: {
      context_length: u32(4096), embedding_length: u32(768), block_count: u32(12), feed_forward_length: u32(2048),
      'attention.head_count': u32(8), 'attention.head_count_kv': u32(8), 'rope.dimension_count': u32(96),
      'rope.freq_base': f32(10000), 'attention.layer_norm_rms_epsilon': f32(1e-5), 'attention.sliding_window': u32(2047),
    },
  },
  { // DeepSeek-V2's attention (q and kv through low-rank bottlenecks, 64 plain + 32 roped dims per head) and
    // DeepSeek-V2-Lite's MoE in small: one dense block, then 16 experts of ffn dim/2, 4 used, 2 shared, softmax
    // gating, weights × 1. Not 27 layers: llama.cpp c392e509 takes 27 for V2-Lite (no q_lora_rank).
    name: 'deepseek2-124M', arch: 'deepseek2', vocab: 32000, tokenizer: 'llama', tied: false,
    hparams: {
      context_length: u32(4096), embedding_length: u32(512), block_count: u32(12), feed_forward_length: u32(2048),
      'attention.head_count': u32(8), 'attention.head_count_kv': u32(8), 'attention.key_length': u32(96),
      'attention.value_length': u32(64), 'rope.dimension_count': u32(32), 'rope.freq_base': f32(10000),
      'attention.layer_norm_rms_epsilon': f32(1e-6), 'attention.q_lora_rank': u32(256), 'attention.kv_lora_rank': u32(128),
      leading_dense_block_count: u32(1), expert_count: u32(16), expert_used_count: u32(4),
      expert_feed_forward_length: u32(256), expert_shared_count: u32(2), expert_weights_scale: f32(1),
      expert_weights_norm: metaBool(false), expert_gating_func: u32(1), 'rope.scaling.yarn_log_multiplier': f32(0.0707),
    },
  },
];

export const SHAPES: ModelSpec[] = [
  llamaSpec({ name: 'stories15M', dim: 288, layers: 6, heads: 6, kvHeads: 6, ffn: 768, vocab: 32000, tied: false }),
  llamaSpec({ name: 'smollm2-135M', dim: 576, layers: 30, heads: 9, kvHeads: 3, ffn: 1536, vocab: 49152, tied: true }),
  llamaSpec({ name: 'tinyllama-1.1B', dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, tied: false }),
  // small models with real vocabulary sizes (SmolLM2's, Qwen2.5's) for `kiln bench --grammar`'s mask timings
  llamaSpec({ name: 'vocab49k-small', dim: 128, layers: 2, heads: 4, kvHeads: 2, ffn: 384, vocab: 49152, tied: true }),
  llamaSpec({ name: 'vocab152k-small', dim: 128, layers: 2, heads: 4, kvHeads: 2, ffn: 384, vocab: 151936, tied: true }),
  ...ZOO,
];

/** xorshift32: reproducible random floats in [−scale, scale). */
function randomFloats(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

/** Random values for a tensor: norm weights near 1, biases near 0, matrices of unit-variance outputs. */
function randomTensor(name: string, dims: readonly number[], seed: number): Float32Array {
  const n = dims.reduce((a, b) => a * b, 1);
  if (name.endsWith('norm.weight')) return randomFloats(n, seed, 0.1).map((v) => 1 + v);
  if (name.endsWith('.bias')) return randomFloats(n, seed, 0.02);
  return randomFloats(n, seed, Math.sqrt(3 / dims[0]));
}

/** Distinct pieces "e", "t", …, "ee", "et", … from a letter-frequency alphabet. */
function piece(i: number): string {
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  let out = '';
  for (let v = i; ; v = Math.floor(v / 26) - 1) {
    out = letters[v % 26] + out;
    if (v < 26) return out;
  }
}

/**
 * A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, distinct "▁"-prefixed pieces, then the
 * added control tokens.
 */
function sentencePieceVocabulary(size: number, added: readonly string[]): Map<string, GGUFValue> {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [2, 3, 3]; // unknown, control, control
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6); // byte
  }
  for (let i = 0; tokens.length < size - added.length; i++) {
    tokens.push(i % 3 === 0 ? piece(i) : `▁${piece(i)}`);
    types.push(1);
  }
  tokens.push(...added);
  types.push(...added.map(() => 3));
  return new Map<string, GGUFValue>([
    ['tokenizer.ggml.model', metaString('llama')],
    ['tokenizer.ggml.tokens', metaArray(GGUFValueType.STRING, tokens)],
    ['tokenizer.ggml.scores', metaArray(GGUFValueType.FLOAT32, tokens.map((_, i) => -i))],
    ['tokenizer.ggml.token_type', metaArray(GGUFValueType.INT32, types)],
    ['tokenizer.ggml.bos_token_id', metaU32(1)],
    ['tokenizer.ggml.eos_token_id', metaU32(2)],
    ['tokenizer.ggml.unknown_token_id', metaU32(0)],
  ]);
}

/**
 * A WordPiece vocabulary laid out as BERT's: [PAD], [unused0…98], [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, the
 * printable ASCII characters, then distinct pieces — written as convert_hf_to_gguf.py writes them: a word's first
 * piece with "▁", a continuation ("##" in BERT's vocab.txt) without.
 */
function wordPieceVocabulary(size: number): Map<string, GGUFValue> {
  const tokens = ['[PAD]', ...Array.from({ length: 99 }, (_, i) => `[unused${i}]`), '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const types = tokens.map((t) => (t.startsWith('[unused') ? 1 : 3)); // normal, control
  for (let c = 33; c < 127; c++) tokens.push(`▁${String.fromCharCode(c)}`, String.fromCharCode(c));
  for (let i = 26; tokens.length < size; i++) tokens.push(i % 3 === 0 ? piece(i) : `▁${piece(i)}`); // single letters are in
  while (types.length < tokens.length) types.push(1);
  return new Map<string, GGUFValue>([
    ['tokenizer.ggml.model', metaString('bert')],
    ['tokenizer.ggml.tokens', metaArray(GGUFValueType.STRING, tokens)],
    ['tokenizer.ggml.token_type', metaArray(GGUFValueType.INT32, types)],
    ['tokenizer.ggml.token_type_count', metaU32(2)],
    ['tokenizer.ggml.unknown_token_id', metaU32(100)],
    ['tokenizer.ggml.cls_token_id', metaU32(101)],
    ['tokenizer.ggml.seperator_token_id', metaU32(102)],
    ['tokenizer.ggml.padding_token_id', metaU32(0)],
    ['tokenizer.ggml.mask_token_id', metaU32(103)],
  ]);
}

/** The file's metadata: architecture, its hyper-parameters, vocabulary. */
function modelMetadata(m: ModelSpec, ftype: number): Map<string, GGUFValue> {
  return new Map<string, GGUFValue>([
    ['general.architecture', metaString(m.arch)],
    ['general.name', metaString(`${m.name} (random weights)`)],
    ['general.file_type', metaU32(ftype)],
    ...Object.entries(m.hparams).map(([key, value]): [string, GGUFValue] => [`${m.arch}.${key}`, value]),
    [`${m.arch}.vocab_size`, metaU32(m.vocab)],
    ...(m.tokenizer === 'bert' ? wordPieceVocabulary(m.vocab) : sentencePieceVocabulary(m.vocab, m.addedTokens ?? [])),
  ]);
}

/** The model's metadata and tensor list: its architecture reads the hyper-parameters back and names the tensors. */
function layout(m: ModelSpec, ftype: number) {
  const metadata = modelMetadata(m, ftype);
  const arch = findArchitecture(m.arch);
  const hp = arch.hparams(metadata);
  return { metadata, hp, tensors: tensorList(arch, hp, (name) => name === 'output.weight' && !m.tied) };
}

export function parameterCount(m: ModelSpec): number {
  return layout(m, 0).tensors.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
}

/** Writes `<out>/<name>-<type>.gguf`; returns its path. */
export async function makeModel(m: ModelSpec, typeName: string, out: string): Promise<string> {
  const ftype = fileTypeFromName(typeName);
  const { metadata, hp, tensors: shapes } = layout(m, ftype);
  const ordered = quantizationOrder(shapes.map(({ name, dims }) => ({ name, dims, type: GGMLType.F32 })));
  const model = { arch: m.arch, nLayer: hp.blockCount, nHead: hp.headCount, nHeadKv: hp.headCountKv, nExpert: hp.expertCount };
  const chosen = chooseTensorTypes(ordered, model, { ftype });
  const typeOf = new Map(ordered.map((t, i) => [t.name, chosen[i]]));
  // one random tensor per (kind, shape, type), shared by every layer
  const shared = new Map<string, Uint8Array>();
  const tensors: GGUFTensorInput[] = shapes.map(({ name, dims }, i) => {
    const type = typeOf.get(name)!;
    const kind = name.endsWith('norm.weight') ? 'norm' : name.endsWith('.bias') ? 'bias' : 'matrix';
    const key = `${kind}:${dims.join('x')}:${type}`;
    let data = shared.get(key);
    if (!data) {
      const rows = dims.slice(1).reduce((a, b) => a * b, 1);
      data = quantizeRows(type, randomTensor(name, dims, i + 1), dims[0], rows);
      shared.set(key, data);
    }
    return { name, dims, type, data };
  });
  mkdirSync(out, { recursive: true });
  const path = join(out, `${m.name}-${typeName}.gguf`);
  await writeGGUF(path, { metadata, tensors });
  return path;
}

/** The specs `--shape` names: a comma-separated list of names, "zoo" standing for every ZOO shape. */
function specsNamed(list: string): ModelSpec[] {
  return list.split(',').flatMap((name) => {
    if (name === 'zoo') return ZOO;
    const spec = SHAPES.find((s) => s.name.toLowerCase() === name.toLowerCase());
    if (!spec) throw new Error(`unknown shape ${name} (known: zoo, ${SHAPES.map((s) => s.name).join(', ')})`);
    return [spec];
  });
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const specs = specsNamed(option('shape', 'stories15M,smollm2-135M,tinyllama-1.1B'));
  const types = option('type', 'F16,Q8_0,Q4_0,Q4_K_M').split(',');
  const out = option('out', 'bench/models');
  for (const spec of specs) {
    for (const type of types) {
      const started = Date.now();
      const path = await makeModel(spec, type, out);
      console.log(`${path}  ${(parameterCount(spec) / 1e6).toFixed(1)}M parameters  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }
  }
}
