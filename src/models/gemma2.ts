// Gemma 2: the llama block with the input embeddings scaled by sqrt(dim), an RMS norm after attention and after the
// feed-forward as well as before them, a GeGLU feed-forward (gelu(W1·x) ⊙ W3·x), q scaled by 1/sqrt(key_length)
// before attention, attention scores and final logits soft-capped (c·tanh(x/c)), and a sliding window on the even
// layers (0, 2, …). The output projection is the embedding table (tied).
//   h = x + norm(Wo · attention(rope(Wq·norm(x)) / sqrt(d_k), rope(Wk·norm(x)), Wv·norm(x)))
//   out = h + norm(W2 · (gelu(W1·norm(h)) ⊙ W3·norm(h)))

import type { Metadata } from '../gguf/metadata.js';
import type { Architecture, BoundModel, HFNames, TensorSource } from './architecture.js';
import { specialIds, type HFConfig } from '../hf/config.js';
import { metaBool, metaF32, metaU32 } from '../gguf/writer.js';
import type { GGUFValue } from '../gguf/types.js';
import { readBaseHParams, type HParams } from './hparams.js';
import { gatedFFNTensors, layers, ropeAttentionHParams, type GatedFFN, type RopeAttentionHParams } from './layers.js';
import type { AttentionMask, ModelOps } from './ops.js';

export interface Gemma2HParams extends HParams, RopeAttentionHParams {
  /** `gemma2.attention.sliding_window`: keys a query sees on the sliding layers */
  slidingWindow: number;
  /** `gemma2.attn_logit_softcapping`, `gemma2.final_logit_softcapping` (0: none) */
  attnSoftcap: number;
  finalSoftcap: number;
  /** q's scale before attention: 1/sqrt(key_length), but 1/sqrt(dim/heads) for the 27B model (46 layers), as llama.cpp */
  queryScale: number;
}

/** gemma2 27B's block count: its query_pre_attn_scalar is dim/heads, not the head size */
const GEMMA2_27B_LAYERS = 46;

interface Gemma2Layer<W> {
  attnNorm: W;          // [dim]
  wq: W;                // [dim, nHead·headDim]
  wk: W;                // [dim, nKvHead·headDim]
  wv: W;                // [dim, nKvHead·valueDim]
  wo: W;                // [nHead·valueDim, dim]
  postAttnNorm: W;      // [dim]
  ffnNorm: W;           // [dim]
  ffn: GatedFFN<W>;     // GeGLU: gate/up [dim, nFF], down [nFF, dim]
  postFfnNorm: W;       // [dim]
}

function readHParams(meta: Metadata): Gemma2HParams {
  const { hp, keys } = readBaseHParams(meta);
  const attention = ropeAttentionHParams(keys, hp, true, 1e-6);
  return {
    ...hp,
    ...attention,
    slidingWindow: keys.count('attention.sliding_window', 4096),
    attnSoftcap: keys.number('attn_logit_softcapping', 0),
    finalSoftcap: keys.number('final_logit_softcapping', 0),
    queryScale: 1 / Math.sqrt(hp.blockCount === GEMMA2_27B_LAYERS ? hp.embeddingLength / hp.headCount : attention.keyLength),
  };
}

function bind<W>(hp: Gemma2HParams, t: TensorSource<W>): BoundModel<W> {
  const dim = hp.embeddingLength;
  const [q, kv, v] = [hp.headCount * hp.keyLength, hp.headCountKv * hp.keyLength, hp.headCountKv * hp.valueLength];
  const tokenEmbd = t.need('token_embd.weight', [dim, hp.vocabSize]);
  const blocks: Gemma2Layer<W>[] = layers(hp.blockCount, (_, p) => ({
    attnNorm: t.need(p + 'attn_norm.weight', [dim]),
    wq: t.need(p + 'attn_q.weight', [dim, q]),
    wk: t.need(p + 'attn_k.weight', [dim, kv]),
    wv: t.need(p + 'attn_v.weight', [dim, v]),
    wo: t.need(p + 'attn_output.weight', [hp.headCount * hp.valueLength, dim]),
    postAttnNorm: t.need(p + 'post_attention_norm.weight', [dim]),
    ffnNorm: t.need(p + 'ffn_norm.weight', [dim]),
    ffn: gatedFFNTensors(t.need, p, dim, hp.feedForwardLength),
    postFfnNorm: t.need(p + 'post_ffw_norm.weight', [dim]),
  }));
  const outputNorm = t.need('output_norm.weight', [dim]);
  const output = t.optional('output.weight', [dim, hp.vocabSize]) ?? tokenEmbd;
  // q is scaled before attention (llama.cpp's gemma2 graph), so the softmax scale is 1
  const shape = { nHeads: hp.headCount, nKvHeads: hp.headCountKv, headDim: hp.keyLength, valueDim: hp.valueLength, scale: 1, softcap: hp.attnSoftcap || undefined };
  const sliding: AttentionMask = { kind: 'window', window: hp.slidingWindow };
  const eps = hp.rmsEps;

  return {
    forward<T>(ops: ModelOps<T, W>) {
      let x = ops.scale(ops.embed(tokenEmbd), Math.sqrt(dim)); // [n, dim]
      blocks.forEach((b, l) => {
        const h = ops.rmsnorm(x, b.attnNorm, eps);
        const qh = ops.scale(ops.rope(ops.linear(h, b.wq), hp.headCount, hp.keyLength, hp.rope), hp.queryScale);
        const kh = ops.rope(ops.linear(h, b.wk), hp.headCountKv, hp.keyLength, hp.rope);
        const attn = ops.attention(l, qh, kh, ops.linear(h, b.wv), shape, l % 2 === 0 ? sliding : undefined);
        x = ops.add(x, ops.rmsnorm(ops.linear(attn, b.wo), b.postAttnNorm, eps));
        const f = ops.rmsnorm(x, b.ffnNorm, eps);
        const ffn = ops.linear(ops.geglu(ops.linear(f, b.ffn.gate), ops.linear(f, b.ffn.up)), b.ffn.down);
        x = ops.add(x, ops.rmsnorm(ffn, b.postFfnNorm, eps));
        x = ops.endLayer(x);
      });
      const hidden = ops.rmsnorm(ops.outputRows(x), outputNorm, eps); // [nOut, dim]
      const head = (h: T) => {
        const z = ops.linear(h, output); // [rows, nVocab]
        return hp.finalSoftcap ? ops.softcap(z, hp.finalSoftcap) : z;
      };
      return { hidden, head };
    },
  };
}

