// The Llama family: llama (incl. Mixtral-style mixture of experts) and qwen2, which differ only in rope style and
// q/k/v biases. One pre-norm decoder block, repeated:
//   h = x + Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
//   out = h + W2 · (silu(W1·norm(h)) ⊙ W3·norm(h))          (or a mixture of such experts)
// and logits = Wout · norm(x_last). Tensor names are GGUF's (`blk.N.attn_q.weight`, …).

import type { Metadata } from '../gguf/metadata.js';
import type { RopeParams } from '../kernels/backend.js';
import type { Architecture, BoundModel, HFNames, TensorSource } from './architecture.js';
import { baseMetadata, specialIds } from '../hf/config.js';
import { metaU32 } from '../gguf/writer.js';
import { readBaseHParams, type HParams } from './hparams.js';
import { expertTensors, gatedFFNTensors, layers, ropeAttentionHParams, swigluFFN, type GatedFFN, type RopeAttentionHParams } from './layers.js';
import type { ExpertWeights, ModelOps } from './ops.js';

/** keyLength/valueLength default to embedding_length / head_count; the rope pairs are NEOX's for qwen2 */
export interface LlamaHParams extends HParams, RopeAttentionHParams {}

export interface LlamaLayer<W> {
  attnNorm: W;          // [dim]
  wq: W;                // [dim, nHead·headDim]
  wk: W;                // [dim, nKvHead·headDim]
  wv: W;                // [dim, nKvHead·valueDim]
  bq?: W;               // [nHead·headDim] (qwen2)
  bk?: W;               // [nKvHead·headDim]
  bv?: W;               // [nKvHead·valueDim]
  wo: W;                // [nHead·valueDim, dim]
  ffnNorm: W;           // [dim]
  /** dense SwiGLU: gate/up [dim, nFF], down [nFF, dim] */
  ffn?: GatedFFN<W>;
  /** sparse SwiGLU experts (llama with expert_count > 0) */
  experts?: ExpertWeights<W>;
}

export interface LlamaWeights<W> {
  tokenEmbd: W;         // [dim, nVocab]
  layers: LlamaLayer<W>[];
  outputNorm: W;        // [dim]
  output: W;            // [dim, nVocab] (token_embd itself when tied)
  /** llama3's per-pair rope frequency divisors (`rope_freqs.weight`), [ropeDims/2] */
  ropeFreqFactors?: Float32Array;
}

export function readLlamaHParams(meta: Metadata, neox: boolean): LlamaHParams {
  const { hp, keys } = readBaseHParams(meta);
  return { ...hp, ...ropeAttentionHParams(keys, hp, neox, 1e-5) };
}

/** The tensors of a llama-family model; q/k/v biases are required (qwen2) or taken when present (llama). */
export function llamaWeights<W>(hp: LlamaHParams, t: TensorSource<W>, biases: 'required' | 'optional'): LlamaWeights<W> {
  const dim = hp.embeddingLength, nFF = hp.feedForwardLength, nExpert = hp.expertCount;
  const [q, k, v] = [hp.headCount * hp.keyLength, hp.headCountKv * hp.keyLength, hp.headCountKv * hp.valueLength];
  const bias = biases === 'required' ? t.need : t.optional;
  const tokenEmbd = t.need('token_embd.weight', [dim, hp.vocabSize]);
  return {
    tokenEmbd,
    layers: layers(hp.blockCount, (_, p) => ({
      attnNorm: t.need(p + 'attn_norm.weight', [dim]),
      wq: t.need(p + 'attn_q.weight', [dim, q]),
      wk: t.need(p + 'attn_k.weight', [dim, k]),
      wv: t.need(p + 'attn_v.weight', [dim, v]),
      bq: bias(p + 'attn_q.bias', [q]),
      bk: bias(p + 'attn_k.bias', [k]),
      bv: bias(p + 'attn_v.bias', [v]),
      wo: t.need(p + 'attn_output.weight', [hp.headCount * hp.valueLength, dim]),
      ffnNorm: t.need(p + 'ffn_norm.weight', [dim]),
      ...(nExpert > 0
        ? { experts: expertTensors(t.need, p, dim, nFF, nExpert, { nUsed: hp.expertUsedCount, normalizeWeights: true }) }
        : { ffn: gatedFFNTensors(t.need, p, dim, nFF) }),
    })),
    outputNorm: t.need('output_norm.weight', [dim]),
    output: t.optional('output.weight', [dim, hp.vocabSize]) ?? tokenEmbd,
    ropeFreqFactors: t.floats('rope_freqs.weight', [hp.rope.nDims / 2]),
  };
}

