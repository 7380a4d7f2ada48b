// GPT-2: learned position embeddings, pre-norm blocks with LayerNorm (weight and bias), one fused q/k/v projection,
// a GELU feed-forward, and a bias on every linear:
//   x = E[token] + P[position]
//   h = x + Wo · attention(split(Wqkv · LN(x) + b)) + bo
//   out = h + W2 · gelu(W1 · LN(h) + b1) + b2
// and logits = Wout · LN(x_last).

import type { Metadata } from '../gguf/metadata.js';
import type { Architecture, BoundModel, HFNames, TensorSource } from './architecture.js';
import { specialIds } from '../hf/config.js';
import { metaF32, metaU32 } from '../gguf/writer.js';
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
        x = ops.endLayer(x);
      });
      const hidden = ops.layernorm(ops.outputRows(x), outputNorm.weight, outputNorm.bias, eps); // [nOut, dim]
      return { hidden, head: (h: T) => ops.linear(h, output) };
    },
  };
}

/** GPT2LMHeadModel: Conv1D weights stored [in, out]; names with or without the `transformer.` prefix */
const GPT2_LAYER: Record<string, string> = {
  'ln_1.weight': 'attn_norm.weight', 'ln_1.bias': 'attn_norm.bias',
  'attn.c_attn.weight': 'attn_qkv.weight', 'attn.c_attn.bias': 'attn_qkv.bias',
  'attn.c_proj.weight': 'attn_output.weight', 'attn.c_proj.bias': 'attn_output.bias',
  'ln_2.weight': 'ffn_norm.weight', 'ln_2.bias': 'ffn_norm.bias',
  'mlp.c_fc.weight': 'ffn_up.weight', 'mlp.c_fc.bias': 'ffn_up.bias',
  'mlp.c_proj.weight': 'ffn_down.weight', 'mlp.c_proj.bias': 'ffn_down.bias',
};
const GPT2_GLOBAL: Record<string, string> = {
  'wte.weight': 'token_embd.weight', 'wpe.weight': 'position_embd.weight', 'ln_f.weight': 'output_norm.weight', 'ln_f.bias': 'output_norm.bias',
};
const gpt2HF: HFNames = {
  classes: ['GPT2LMHeadModel'],
  // GPT2Model.set_gguf_parameters
  metadata: (c, fileType) => [
    ['gpt2.block_count', metaU32(c.count('n_layer'))],
    ['gpt2.context_length', metaU32(c.count('n_ctx', c.count('n_positions', 1024)))],
    ['gpt2.embedding_length', metaU32(c.count('n_embd'))],
    ['gpt2.feed_forward_length', metaU32(c.has('n_inner') ? c.count('n_inner') : 4 * c.count('n_embd'))],
    ['gpt2.attention.head_count', metaU32(c.count('n_head'))],
    ['gpt2.attention.layer_norm_epsilon', metaF32(c.number('layer_norm_epsilon'))],
    ['general.file_type', metaU32(fileType)],
  ],
  tensors: Object.fromEntries([
    ...['transformer.', ''].flatMap((prefix) => [
      ...Object.entries(GPT2_GLOBAL).map(([hf, gguf]) => [prefix + hf, gguf]),
      ...Object.entries(GPT2_LAYER).map(([hf, gguf]) => [`${prefix}h.{N}.${hf}`, `blk.{N}.${gguf}`]),
    ]),
    ['lm_head.weight', 'output.weight'],
  ]),
  ignored: /\.attn\.(masked_)?bias$/,
  transposed: /\.(attn_qkv|attn_output|ffn_up|ffn_down)\.weight$/,
  config(meta, tied) {
    const hp = readHParams(meta);
    return {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2',
      n_embd: hp.embeddingLength, n_inner: hp.feedForwardLength, n_layer: hp.blockCount, n_head: hp.headCount,
      n_ctx: hp.contextLength, n_positions: hp.contextLength, vocab_size: hp.vocabSize, layer_norm_epsilon: hp.layerNormEps,
      activation_function: 'gelu_new', tie_word_embeddings: tied, ...specialIds(meta),
    };
  },
};

export const gpt2: Architecture<GPT2HParams> = {
  names: ['gpt2'],
  hf: gpt2HF,
  hparams: readHParams,
  cacheRow: (hp) => ({ keys: hp.embeddingLength, values: hp.embeddingLength }),
  bind,
};
