// DeepSeek-V2: multi-head latent attention (MLA) and a mixture of experts with shared experts.
// Attention: q comes through a low-rank bottleneck (Wq_b · norm(Wq_a · x)); keys and values are compressed into one
// latent per position, c = norm(first kv_lora_rank dims of Wkv_a · x), and expanded per head by Wkv_b; each head's
// q and k are the expanded "nope" part followed by `rope.dimension_count` roped dims — for k shared by all heads
// (the last dims of Wkv_a · x). The KV cache keeps only [c | roped k] per position (see InferenceOps.latentAttention).
// Feed-forward: the first `leading_dense_block_count` blocks are dense SwiGLU; the others route each token to
// expert_used_count of expert_count SwiGLU experts (softmax gate, weights × expert_weights_scale) and add the
// shared experts' SwiGLU.

import { getNumber, MetadataError, type Metadata } from '../gguf/metadata.js';
import type { RopeParams } from '../kernels/backend.js';
import type { Architecture, BoundModel, HFNames, TensorSource } from './architecture.js';
import { readBaseHParams, type HParams } from './hparams.js';
import { baseMetadata, specialIds, type HFConfig } from '../hf/config.js';
import { HFError } from '../hf/safetensors.js';
import { HF_DECODER_TENSORS } from './llama.js';
import { metaBool, metaF32, metaString, metaU32 } from '../gguf/writer.js';
import type { GGUFValue } from '../gguf/types.js';
import { expertTensors, gatedFFNTensors, layers, ropeFromMetadata, swigluFFN, type GatedFFN } from './layers.js';
import type { ExpertWeights, LatentAttentionShape, ModelOps } from './ops.js';

export interface DeepSeek2HParams extends HParams {
  /** per-head q/k width (`attention.key_length`: nope + rope dims) and value width */
  keyLength: number;
  valueLength: number;
  /** `attention.q_lora_rank` (0: q is one full projection, as in V2-Lite), `attention.kv_lora_rank` */
  qLoraRank: number;
  kvLoraRank: number;
  rmsEps: number;
  /** the roped dims of each head (`rope.dimension_count`): normal (not NEOX) rope */
  rope: RopeParams;
  /** `leading_dense_block_count`: blocks before the first mixture of experts */
  leadingDenseBlocks: number;
  /** `expert_feed_forward_length`, `expert_shared_count`, `expert_weights_scale`, `expert_weights_norm` */
  expertFeedForwardLength: number;
  expertSharedCount: number;
  expertWeightsScale: number;
  expertWeightsNorm: boolean;
  /** multiplies q·k: 1/sqrt(key_length), times YaRN's mscale² */
  attentionScale: number;
}

interface DeepSeek2Layer<W> {
  attnNorm: W;                      // [dim]
  /** q through the low-rank bottleneck: a [dim, qRank], its norm [qRank], b [qRank, nHead·keyLength]; or one [dim, nHead·keyLength] */
  q: { a: W; norm: W; b: W } | { full: W };
  kvA: W;                           // [dim, kvRank + ropeDims]
  kvANorm: W;                       // [kvRank]
  kvB: W;                           // [kvRank, nHead·(nope + valueLength)]
  wo: W;                            // [nHead·valueLength, dim]
  ffnNorm: W;                       // [dim]
  ffn?: GatedFFN<W>;                // dense blocks
  experts?: ExpertWeights<W>;       // the others, with
  shared?: GatedFFN<W>;             // their shared experts
}

/** llama.cpp's expert gating functions (LLAMA_EXPERT_GATING_FUNC_TYPE_*) */
const GATING_SOFTMAX = 1;

