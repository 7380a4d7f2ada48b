// Pieces several architectures share: per-layer tensor naming, feed-forward blocks, and the rope settings read
// from metadata.

import type { RopeParams } from '../kernels/backend.js';
import type { ArchMetadata, HParams } from './hparams.js';
import { MetadataError } from '../gguf/metadata.js';
import type { ExpertWeights, ModelOps } from './ops.js';

/** `count` layers, layer i built by `make(i, "blk.i.")` */
export function layers<L>(count: number, make: (i: number, prefix: string) => L): L[] {
  return Array.from({ length: count }, (_, i) => make(i, `blk.${i}.`));
}

/** A gated feed-forward block's weights: gate/up dims [dim, nFF], down [nFF, dim]. */
export interface GatedFFN<W> {
  gate: W;
  up: W;
  down: W;
}

/** down · (silu(gate · x) ⊙ up · x) */
export function swigluFFN<T, W>(ops: ModelOps<T, W>, x: T, ffn: GatedFFN<W>): T {
  const [gate, up] = ops.linears(x, [ffn.gate, ffn.up]);
  return ops.linear(ops.swiglu(gate, up), ffn.down);
}

/** the gated FFN tensors blk.N.{gate,up,down}{suffix}.weight */
export function gatedFFNTensors<W>(need: (name: string, dims: readonly number[]) => W, prefix: string, dim: number, nFF: number, suffix = ''): GatedFFN<W> {
  return {
    gate: need(`${prefix}ffn_gate${suffix}.weight`, [dim, nFF]),
    up: need(`${prefix}ffn_up${suffix}.weight`, [dim, nFF]),
    down: need(`${prefix}ffn_down${suffix}.weight`, [nFF, dim]),
  };
}

/**
 * Rope settings from `{arch}.rope.*`: base (default 10000), dims rotated (default `headDim`), and context scaling:
 * linear (positions divided by the factor) or YaRN (freqScale = 1/factor with YaRN's ramp, llama.cpp's defaults).
 */
export function ropeFromMetadata(keys: ArchMetadata, headDim: number, neox: boolean): RopeParams {
  const scaling = keys.string('rope.scaling.type') ?? 'none';
  const factor = keys.number('rope.scaling.factor', 0);
  const rope: RopeParams = {
    nDims: keys.count('rope.dimension_count', headDim),
    freqBase: keys.number('rope.freq_base', 10000),
    freqScale: scaling !== 'none' && factor > 0 ? 1 / factor : 1,
    neox,
  };
  if (scaling === 'yarn') {
    rope.yarn = {
      originalContext: keys.count('rope.scaling.original_context_length', keys.count('context_length', 2048)),
      extFactor: 1, attnFactor: 1, betaFast: 32, betaSlow: 1,
    };
  } else if (scaling !== 'none' && scaling !== 'linear') {
    throw new MetadataError(`rope scaling "${scaling}" is not supported (none, linear and yarn are)`);
  }
  return rope;
}

/** The attention hyper-parameters of a rope model: per-head key/value widths (default dim/heads), RMS eps, rope. */
export interface RopeAttentionHParams {
  /** `{arch}.attention.key_length` / `value_length` */
  keyLength: number;
  valueLength: number;
  /** `{arch}.attention.layer_norm_rms_epsilon` */
  rmsEps: number;
  /** `{arch}.rope.*` */
  rope: RopeParams;
}

export function ropeAttentionHParams(keys: ArchMetadata, hp: HParams, neox: boolean, defaultEps: number): RopeAttentionHParams {
  const headDim = Math.floor(hp.embeddingLength / hp.headCount);
  const keyLength = keys.count('attention.key_length', headDim);
  return {
    keyLength,
    valueLength: keys.count('attention.value_length', headDim),
    rmsEps: keys.number('attention.layer_norm_rms_epsilon', defaultEps),
    rope: ropeFromMetadata(keys, keyLength, neox),
  };
}

/** The stacked expert tensors blk.N.ffn_{gate_inp,gate_exps,up_exps,down_exps}.weight of nExpert experts of width nFF. */
export function expertTensors<W>(
  need: (name: string, dims: readonly number[]) => W, prefix: string, dim: number, nFF: number, nExpert: number,
  routing: Pick<ExpertWeights<W>, 'nUsed' | 'normalizeWeights' | 'weightScale'>,
): ExpertWeights<W> {
  return {
    router: need(prefix + 'ffn_gate_inp.weight', [dim, nExpert]),
    gate: need(prefix + 'ffn_gate_exps.weight', [dim, nFF, nExpert]),
    up: need(prefix + 'ffn_up_exps.weight', [dim, nFF, nExpert]),
    down: need(prefix + 'ffn_down_exps.weight', [nFF, dim, nExpert]),
    ...routing,
  };
}
