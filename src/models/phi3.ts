// Phi-3: the llama block with one fused q/k/v projection, one fused gate/up projection (the first half of its
// output is the gate, the second the up: silu(gate) ⊙ up), q scaled by 1/sqrt(head_dim) before attention, NEOX
// rope, and a sliding window on every layer.

import type { Metadata } from '../gguf/metadata.js';
import type { RopeParams } from '../kernels/backend.js';
import type { Architecture, BoundModel, HFNames, TensorSource } from './architecture.js';
import { specialIds, type HFConfig } from '../hf/config.js';
import { HF_DECODER_TENSORS } from './llama.js';
import { metaF32, metaU32 } from '../gguf/writer.js';
import type { GGUFValue } from '../gguf/types.js';
import { readBaseHParams, type HParams } from './hparams.js';
import { layers, ropeFromMetadata } from './layers.js';
import type { AttentionMask, ModelOps } from './ops.js';

export interface Phi3HParams extends HParams {
  headDim: number;
  rmsEps: number;
  rope: RopeParams;
  /** `phi3.attention.sliding_window` (0: none) */
  slidingWindow: number;
}

interface Phi3Layer<W> {
  attnNorm: W;          // [dim]
  wqkv: W;              // [dim, (nHead + 2·nKvHead)·headDim]: q, k, v rows
  wo: W;                // [nHead·headDim, dim]
  ffnNorm: W;           // [dim]
  gateUp: W;            // [dim, 2·nFF]: gate rows, then up rows
  down: W;              // [nFF, dim]
}

function readHParams(meta: Metadata): Phi3HParams {
  const { hp, keys } = readBaseHParams(meta);
  const headDim = Math.floor(hp.embeddingLength / hp.headCount);
  return {
    ...hp,
    headDim,
    rmsEps: keys.number('attention.layer_norm_rms_epsilon', 1e-5),
    rope: ropeFromMetadata(keys, headDim, true),
    slidingWindow: keys.count('attention.sliding_window', 0),
  };
}

function bind<W>(hp: Phi3HParams, t: TensorSource<W>): BoundModel<W> {
  const dim = hp.embeddingLength, nFF = hp.feedForwardLength, hd = hp.headDim;
  const [q, kv] = [hp.headCount * hd, hp.headCountKv * hd];
  const tokenEmbd = t.need('token_embd.weight', [dim, hp.vocabSize]);
  const blocks: Phi3Layer<W>[] = layers(hp.blockCount, (_, p) => ({
    attnNorm: t.need(p + 'attn_norm.weight', [dim]),
    wqkv: t.need(p + 'attn_qkv.weight', [dim, q + 2 * kv]),
    wo: t.need(p + 'attn_output.weight', [q, dim]),
    ffnNorm: t.need(p + 'ffn_norm.weight', [dim]),
    gateUp: t.need(p + 'ffn_up.weight', [dim, 2 * nFF]),
    down: t.need(p + 'ffn_down.weight', [nFF, dim]),
  }));
  const outputNorm = t.need('output_norm.weight', [dim]);
  const output = t.optional('output.weight', [dim, hp.vocabSize]) ?? tokenEmbd;
  // q is scaled before attention (llama.cpp's phi3 graph), so the softmax scale is 1
  const shape = { nHeads: hp.headCount, nKvHeads: hp.headCountKv, headDim: hd, scale: 1 };
  const mask: AttentionMask | undefined = hp.slidingWindow > 0 ? { kind: 'window', window: hp.slidingWindow } : undefined;
  const eps = hp.rmsEps;

  return {
    forward<T>(ops: ModelOps<T, W>) {
      let x = ops.embed(tokenEmbd); // [n, dim]
      blocks.forEach((b, l) => {
        const [qs, ks, vs] = ops.linearSplit(ops.rmsnorm(x, b.attnNorm, eps), b.wqkv, [q, kv, kv]); // [n, q], [n, kv], [n, kv]
        const qh = ops.scale(ops.rope(qs, hp.headCount, hd, hp.rope), 1 / Math.sqrt(hd));
        const kh = ops.rope(ks, hp.headCountKv, hd, hp.rope);
        x = ops.add(x, ops.linear(ops.attention(l, qh, kh, vs, shape, mask), b.wo));
        const [gate, up] = ops.linearSplit(ops.rmsnorm(x, b.ffnNorm, eps), b.gateUp, [nFF, nFF]); // [n, nFF] each
        x = ops.add(x, ops.linear(ops.swiglu(gate, up), b.down));
        x = ops.endLayer(x);
      });
      const hidden = ops.rmsnorm(ops.outputRows(x), outputNorm, eps); // [nOut, dim]
      return { hidden, head: (h: T) => ops.linear(h, output) };
    },
  };
}