function readHParams(meta: Metadata): DeepSeek2HParams {
  const { hp, keys } = readBaseHParams(meta);
  const keyLength = keys.count('attention.key_length');
  const rope = ropeFromMetadata(keys, keyLength, false);
  if (rope.nDims > keyLength) throw new MetadataError(`deepseek2: ${rope.nDims} roped dims exceed the key length ${keyLength}`);
  const gating = keys.number('expert_gating_func', GATING_SOFTMAX);
  if (gating !== GATING_SOFTMAX) throw new MetadataError(`deepseek2: expert gating function ${gating} is not supported (softmax gating is)`);
  // YaRN's magnitude goes into the attention scale instead of cos/sin (llama.cpp's deepseek2 graph):
  // mscale = 1 + yarn_log_multiplier·ln(1/freqScale), scores × mscale², rope magnitude × 1/(1 + 0.1·ln(1/freqScale))
  const stretch = Math.log(1 / rope.freqScale);
  const mscale = 1 + keys.number('rope.scaling.yarn_log_multiplier', 0) * stretch;
  if (rope.yarn) rope.yarn.attnFactor = 1 / (1 + 0.1 * stretch);
  return {
    ...hp,
    keyLength,
    valueLength: keys.count('attention.value_length'),
    qLoraRank: keys.count('attention.q_lora_rank', 0),
    kvLoraRank: keys.count('attention.kv_lora_rank'),
    rmsEps: keys.number('attention.layer_norm_rms_epsilon', 1e-6),
    // the roped dims are the last of each q head
    rope: { ...rope, offset: keyLength - rope.nDims },
    leadingDenseBlocks: keys.count('leading_dense_block_count', 0, 1 << 16),
    expertFeedForwardLength: keys.count('expert_feed_forward_length', 0),
    expertSharedCount: keys.count('expert_shared_count', 0, 1 << 16),
    expertWeightsScale: keys.number('expert_weights_scale', 1),
    expertWeightsNorm: keys.bool('expert_weights_norm', false),
    attentionScale: (rope.yarn ? mscale * mscale : 1) / Math.sqrt(keyLength),
  };
}

function bind<W>(hp: DeepSeek2HParams, t: TensorSource<W>): BoundModel<W> {
  const dim = hp.embeddingLength, nHead = hp.headCount, ropeDims = hp.rope.nDims;
  const nope = hp.keyLength - ropeDims, kvRank = hp.kvLoraRank;
  const nFFExpert = hp.expertFeedForwardLength, nExpert = hp.expertCount;
  const tokenEmbd = t.need('token_embd.weight', [dim, hp.vocabSize]);
  const blocks: DeepSeek2Layer<W>[] = layers(hp.blockCount, (l, p) => ({
    attnNorm: t.need(p + 'attn_norm.weight', [dim]),
    q: hp.qLoraRank > 0
      ? {
        a: t.need(p + 'attn_q_a.weight', [dim, hp.qLoraRank]),
        norm: t.need(p + 'attn_q_a_norm.weight', [hp.qLoraRank]),
        b: t.need(p + 'attn_q_b.weight', [hp.qLoraRank, nHead * hp.keyLength]),
      }
      : { full: t.need(p + 'attn_q.weight', [dim, nHead * hp.keyLength]) },
    kvA: t.need(p + 'attn_kv_a_mqa.weight', [dim, kvRank + ropeDims]),
    kvANorm: t.need(p + 'attn_kv_a_norm.weight', [kvRank]),
    kvB: t.need(p + 'attn_kv_b.weight', [kvRank, nHead * (nope + hp.valueLength)]),
    wo: t.need(p + 'attn_output.weight', [nHead * hp.valueLength, dim]),
    ffnNorm: t.need(p + 'ffn_norm.weight', [dim]),
    ...(l < hp.leadingDenseBlocks || nExpert === 0
      ? { ffn: gatedFFNTensors(t.need, p, dim, hp.feedForwardLength) }
      : {
        experts: expertTensors(t.need, p, dim, nFFExpert, nExpert, {
          nUsed: hp.expertUsedCount, normalizeWeights: hp.expertWeightsNorm, weightScale: hp.expertWeightsScale,
        }),
        shared: gatedFFNTensors(t.need, p, dim, nFFExpert * hp.expertSharedCount, '_shexp'),
      }),
  }));
  const outputNorm = t.need('output_norm.weight', [dim]);
  const output = t.optional('output.weight', [dim, hp.vocabSize]) ?? tokenEmbd;
  const shape: LatentAttentionShape = { nHeads: nHead, nopeDim: nope, ropeDim: ropeDims, kvRank, valueDim: hp.valueLength, scale: hp.attentionScale };
  const keyRope: RopeParams = { ...hp.rope, offset: 0 }; // the shared roped key is a head of its own
  const eps = hp.rmsEps;

  return {
    forward<T>(ops: ModelOps<T, W>) {
      let x = ops.embed(tokenEmbd); // [n, dim]
      blocks.forEach((b, l) => {
        const h = ops.rmsnorm(x, b.attnNorm, eps);
        const qIn = 'full' in b.q ? ops.linear(h, b.q.full) : ops.linear(ops.rmsnorm(ops.linear(h, b.q.a), b.q.norm, eps), b.q.b);
        const q = ops.rope(qIn, nHead, hp.keyLength, hp.rope); // [n, nHead·keyLength]
        const kvA = ops.linear(h, b.kvA); // [n, kvRank + ropeDims]
        const latent = ops.rmsnorm(ops.columns(kvA, 0, kvRank), b.kvANorm, eps); // [n, kvRank]
        const kRope = ops.rope(ops.columns(kvA, kvRank, ropeDims), 1, ropeDims, keyRope); // [n, ropeDims]
        x = ops.add(x, ops.linear(ops.latentAttention(l, q, latent, kRope, b.kvB, shape), b.wo));
        const f = ops.rmsnorm(x, b.ffnNorm, eps);
        x = ops.add(x, b.ffn ? swigluFFN(ops, f, b.ffn) : ops.add(ops.mixtureOfExperts(l, f, b.experts!), swigluFFN(ops, f, b.shared!)));
        x = ops.endLayer(x);
      });
      const hidden = ops.rmsnorm(ops.outputRows(x), outputNorm, eps); // [nOut, dim]
      return { hidden, head: (h: T) => ops.linear(h, output) };
    },
  };
}