/** The forward pass over the batch the ops were made for. */
export function llamaForward<T, W>(ops: ModelOps<T, W>, hp: LlamaHParams, weights: LlamaWeights<W>) {
  const rope: RopeParams = { ...hp.rope, freqFactors: weights.ropeFreqFactors };
  const shape = { nHeads: hp.headCount, nKvHeads: hp.headCountKv, headDim: hp.keyLength, valueDim: hp.valueLength, scale: 1 / Math.sqrt(hp.keyLength) };

  let x = ops.embed(weights.tokenEmbd); // [n, dim]
  for (let l = 0; l < weights.layers.length; l++) {
    const layer = weights.layers[l];
    // self-attention
    const h = ops.rmsnorm(x, layer.attnNorm, hp.rmsEps);
    const q = ops.rope(ops.linear(h, layer.wq, layer.bq), hp.headCount, hp.keyLength, rope);   // [n, nHead·headDim]
    const [kh, v] = ops.linears(h, [layer.wk, layer.wv], [layer.bk, layer.bv]);                // [n, nKvHead·headDim], [n, nKvHead·valueDim]
    const k = ops.rope(kh, hp.headCountKv, hp.keyLength, rope);
    const attn = ops.attention(l, q, k, v, shape);                                              // [n, nHead·valueDim]
    x = ops.add(x, ops.linear(attn, layer.wo));
    // feed-forward
    const f = ops.rmsnorm(x, layer.ffnNorm, hp.rmsEps);
    x = ops.add(x, layer.experts ? ops.mixtureOfExperts(l, f, layer.experts) : swigluFFN(ops, f, layer.ffn!));
    x = ops.endLayer(x);
  }
  const hidden = ops.rmsnorm(ops.outputRows(x), weights.outputNorm, hp.rmsEps); // [nOut, dim]
  return { hidden, head: (h: T) => ops.linear(h, weights.output) }; // → [rows, nVocab]
}

/**
 * The names every Hugging Face decoder of llama's lineage shares (embeddings, norms, output and dense MLP
 * projections); an architecture's own names go before them, so that they win where both name a GGUF tensor.
 */
export const HF_DECODER_TENSORS: Readonly<Record<string, string>> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
  'model.layers.{N}.input_layernorm.weight': 'blk.{N}.attn_norm.weight',
  'model.layers.{N}.self_attn.o_proj.weight': 'blk.{N}.attn_output.weight',
  'model.layers.{N}.post_attention_layernorm.weight': 'blk.{N}.ffn_norm.weight',
  'model.layers.{N}.mlp.gate_proj.weight': 'blk.{N}.ffn_gate.weight',
  'model.layers.{N}.mlp.up_proj.weight': 'blk.{N}.ffn_up.weight',
  'model.layers.{N}.mlp.down_proj.weight': 'blk.{N}.ffn_down.weight',
};

/** Hugging Face's llama-family tensor names (LlamaForCausalLM, Qwen2ForCausalLM, …). */
export const LLAMA_HF_TENSORS: Readonly<Record<string, string>> = {
  'model.layers.{N}.self_attn.q_proj.weight': 'blk.{N}.attn_q.weight',
  'model.layers.{N}.self_attn.k_proj.weight': 'blk.{N}.attn_k.weight',
  'model.layers.{N}.self_attn.v_proj.weight': 'blk.{N}.attn_v.weight',
  'model.layers.{N}.self_attn.q_proj.bias': 'blk.{N}.attn_q.bias',
  'model.layers.{N}.self_attn.k_proj.bias': 'blk.{N}.attn_k.bias',
  'model.layers.{N}.self_attn.v_proj.bias': 'blk.{N}.attn_v.bias',
  ...HF_DECODER_TENSORS,
};

