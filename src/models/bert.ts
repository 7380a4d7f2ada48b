// BERT, an encoder: every position sees the whole sequence (bidirectional attention). Token, token-type (row 0)
// and learned position embeddings are summed and LayerNorm-ed; post-norm blocks follow:
//   h = LN(x + Wo · attention(Wq·x + bq, Wk·x + bk, Wv·x + bv) + bo)
//   out = LN(h + W2 · gelu(W1·h + b1) + b2)
// There is no language-model head: the final hidden states are pooled into sentence embeddings (bert.pooling_type).

import type { Metadata } from '../gguf/metadata.js';
import type { Architecture, BoundModel, HFNames, TensorSource } from './architecture.js';
import { baseMetadata, sentenceTransformersPooling } from '../hf/config.js';
import { metaBool, metaU32 } from '../gguf/writer.js';
import { dirname } from 'node:path';
import type { GGUFValue } from '../gguf/types.js';
import { layerNormTensors, linearTensors, type Linear, type Norm } from './gpt2.js';
import { readBaseHParams, type HParams } from './hparams.js';
import { layers } from './layers.js';
import type { ModelOps } from './ops.js';

export interface BertHParams extends HParams {
  /** `bert.attention.layer_norm_epsilon` */
  layerNormEps: number;
}

interface BertLayer<W> {
  q: Linear<W>;         // [dim, dim]
  k: Linear<W>;
  v: Linear<W>;
  output: Linear<W>;    // [dim, dim]
  attnOutputNorm: Norm<W>;
  up: Linear<W>;        // [dim, nFF]
  down: Linear<W>;      // [nFF, dim]
  layerOutputNorm: Norm<W>;
}

/** token types a bert model distinguishes (sentence A / B) */
const TOKEN_TYPES = 2;

function readHParams(meta: Metadata): BertHParams {
  const { hp, keys } = readBaseHParams(meta);
  return { ...hp, causal: keys.bool('attention.causal', false), pooling: hp.pooling ?? 'cls', layerNormEps: keys.number('attention.layer_norm_epsilon', 1e-12) };
}

function bind<W>(hp: BertHParams, t: TensorSource<W>): BoundModel<W> {
  const dim = hp.embeddingLength, nFF = hp.feedForwardLength;
  const tokenEmbd = t.need('token_embd.weight', [dim, hp.vocabSize]);
  const tokenTypes = t.need('token_types.weight', [dim, TOKEN_TYPES]);
  const positionEmbd = t.need('position_embd.weight', [dim, hp.contextLength]);
  const embdNorm = layerNormTensors(t, 'token_embd_norm', dim);
  const blocks: BertLayer<W>[] = layers(hp.blockCount, (_, p) => ({
    q: linearTensors(t, p + 'attn_q', dim, dim),
    k: linearTensors(t, p + 'attn_k', dim, dim),
    v: linearTensors(t, p + 'attn_v', dim, dim),
    output: linearTensors(t, p + 'attn_output', dim, dim),
    attnOutputNorm: layerNormTensors(t, p + 'attn_output_norm', dim),
    up: linearTensors(t, p + 'ffn_up', dim, nFF),
    down: linearTensors(t, p + 'ffn_down', nFF, dim),
    layerOutputNorm: layerNormTensors(t, p + 'layer_output_norm', dim),
  }));
  const headDim = dim / hp.headCount;
  const shape = { nHeads: hp.headCount, nKvHeads: hp.headCount, headDim, scale: 1 / Math.sqrt(headDim) };
  const mask = { kind: hp.causal ? 'causal' : 'bidirectional' } as const;
  const eps = hp.layerNormEps;

  return {
    forward<T>(ops: ModelOps<T, W>) {
      // token + token type 0 + position, normalized
      const sum = ops.add(ops.add(ops.embed(tokenEmbd), ops.embed(tokenTypes, 0)), ops.embed(positionEmbd, 'positions'));
      let x = ops.layernorm(sum, embdNorm.weight, embdNorm.bias, eps); // [n, dim]
      blocks.forEach((b, l) => {
        const attn = ops.attention(l, ops.linear(x, b.q.w, b.q.b), ops.linear(x, b.k.w, b.k.b), ops.linear(x, b.v.w, b.v.b), shape, mask);
        x = ops.layernorm(ops.add(ops.linear(attn, b.output.w, b.output.b), x), b.attnOutputNorm.weight, b.attnOutputNorm.bias, eps);
        const ffn = ops.linear(ops.gelu(ops.linear(x, b.up.w, b.up.b)), b.down.w, b.down.b);
        x = ops.layernorm(ops.add(ffn, x), b.layerOutputNorm.weight, b.layerOutputNorm.bias, eps);
        x = ops.endLayer(x);
      });
      return { hidden: ops.outputRows(x) }; // [nOut, dim]
    },
  };
}

const BERT_LAYER: Record<string, string> = {
  'attention.self.query': 'attn_q', 'attention.self.key': 'attn_k', 'attention.self.value': 'attn_v',
  'attention.output.dense': 'attn_output', 'attention.output.LayerNorm': 'attn_output_norm',
  'intermediate.dense': 'ffn_up', 'output.dense': 'ffn_down', 'output.LayerNorm': 'layer_output_norm',
};
const BERT_GLOBAL: Record<string, string> = {
  'embeddings.word_embeddings.weight': 'token_embd.weight', 'embeddings.position_embeddings.weight': 'position_embd.weight',
  'embeddings.token_type_embeddings.weight': 'token_types.weight',
  'embeddings.LayerNorm.weight': 'token_embd_norm.weight', 'embeddings.LayerNorm.bias': 'token_embd_norm.bias',
};

/** BertModel (with or without the `bert.` prefix of BertForMaskedLM); the pooler and the MLM head are not used */
const bertHF: HFNames = {
  classes: ['BertModel', 'BertForMaskedLM'],
  // BertModel.set_gguf_parameters: the base keys, not causal, the sentence-transformers pooling
  metadata(c, fileType) {
    const pooling = sentenceTransformersPooling(dirname(c.path));
    const out: [string, GGUFValue][] = [...baseMetadata('bert', c, fileType), ['bert.attention.causal', metaBool(false)]];
    if (pooling !== undefined) out.push(['bert.pooling_type', metaU32(pooling)]);
    return out;
  },
  tensors: Object.fromEntries(['', 'bert.'].flatMap((prefix) => [
    ...Object.entries(BERT_GLOBAL).map(([hf, gguf]) => [prefix + hf, gguf]),
    ...Object.entries(BERT_LAYER).flatMap(([hf, gguf]) => ['weight', 'bias'].map((p) => [`${prefix}encoder.layer.{N}.${hf}.${p}`, `blk.{N}.${gguf}.${p}`])),
  ])),
  ignored: /^(bert\.)?(embeddings\.position_ids|pooler\..*)$|^cls\./,
  config(meta) {
    const hp = readHParams(meta);
    return {
      architectures: ['BertModel'], model_type: 'bert',
      hidden_size: hp.embeddingLength, intermediate_size: hp.feedForwardLength, num_hidden_layers: hp.blockCount,
      num_attention_heads: hp.headCount, max_position_embeddings: hp.contextLength, layer_norm_eps: hp.layerNormEps,
      type_vocab_size: TOKEN_TYPES, vocab_size: hp.vocabSize, hidden_act: 'gelu',
    };
  },
};

export const bert: Architecture<BertHParams> = {
  hf: bertHF,
  names: ['bert'],
  hparams: readHParams,
  cacheRow: (hp) => ({ keys: hp.embeddingLength, values: hp.embeddingLength }),
  bind,
};