/** DeepSeek's scoring_func → llama.cpp's expert gating function */
const GATING: Record<string, number> = { softmax: GATING_SOFTMAX, sigmoid: 2 };

/** DeepseekV2Model.set_gguf_parameters (the converter whose key_length is nope + rope dims, as kiln reads it) */
function deepseek2Metadata(c: HFConfig, fileType: number): [string, GGUFValue][] {
  const rope = c.count('qk_rope_head_dim');
  const out: [string, GGUFValue][] = [
    ...baseMetadata('deepseek2', c, fileType),
    ['deepseek2.leading_dense_block_count', metaU32(c.count('first_k_dense_replace'))],
    ['deepseek2.vocab_size', metaU32(c.count('vocab_size'))],
  ];
  if (c.has('q_lora_rank')) out.push(['deepseek2.attention.q_lora_rank', metaU32(c.count('q_lora_rank'))]);
  const scoring = c.string('scoring_func') ?? 'softmax';
  if (!(scoring in GATING)) throw new HFError('BAD_CONFIG', c.path, 'scoring_func', `is ${JSON.stringify(scoring)}; kiln reads softmax or sigmoid`);
  out.push(
    ['deepseek2.attention.kv_lora_rank', metaU32(c.count('kv_lora_rank'))],
    ['deepseek2.attention.key_length', metaU32(c.count('qk_nope_head_dim') + rope)],
    ['deepseek2.attention.value_length', metaU32(c.count('v_head_dim'))],
    ['deepseek2.expert_feed_forward_length', metaU32(c.count('moe_intermediate_size'))],
    ['deepseek2.expert_count', metaU32(c.count('n_routed_experts'))],
    ['deepseek2.expert_shared_count', metaU32(c.count('n_shared_experts'))],
    ['deepseek2.expert_weights_scale', metaF32(c.number('routed_scaling_factor', 1))],
    ['deepseek2.expert_weights_norm', metaBool(c.bool('norm_topk_prob', false))],
    ['deepseek2.expert_gating_func', metaU32(GATING[scoring])],
    ['deepseek2.rope.dimension_count', metaU32(rope)],
  );
  const scaling = c.values.rope_scaling as { type?: unknown; factor?: unknown; original_max_position_embeddings?: unknown; mscale_all_dim?: unknown } | null | undefined;
  if (scaling?.type === 'yarn' && typeof scaling.factor === 'number') {
    out.push(
      ['deepseek2.rope.scaling.type', metaString('yarn')],
      ['deepseek2.rope.scaling.factor', metaF32(scaling.factor)],
      ['deepseek2.rope.scaling.original_context_length', metaU32(Number(scaling.original_max_position_embeddings))],
      ['deepseek2.rope.scaling.yarn_log_multiplier', metaF32(0.1 * Number(scaling.mscale_all_dim ?? 0))],
    );
  }
  return out;
}

