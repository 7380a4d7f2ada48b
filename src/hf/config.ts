// A Hugging Face config.json read with typed getters whose errors name the file and the key, and the GGUF metadata
// every text model gets from it (llama.cpp's convert_hf_to_gguf.py TextModel.set_gguf_parameters, same order).

import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { metaF32, metaU32 } from '../gguf/writer.js';
import { getNumber, type Metadata } from '../gguf/metadata.js';
import type { GGUFValue } from '../gguf/types.js';
import { HFError } from './safetensors.js';

/** counts read from a config (layers, heads, widths) are capped so that a hostile file cannot ask for more */
const MAX_COUNT = 1 << 24;

export class HFConfig {
  constructor(readonly path: string, readonly values: Record<string, unknown>) {}

  static read(path: string, file = 'config.json'): HFConfig {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      throw new HFError(missing ? 'MISSING_FILE' : 'BAD_CONFIG', path, '', missing ? `${file} is missing` : `is not JSON: ${(e as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new HFError('BAD_CONFIG', path, '', 'is not a JSON object');
    return new HFConfig(path, doc as Record<string, unknown>);
  }

  has(key: string): boolean {
    return this.values[key] !== undefined && this.values[key] !== null;
  }

  /** a number, or `fallback` when absent */
  number(key: string, fallback?: number): number {
    const v = this.values[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new HFError('BAD_CONFIG', this.path, key, v === undefined ? 'is missing' : `is ${JSON.stringify(v)}, not a number`);
    return v;
  }

  /** a count: an integer in [0, 2^24] */
  count(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v < 0 || v > MAX_COUNT) throw new HFError('BAD_CONFIG', this.path, key, `is ${v}, not an integer in [0, ${MAX_COUNT}]`);
    return v;
  }

  string(key: string): string | undefined {
    const v = this.values[key];
    if (v !== undefined && v !== null && typeof v !== 'string') throw new HFError('BAD_CONFIG', this.path, key, 'is not a string');
    return v ?? undefined;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.values[key] ?? fallback;
    if (typeof v !== 'boolean') throw new HFError('BAD_CONFIG', this.path, key, 'is not true or false');
    return v;
  }

  /** a token id, or one of a list of ids (the first is taken, as the converter does) */
  tokenId(key: string): number | undefined {
    const v = this.values[key];
    const id = Array.isArray(v) ? v[0] : v;
    return typeof id === 'number' && Number.isInteger(id) && id >= 0 ? id : undefined;
  }
}

/** The first of `keys` the config has (the converter's find_hparam), or undefined. */
export function firstKey(c: HFConfig, keys: readonly string[]): string | undefined {
  return keys.find((k) => c.has(k));
}

/**
 * The keys every text model writes from its config, prefixed by the architecture, ending with the file type
 * (llama.cpp's TextModel.set_gguf_parameters: each parameter from the first config key of its list that is present).
 */
export function baseMetadata(arch: string, c: HFConfig, fileType: number): [string, GGUFValue][] {
  const out: [string, GGUFValue][] = [[`${arch}.block_count`, metaU32(c.count(firstKey(c, LAYERS) ?? LAYERS[0]))]];
  const counts: [string, readonly string[]][] = [
    ['context_length', ['max_position_embeddings', 'n_ctx', 'n_positions', 'max_length']],
    ['embedding_length', ['hidden_size', 'n_embd', 'dim']],
    ['feed_forward_length', ['intermediate_size', 'n_inner', 'hidden_dim']],
    ['attention.head_count', ['num_attention_heads', 'n_head', 'n_heads']],
    ['attention.head_count_kv', ['num_key_value_heads']],
  ];
  for (const [gguf, keys] of counts) {
    const key = firstKey(c, keys);
    if (key !== undefined) out.push([`${arch}.${gguf}`, metaU32(c.count(key))]);
  }
  const floats: [string, readonly string[]][] = [
    ['rope.freq_base', ['rope_theta']],
    ['attention.layer_norm_rms_epsilon', ['rms_norm_eps']],
    ['attention.layer_norm_epsilon', ['layer_norm_eps', 'layer_norm_epsilon', 'norm_epsilon']],
  ];
  for (const [gguf, keys] of floats) {
    const key = firstKey(c, keys);
    if (key !== undefined) out.push([`${arch}.${gguf}`, metaF32(c.number(key))]);
  }
  if (c.has('num_local_experts')) out.push([`${arch}.expert_count`, metaU32(c.count('num_local_experts'))]);
  if (c.has('num_experts_per_tok')) out.push([`${arch}.expert_used_count`, metaU32(c.count('num_experts_per_tok'))]);
  if (c.has('head_dim')) {
    out.push([`${arch}.attention.key_length`, metaU32(c.count('head_dim'))], [`${arch}.attention.value_length`, metaU32(c.count('head_dim'))]);
  }
  out.push(['general.file_type', metaU32(fileType)]);
  return out;
}

const LAYERS = ['n_layers', 'num_hidden_layers', 'n_layer', 'num_layers'];

/** config.json's bos/eos token ids from GGUF metadata */
export function specialIds(meta: Metadata): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of ['bos', 'eos']) {
    const id = getNumber(meta, `tokenizer.ggml.${kind}_token_id`);
    if (id !== undefined) out[`${kind}_token_id`] = id;
  }
  return out;
}

/** sentence-transformers' pooling modes → llama.cpp's pooling types (mean 1, cls 2, last 3) */
const POOLING_MODES: [string, number][] = [['pooling_mode_mean_tokens', 1], ['pooling_mode_cls_token', 2], ['pooling_mode_lasttoken', 3]];

/**
 * The pooling type of a sentence-transformers folder (modules.json naming a Pooling module whose config.json sets a
 * pooling_mode_*), as the converter's _try_set_pooling_type reads it; undefined without one.
 */
export function sentenceTransformersPooling(dir: string): number | undefined {
  const modulesPath = join(dir, 'modules.json');
  if (!existsSync(modulesPath)) return undefined;
  let modules: unknown;
  try {
    modules = JSON.parse(readFileSync(modulesPath, 'utf8'));
  } catch (e) {
    throw new HFError('BAD_CONFIG', modulesPath, '', `is not JSON: ${(e as Error).message}`);
  }
  const pooling = Array.isArray(modules) ? modules.find((m) => (m as { type?: unknown })?.type === 'sentence_transformers.models.Pooling') : undefined;
  const path = (pooling as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string' || basename(path) !== path) return undefined;
  const config = HFConfig.read(join(dir, path, 'config.json'), `${path}/config.json`);
  return POOLING_MODES.find(([mode]) => config.bool(mode, false))?.[1];
}
