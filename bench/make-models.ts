// Writes random-weight llama GGUFs in the real shapes of stories15M, SmolLM2-135M and TinyLlama-1.1B, quantized
// the way llama-quantize mixes types (src/quant/mix.ts: e.g. Q4_K_M gives output.weight and some attn_v/ffn_down
// Q6_K, and falls back where rows do not split into 256-blocks). They carry a random-ish SentencePiece ("llama")
// vocabulary, so llama.cpp loads them too. For speed, tensors of the same shape and type share one random matrix
// (every layer is the same); the bytes per token and the work per token are those of the real model.
//
//   npx tsx bench/make-models.ts [--shape stories15M,smollm2-135M,tinyllama-1.1B] [--type F16,Q8_0,Q4_0,Q4_K_M] [--out bench/models]
// Files: <out>/<shape>-<type>.gguf (bench/models/ is git-ignored). F32 works too (tinyllama-1.1B-F32 is 4.4 GB:
// larger than one wasm32 memory).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeGGUF, metaArray, metaF32, metaString, metaU32, type GGUFTensorInput } from '../src/gguf/writer.js';
import { GGUFValueType, type GGUFValue } from '../src/gguf/types.js';
import { GGMLType } from '../src/tensor/ggml-type.js';
import { quantizeRows } from '../src/quant/ggml-quantize.js';
import { chooseTensorTypes, fileTypeFromName, quantizationOrder } from '../src/quant/mix.js';

export interface ModelShapeSpec {
  name: string;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  tied: boolean;
}

export const SHAPES: ModelShapeSpec[] = [
  { name: 'stories15M', dim: 288, layers: 6, heads: 6, kvHeads: 6, ffn: 768, vocab: 32000, tied: false },
  { name: 'smollm2-135M', dim: 576, layers: 30, heads: 9, kvHeads: 3, ffn: 1536, vocab: 49152, tied: true },
  { name: 'tinyllama-1.1B', dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, tied: false },
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

/** The tensors of a llama model: name and ggml dims ([n_in, n_out] for matrices). */
function tensorShapes(m: ModelShapeSpec): { name: string; dims: number[] }[] {
  const kvDim = (m.dim / m.heads) * m.kvHeads;
  const list = [{ name: 'token_embd.weight', dims: [m.dim, m.vocab] }, { name: 'output_norm.weight', dims: [m.dim] }];
  if (!m.tied) list.push({ name: 'output.weight', dims: [m.dim, m.vocab] });
  for (let i = 0; i < m.layers; i++) {
    list.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [m.dim] },
      { name: `blk.${i}.attn_q.weight`, dims: [m.dim, m.dim] },
      { name: `blk.${i}.attn_k.weight`, dims: [m.dim, kvDim] },
      { name: `blk.${i}.attn_v.weight`, dims: [m.dim, kvDim] },
      { name: `blk.${i}.attn_output.weight`, dims: [m.dim, m.dim] },
      { name: `blk.${i}.ffn_norm.weight`, dims: [m.dim] },
      { name: `blk.${i}.ffn_gate.weight`, dims: [m.dim, m.ffn] },
      { name: `blk.${i}.ffn_up.weight`, dims: [m.dim, m.ffn] },
      { name: `blk.${i}.ffn_down.weight`, dims: [m.ffn, m.dim] },
    );
  }
  return list;
}

/** A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then distinct "▁"-prefixed pieces. */
function vocabulary(size: number): Map<string, GGUFValue> {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [2, 3, 3]; // unknown, control, control
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6); // byte
  }
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  for (let i = 0; tokens.length < size; i++) {
    let piece = '';
    for (let v = i; ; v = Math.floor(v / 26) - 1) {
      piece = letters[v % 26] + piece;
      if (v < 26) break;
    }
    tokens.push(i % 3 === 0 ? piece : `▁${piece}`);
    types.push(1);
  }
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

/** Writes `<out>/<shape>-<type>.gguf`; returns its path. */
export async function makeModel(m: ModelShapeSpec, typeName: string, out: string): Promise<string> {
  const ftype = fileTypeFromName(typeName);
  const shapes = tensorShapes(m);
  const ordered = quantizationOrder(shapes.map((s) => ({ ...s, type: GGMLType.F32 })));
  const chosen = chooseTensorTypes(ordered, { arch: 'llama', nLayer: m.layers, nHead: m.heads, nHeadKv: m.kvHeads, nExpert: 0 }, { ftype });
  const typeOf = new Map(ordered.map((t, i) => [t.name, chosen[i]]));
  // one random matrix per (shape, type), shared by every layer
  const shared = new Map<string, Uint8Array>();
  const tensors: GGUFTensorInput[] = shapes.map(({ name, dims }, i) => {
    const type = typeOf.get(name)!;
    const key = `${dims.join('x')}:${type}:${name.endsWith('norm.weight')}`;
    let data = shared.get(key);
    if (!data) {
      const nIn = dims[0], nRows = dims[1] ?? 1;
      const values = name.endsWith('norm.weight')
        ? randomFloats(nIn, i + 1, 0.1).map((v) => 1 + v)
        : randomFloats(nIn * nRows, i + 1, Math.sqrt(3 / nIn));
      data = quantizeRows(type, values, nIn, nRows);
      shared.set(key, data);
    }
    return { name, dims, type, data };
  });
  const headDim = m.dim / m.heads;
  const metadata = new Map<string, GGUFValue>([
    ['general.architecture', metaString('llama')],
    ['general.name', metaString(`${m.name} (random weights)`)],
    ['general.file_type', metaU32(ftype)],
    ['llama.context_length', metaU32(2048)],
    ['llama.embedding_length', metaU32(m.dim)],
    ['llama.block_count', metaU32(m.layers)],
    ['llama.feed_forward_length', metaU32(m.ffn)],
    ['llama.attention.head_count', metaU32(m.heads)],
    ['llama.attention.head_count_kv', metaU32(m.kvHeads)],
    ['llama.rope.dimension_count', metaU32(headDim)],
    ['llama.rope.freq_base', metaF32(10000)],
    ['llama.attention.layer_norm_rms_epsilon', metaF32(1e-5)],
    ['llama.vocab_size', metaU32(m.vocab)],
    ...vocabulary(m.vocab),
  ]);
  mkdirSync(out, { recursive: true });
  const path = join(out, `${m.name}-${typeName}.gguf`);
  await writeGGUF(path, { metadata, tensors });
  return path;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const shapes = option('shape', SHAPES.map((s) => s.name).join(',')).split(',');
  const types = option('type', 'F16,Q8_0,Q4_0,Q4_K_M').split(',');
  const out = option('out', 'bench/models');
  for (const name of shapes) {
    const shape = SHAPES.find((s) => s.name.toLowerCase() === name.toLowerCase());
    if (!shape) throw new Error(`unknown shape ${name} (known: ${SHAPES.map((s) => s.name).join(', ')})`);
    for (const type of types) {
      const started = Date.now();
      const path = await makeModel(shape, type, out);
      console.log(`${path}  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }
  }
}
