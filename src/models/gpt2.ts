// GPT-2: learned position embeddings, pre-norm blocks with LayerNorm (weight and bias), one fused q/k/v projection,
// a GELU feed-forward, and a bias on every linear:
//   x = E[token] + P[position]
//   h = x + Wo · attention(split(Wqkv · LN(x) + b)) + bo
//   out = h + W2 · gelu(W1 · LN(h) + b1) + b2
// and logits = Wout · LN(x_last).

import type { Metadata } from '../gguf/metadata.js';
import type { Architecture, BoundModel, TensorSource } from './architecture.js';
import { readBaseHParams, type HParams } from './hparams.js';
import { layers } from './layers.js';
import type { ModelOps } from './ops.js';

export interface GPT2HParams extends HParams {
  /** `gpt2.attention.layer_norm_epsilon` */
  layerNormEps: number;
}

/** A LayerNorm's weight and bias, [dim] each. */
export interface Norm<W> {
  weight: W;
  bias: W;
}

/** The LayerNorm `name`.weight / `name`.bias of width `dim`. */
export function layerNormTensors<W>(t: TensorSource<W>, name: string, dim: number): Norm<W> {
  return { weight: t.need(`${name}.weight`, [dim]), bias: t.need(`${name}.bias`, [dim]) };
}

/** A linear layer with its bias: w dims [nIn, nOut], b [nOut]. */
export interface Linear<W> {
  w: W;
  b: W;
}

export function linearTensors<W>(t: TensorSource<W>, name: string, nIn: number, nOut: number): Linear<W> {
  return { w: t.need(`${name}.weight`, [nIn, nOut]), b: t.need(`${name}.bias`, [nOut]) };
}

interface GPT2Layer<W> {
  attnNorm: Norm<W>;
  qkv: Linear<W>;       // [dim, 3·dim]: q, k, v rows
  output: Linear<W>;    // [dim, dim]
  ffnNorm: Norm<W>;
  up: Linear<W>;        // [dim, nFF]
  down: Linear<W>;      // [nFF, dim]
}

function readHParams(meta: Metadata): GPT2HParams {
  const { hp, keys } = readBaseHParams(meta);
  return { ...hp, layerNormEps: keys.number('attention.layer_norm_epsilon', 1e-5) };
}

function bind<W>(hp: GPT2HParams, t: TensorSource<W>): BoundModel<W> {
  const dim = hp.embeddingLength, nFF = hp.feedForwardLength;
  const tokenEmbd = t.need('token_embd.weight', [dim, hp.vocabSize]);
  const positionEmbd = t.need('position_embd.weight', [dim, hp.contextLength]);
  const blocks: GPT2Layer<W>[] = layers(hp.blockCount, (_, p) => ({
    attnNorm: layerNormTensors(t, p + 'attn_norm', dim),
    qkv: linearTensors(t, p + 'attn_qkv', dim, 3 * dim),
    output: linearTensors(t, p + 'attn_output', dim, dim),
    ffnNorm: layerNormTensors(t, p + 'ffn_norm', dim),
    up: linearTensors(t, p + 'ffn_up', dim, nFF),
    down: linearTensors(t, p + 'ffn_down', nFF, dim),
  }));
  const outputNorm = layerNormTensors(t, 'output_norm', dim);
  const output = t.optional('output.weight', [dim, hp.vocabSize]) ?? tokenEmbd;
  const headDim = dim / hp.headCount;
  const shape = { nHeads: hp.headCount, nKvHeads: hp.headCount, headDim, scale: 1 / Math.sqrt(headDim) };
  const eps = hp.layerNormEps;

  return {
    forward<T>(ops: ModelOps<T, W>) {
      let x = ops.add(ops.embed(tokenEmbd), ops.embed(positionEmbd, 'positions')); // [n, dim]
      blocks.forEach((b, l) => {
        const [q, k, v] = ops.linearSplit(ops.layernorm(x, b.attnNorm.weight, b.attnNorm.bias, eps), b.qkv.w, [dim, dim, dim], b.qkv.b); // [n, dim] each
        const attn = ops.attention(l, q, k, v, shape);
        x = ops.add(x, ops.linear(attn, b.output.w, b.output.b));
        const f = ops.layernorm(x, b.ffnNorm.weight, b.ffnNorm.bias, eps);
        x = ops.add(x, ops.linear(ops.gelu(ops.linear(f, b.up.w, b.up.b)), b.down.w, b.down.b));
      });
      const hidden = ops.layernorm(ops.outputRows(x), outputNorm.weight, outputNorm.bias, eps); // [nOut, dim]
      return { hidden, head: (h: T) => ops.linear(h, output) };
    },
  };
}

export const gpt2: Architecture<GPT2HParams> = {
  names: ['gpt2'],
  hparams: readHParams,
  cacheRow: (hp) => ({ keys: hp.embeddingLength, values: hp.embeddingLength }),
  bind,
};