/** Gemma2Model.set_gguf_parameters, in its order */
function gemma2Metadata(c: HFConfig, fileType: number): [string, GGUFValue][] {
  const heads = c.count('num_attention_heads');
  return [
    ['gemma2.context_length', metaU32(c.count('max_position_embeddings'))],
    ['gemma2.embedding_length', metaU32(c.count('hidden_size'))],
    ['gemma2.block_count', metaU32(c.count('num_hidden_layers'))],
    ['gemma2.feed_forward_length', metaU32(c.count('intermediate_size'))],
    ['gemma2.attention.head_count', metaU32(heads)],
    ['gemma2.attention.head_count_kv', metaU32(c.count('num_key_value_heads', heads))],
    ['gemma2.attention.layer_norm_rms_epsilon', metaF32(c.number('rms_norm_eps'))],
    ['gemma2.attention.key_length', metaU32(c.count('head_dim'))],
    ['gemma2.attention.value_length', metaU32(c.count('head_dim'))],
    ['general.file_type', metaU32(fileType)],
    ['gemma2.attn_logit_softcapping', metaF32(c.number('attn_logit_softcapping'))],
    ['gemma2.final_logit_softcapping', metaF32(c.number('final_logit_softcapping'))],
    ['gemma2.attention.sliding_window', metaU32(c.count('sliding_window'))],
  ];
}

/** Gemma2ForCausalLM: norms stored as w − 1 (HF's RMSNorm multiplies by 1 + w), lm_head unused (tied) */
const gemma2HF: HFNames = {
  classes: ['Gemma2ForCausalLM'],
  metadata: gemma2Metadata,
  tensors: {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'model.layers.{N}.input_layernorm.weight': 'blk.{N}.attn_norm.weight',
    'model.layers.{N}.self_attn.q_proj.weight': 'blk.{N}.attn_q.weight',
    'model.layers.{N}.self_attn.k_proj.weight': 'blk.{N}.attn_k.weight',
    'model.layers.{N}.self_attn.v_proj.weight': 'blk.{N}.attn_v.weight',
    'model.layers.{N}.self_attn.o_proj.weight': 'blk.{N}.attn_output.weight',
    'model.layers.{N}.post_attention_layernorm.weight': 'blk.{N}.post_attention_norm.weight',
    'model.layers.{N}.pre_feedforward_layernorm.weight': 'blk.{N}.ffn_norm.weight',
    'model.layers.{N}.post_feedforward_layernorm.weight': 'blk.{N}.post_ffw_norm.weight',
    'model.layers.{N}.mlp.gate_proj.weight': 'blk.{N}.ffn_gate.weight',
    'model.layers.{N}.mlp.up_proj.weight': 'blk.{N}.ffn_up.weight',
    'model.layers.{N}.mlp.down_proj.weight': 'blk.{N}.ffn_down.weight',
  },
  ignored: /(\.rotary_emb\.inv_freq|^lm_head\.weight)$/,
  plusOne: /norm\.weight$/,
  tokenizer: [['tokenizer.ggml.add_space_prefix', metaBool(false)]],
  config(meta) {
    const hp = readHParams(meta);
    return {
      architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2',
      hidden_size: hp.embeddingLength, intermediate_size: hp.feedForwardLength, num_hidden_layers: hp.blockCount,
      num_attention_heads: hp.headCount, num_key_value_heads: hp.headCountKv, head_dim: hp.keyLength, vocab_size: hp.vocabSize,
      max_position_embeddings: hp.contextLength, rms_norm_eps: hp.rmsEps, rope_theta: hp.rope.freqBase,
      attn_logit_softcapping: hp.attnSoftcap, final_logit_softcapping: hp.finalSoftcap, sliding_window: hp.slidingWindow,
      query_pre_attn_scalar: hp.keyLength, hidden_activation: 'gelu_pytorch_tanh', ...specialIds(meta),
    };
  },
};

export const gemma2: Architecture<Gemma2HParams> = {
  names: ['gemma2'],
  hf: gemma2HF,
  hparams: readHParams,
  cacheRow: (hp) => ({ keys: hp.headCountKv * hp.keyLength, values: hp.headCountKv * hp.valueLength }),
  bind,
};
