// Hyper-parameters, named as in the GGUF metadata (`{arch}.embedding_length`, …). `HParams` holds what every
// architecture has and what code outside the model files uses (the engine, the inspector, the estimator); each
// architecture file extends it with its own, read by its own keys.

import { getBool, getNumber, getString, MetadataError, requireNumber, requireString, type Metadata } from '../gguf/metadata.js';

/** How an embedding is pooled from a sequence's final hidden states. */
export type Pooling = 'mean' | 'cls' | 'last';

export interface HParams {
  arch: string;
  /** `{arch}.context_length`: the context the model was trained with */
  contextLength: number;
  /** `{arch}.embedding_length` */
  embeddingLength: number;
  /** `{arch}.block_count` */
  blockCount: number;
  /** `{arch}.feed_forward_length` (0 when the architecture has none of one width) */
  feedForwardLength: number;
  /** `{arch}.attention.head_count` */
  headCount: number;
  /** `{arch}.attention.head_count_kv` (defaults to head_count: no GQA) */
  headCountKv: number;
  /** `{arch}.expert_count` (0 = dense) */
  expertCount: number;
  /** `{arch}.expert_used_count` */
  expertUsedCount: number;
  /** `{arch}.vocab_size`, else the tokenizer's token count */
  vocabSize: number;
  /** a decoder whose positions see only earlier ones (false: an encoder such as bert) */
  causal: boolean;
  /** the pooling the model was made for, when it is an embedding model (`{arch}.pooling_type`) */
  pooling?: Pooling;
}

/** Reads `{arch}.KEY` metadata: typed getters with defaults, and a clear error for what must be there. */
export class ArchMetadata {
  constructor(readonly meta: Metadata, readonly arch: string) {}

  number(key: string, fallback: number): number {
    return getNumber(this.meta, `${this.arch}.${key}`) ?? fallback;
  }

  optionalNumber(key: string): number | undefined {
    return getNumber(this.meta, `${this.arch}.${key}`);
  }

  required(key: string): number {
    return requireNumber(this.meta, `${this.arch}.${key}`);
  }

  /** a count read from the file: a positive integer no larger than `max` (a hostile file cannot ask for more) */
  count(key: string, fallback?: number, max = 1 << 24): number {
    const v = fallback === undefined ? this.required(key) : this.number(key, fallback);
    if (!Number.isSafeInteger(v) || v < 0 || v > max) throw new MetadataError(`metadata ${this.arch}.${key} = ${v} is not an integer in [0, ${max}]`);
    return v;
  }

  string(key: string): string | undefined {
    return getString(this.meta, `${this.arch}.${key}`);
  }

  bool(key: string, fallback: boolean): boolean {
    return getBool(this.meta, `${this.arch}.${key}`) ?? fallback;
  }
}

// llama.cpp's pooling types (enum llama_pooling_type)
const POOLING_TYPES: Record<number, Pooling> = { 1: 'mean', 2: 'cls', 3: 'last' };

/** The hyper-parameters every architecture reads the same way. */
export function readBaseHParams(meta: Metadata): { hp: HParams; keys: ArchMetadata } {
  const arch = requireString(meta, 'general.architecture');
  const keys = new ArchMetadata(meta, arch);
  const headCount = keys.count('attention.head_count');
  if (headCount === 0) throw new MetadataError(`metadata ${arch}.attention.head_count is 0`);
  const tokens = meta.get('tokenizer.ggml.tokens');
  const vocabFromTokens = tokens && Array.isArray(tokens.value) ? tokens.value.length : 0;
  const pooling = keys.optionalNumber('pooling_type');
  const hp: HParams = {
    arch,
    contextLength: keys.count('context_length', 2048),
    embeddingLength: keys.count('embedding_length'),
    blockCount: keys.count('block_count', undefined, 1 << 16),
    feedForwardLength: keys.count('feed_forward_length', 0),
    headCount,
    headCountKv: keys.count('attention.head_count_kv', headCount),
    expertCount: keys.count('expert_count', 0, 1 << 16),
    expertUsedCount: keys.count('expert_used_count', 0, 1 << 16),
    vocabSize: keys.count('vocab_size', vocabFromTokens),
    causal: keys.bool('attention.causal', true),
    pooling: pooling === undefined ? undefined : POOLING_TYPES[pooling],
  };
  return { hp, keys };
}