/** DeepseekV2ForCausalLM: rope dims stored as GGUF's normal rope reads them (HF de-interleaves at run time) */
const deepseek2HF: HFNames = {
  classes: ['DeepseekV2ForCausalLM'],
  metadata: deepseek2Metadata,
  tensors: {
    'model.layers.{N}.self_attn.q_proj.weight': 'blk.{N}.attn_q.weight',
    'model.layers.{N}.self_attn.q_a_proj.weight': 'blk.{N}.attn_q_a.weight',
    'model.layers.{N}.self_attn.q_a_layernorm.weight': 'blk.{N}.attn_q_a_norm.weight',
    'model.layers.{N}.self_attn.q_b_proj.weight': 'blk.{N}.attn_q_b.weight',
    'model.layers.{N}.self_attn.kv_a_proj_with_mqa.weight': 'blk.{N}.attn_kv_a_mqa.weight',
    'model.layers.{N}.self_attn.kv_a_layernorm.weight': 'blk.{N}.attn_kv_a_norm.weight',
    'model.layers.{N}.self_attn.kv_b_proj.weight': 'blk.{N}.attn_kv_b.weight',
    'model.layers.{N}.mlp.gate.weight': 'blk.{N}.ffn_gate_inp.weight',
    'model.layers.{N}.mlp.experts.{E}.gate_proj.weight': 'blk.{N}.ffn_gate_exps.weight',
    'model.layers.{N}.mlp.experts.{E}.up_proj.weight': 'blk.{N}.ffn_up_exps.weight',
    'model.layers.{N}.mlp.experts.{E}.down_proj.weight': 'blk.{N}.ffn_down_exps.weight',
    'model.layers.{N}.mlp.shared_experts.gate_proj.weight': 'blk.{N}.ffn_gate_shexp.weight',
    'model.layers.{N}.mlp.shared_experts.up_proj.weight': 'blk.{N}.ffn_up_shexp.weight',
    'model.layers.{N}.mlp.shared_experts.down_proj.weight': 'blk.{N}.ffn_down_shexp.weight',
    ...HF_DECODER_TENSORS,
  },
  ignored: /\.rotary_emb\.inv_freq$/,
  config(meta, tied) {
    const hp = readHParams(meta);
    const yarn = hp.rope.yarn && {
      type: 'yarn', factor: 1 / hp.rope.freqScale, original_max_position_embeddings: hp.rope.yarn.originalContext,
      mscale_all_dim: (getNumber(meta, 'deepseek2.rope.scaling.yarn_log_multiplier') ?? 0) / 0.1,
    };
    return {
      architectures: ['DeepseekV2ForCausalLM'], model_type: 'deepseek_v2',
      hidden_size: hp.embeddingLength, intermediate_size: hp.feedForwardLength, moe_intermediate_size: hp.expertFeedForwardLength,
      num_hidden_layers: hp.blockCount, num_attention_heads: hp.headCount, num_key_value_heads: hp.headCountKv,
      first_k_dense_replace: hp.leadingDenseBlocks, n_routed_experts: hp.expertCount, n_shared_experts: hp.expertSharedCount,
      num_experts_per_tok: hp.expertUsedCount, routed_scaling_factor: hp.expertWeightsScale, norm_topk_prob: hp.expertWeightsNorm,
      scoring_func: 'softmax', q_lora_rank: hp.qLoraRank || null, kv_lora_rank: hp.kvLoraRank,
      qk_rope_head_dim: hp.rope.nDims, qk_nope_head_dim: hp.keyLength - hp.rope.nDims, v_head_dim: hp.valueLength,
      vocab_size: hp.vocabSize, max_position_embeddings: hp.contextLength, rms_norm_eps: hp.rmsEps, rope_theta: hp.rope.freqBase,
      rope_scaling: yarn ?? null, hidden_act: 'silu', tie_word_embeddings: tied, ...specialIds(meta),
    };
  },
};

export const deepseek2: Architecture<DeepSeek2HParams> = {
  names: ['deepseek2'],
  hf: deepseek2HF,
  hparams: readHParams,
  // one row per position: the latent and the shared roped key; the values are read from the latent
  cacheRow: (hp) => ({ keys: hp.kvLoraRank + hp.rope.nDims, values: 0 }),
  bind,
};