/** Phi3MiniModel.set_gguf_parameters, in its order */
function phi3Metadata(c: HFConfig, fileType: number): [string, GGUFValue][] {
  const [dim, heads] = [c.count('hidden_size'), c.count('num_attention_heads')];
  const out: [string, GGUFValue][] = [['phi3.context_length', metaU32(c.count('max_position_embeddings'))]];
  if (c.has('original_max_position_embeddings')) out.push(['phi3.rope.scaling.original_context_length', metaU32(c.count('original_max_position_embeddings'))]);
  out.push(
    ['phi3.embedding_length', metaU32(dim)],
    ['phi3.feed_forward_length', metaU32(c.count('intermediate_size'))],
    ['phi3.block_count', metaU32(c.count('num_hidden_layers'))],
    ['phi3.attention.head_count', metaU32(heads)],
    ['phi3.attention.head_count_kv', metaU32(c.count('num_key_value_heads', heads))],
    ['phi3.attention.layer_norm_rms_epsilon', metaF32(c.number('rms_norm_eps'))],
    ['phi3.rope.dimension_count', metaU32(Math.floor(Math.floor(c.number('partial_rotary_factor', 1) * dim) / heads))],
    ['phi3.rope.freq_base', metaF32(c.number('rope_theta', 10000))],
    ['general.file_type', metaU32(fileType)],
    ['phi3.attention.sliding_window', metaU32(c.count('sliding_window', 0))],
  );
  return out;
}

/** Phi3ForCausalLM: fused qkv_proj and gate_up_proj, stored as GGUF stores them */
const phi3HF: HFNames = {
  classes: ['Phi3ForCausalLM'],
  metadata: phi3Metadata,
  tensors: {
    'model.layers.{N}.self_attn.qkv_proj.weight': 'blk.{N}.attn_qkv.weight',
    'model.layers.{N}.mlp.gate_up_proj.weight': 'blk.{N}.ffn_up.weight',
    ...HF_DECODER_TENSORS,
  },
  ignored: /\.rotary_emb\.inv_freq$/,
  config(meta, tied) {
    const hp = readHParams(meta);
    return {
      architectures: ['Phi3ForCausalLM'], model_type: 'phi3',
      hidden_size: hp.embeddingLength, intermediate_size: hp.feedForwardLength, num_hidden_layers: hp.blockCount,
      num_attention_heads: hp.headCount, num_key_value_heads: hp.headCountKv, vocab_size: hp.vocabSize,
      max_position_embeddings: hp.contextLength, rms_norm_eps: hp.rmsEps, rope_theta: hp.rope.freqBase,
      partial_rotary_factor: (hp.rope.nDims * hp.headCount) / hp.embeddingLength, sliding_window: hp.slidingWindow || null,
      hidden_act: 'silu', tie_word_embeddings: tied, ...specialIds(meta),
    };
  },
};

export const phi3: Architecture<Phi3HParams> = {
  names: ['phi3'],
  hf: phi3HF,
  hparams: readHParams,
  cacheRow: (hp) => ({ keys: hp.headCountKv * hp.headDim, values: hp.headCountKv * hp.headDim }),
  bind,
};