/** Mixtral's sparse feed-forward: a router and one w1 (gate), w3 (up), w2 (down) per expert, stacked in GGUF */
const MIXTRAL_HF_TENSORS: Readonly<Record<string, string>> = {
  'model.layers.{N}.block_sparse_moe.gate.weight': 'blk.{N}.ffn_gate_inp.weight',
  'model.layers.{N}.block_sparse_moe.experts.{E}.w1.weight': 'blk.{N}.ffn_gate_exps.weight',
  'model.layers.{N}.block_sparse_moe.experts.{E}.w3.weight': 'blk.{N}.ffn_up_exps.weight',
  'model.layers.{N}.block_sparse_moe.experts.{E}.w2.weight': 'blk.{N}.ffn_down_exps.weight',
};

/** LlamaForCausalLM (and Mistral's, the same layout): its q/k rows are rotate-half ordered, GGUF's interleaved. */
const llamaHF: HFNames = {
  classes: ['LlamaForCausalLM', 'MistralForCausalLM', 'MixtralForCausalLM'],
  // LlamaModel.set_gguf_parameters: the base keys, then the vocabulary size and the rotary width
  metadata: (c, fileType) => [
    ...baseMetadata('llama', c, fileType),
    ['llama.vocab_size', metaU32(c.count('vocab_size'))],
    ['llama.rope.dimension_count', metaU32(c.count('head_dim', Math.floor(c.count('hidden_size') / c.count('num_attention_heads'))))],
  ],
  tensors: { ...LLAMA_HF_TENSORS, ...MIXTRAL_HF_TENSORS },
  ignored: /\.rotary_emb\.inv_freq$/,
  rotateHalf: { 'blk.{N}.attn_q.weight': 'q', 'blk.{N}.attn_k.weight': 'k' },
  config(meta, tied) {
    const hp = readLlamaHParams(meta, false);
    if (hp.expertCount === 0) return llamaConfig(meta, tied, 'LlamaForCausalLM', 'llama', false);
    return { ...llamaConfig(meta, tied, 'MixtralForCausalLM', 'mixtral', false), num_local_experts: hp.expertCount, num_experts_per_tok: hp.expertUsedCount };
  },
};

/** config.json of a llama-family model (the keys LlamaConfig and Qwen2Config share) */
export function llamaConfig(meta: Metadata, tied: boolean, modelClass: string, modelType: string, neox: boolean): Record<string, unknown> {
  const hp = readLlamaHParams(meta, neox);
  return {
    architectures: [modelClass], model_type: modelType,
    hidden_size: hp.embeddingLength, intermediate_size: hp.feedForwardLength, num_hidden_layers: hp.blockCount,
    num_attention_heads: hp.headCount, num_key_value_heads: hp.headCountKv, head_dim: hp.keyLength, vocab_size: hp.vocabSize,
    max_position_embeddings: hp.contextLength, rms_norm_eps: hp.rmsEps, rope_theta: hp.rope.freqBase, hidden_act: 'silu',
    tie_word_embeddings: tied, ...specialIds(meta),
  };
}

/** A llama-family architecture: `neox` selects the rope style, `biases` whether q/k/v biases must be there. */
export function llamaFamily(names: string[], neox: boolean, biases: 'required' | 'optional', hf?: HFNames): Architecture<LlamaHParams> {
  return {
    names,
    hf,
    hparams: (meta) => readLlamaHParams(meta, neox),
    cacheRow: (hp) => ({ keys: hp.headCountKv * hp.keyLength, values: hp.headCountKv * hp.valueLength }),
    bind<W>(hp: LlamaHParams, tensors: TensorSource<W>): BoundModel<W> {
      const weights = llamaWeights(hp, tensors, biases);
      return { forward: (ops) => llamaForward(ops, hp, weights) };
    },
  };
}

export const llama = llamaFamily(['llama'], false, 'optional', llamaHF);
