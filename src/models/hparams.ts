// Hyper-parameters of a transformer, named as in the GGUF metadata (`{arch}.embedding_length`, …).

import { getNumber, getString, requireNumber, requireString, type Metadata } from '../gguf/metadata.js';

export interface HParams {
  arch: string;
  /** `{arch}.context_length`: the context the model was trained with */
  contextLength: number;
  /** `{arch}.embedding_length` */
  embeddingLength: number;
  /** `{arch}.block_count` */
  blockCount: number;
  /** `{arch}.feed_forward_length` */
  feedForwardLength: number;
  /** `{arch}.attention.head_count` */
  headCount: number;
  /** `{arch}.attention.head_count_kv` (defaults to head_count: no GQA) */
  headCountKv: number;
  /** `{arch}.attention.key_length` (defaults to embedding_length / head_count) */
  keyLength: number;
  /** `{arch}.attention.value_length` */
  valueLength: number;
  /** `{arch}.attention.layer_norm_rms_epsilon` */
  rmsEps: number;
  /** `{arch}.rope.dimension_count` (defaults to the head dim) */
  ropeDimensionCount: number;
  /** `{arch}.rope.freq_base` (default 10000) */
  ropeFreqBase: number;
  /** 1 / `{arch}.rope.scaling.factor` for linear scaling, else 1 */
  ropeFreqScale: number;
  /** `{arch}.expert_count` (0 = dense) */
  expertCount: number;
  /** `{arch}.expert_used_count` */
  expertUsedCount: number;
  /** `{arch}.vocab_size`, else the tokenizer's token count */
  vocabSize: number;
}

export function readHParams(meta: Metadata): HParams {
  const arch = requireString(meta, 'general.architecture');
  const key = (k: string) => `${arch}.${k}`;
  const embeddingLength = requireNumber(meta, key('embedding_length'));
  const headCount = requireNumber(meta, key('attention.head_count'));
  const headDim = Math.floor(embeddingLength / headCount);
  const keyLength = getNumber(meta, key('attention.key_length')) ?? headDim;
  const scalingType = getString(meta, key('rope.scaling.type'));
  const scalingFactor = getNumber(meta, key('rope.scaling.factor')) ?? 0;
  const tokens = meta.get('tokenizer.ggml.tokens');
  const vocabFromTokens = tokens && Array.isArray(tokens.value) ? tokens.value.length : 0;
  return {
    arch,
    contextLength: getNumber(meta, key('context_length')) ?? 2048,
    embeddingLength,
    blockCount: requireNumber(meta, key('block_count')),
    feedForwardLength: getNumber(meta, key('feed_forward_length')) ?? 0,
    headCount,
    headCountKv: getNumber(meta, key('attention.head_count_kv')) ?? headCount,
    keyLength,
    valueLength: getNumber(meta, key('attention.value_length')) ?? headDim,
    rmsEps: getNumber(meta, key('attention.layer_norm_rms_epsilon')) ?? 1e-5,
    ropeDimensionCount: getNumber(meta, key('rope.dimension_count')) ?? keyLength,
    ropeFreqBase: getNumber(meta, key('rope.freq_base')) ?? 10000,
    ropeFreqScale: scalingType === 'linear' && scalingFactor > 0 ? 1 / scalingFactor : 1,
    expertCount: getNumber(meta, key('expert_count')) ?? 0,
    expertUsedCount: getNumber(meta, key('expert_used_count')) ?? 0,
    vocabSize: getNumber(meta, key('vocab_size')) ?? vocabFromTokens,
  };
}
