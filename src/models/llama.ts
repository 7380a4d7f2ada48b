// The Llama family: llama (incl. Mixtral-style mixture of experts) and qwen2, which differ only in
// rope style and q/k/v biases. One pre-norm decoder block, repeated:
//   h = x + Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
//   out = h + W2 · (silu(W1·norm(h)) ⊙ W3·norm(h))          (or a mixture of such experts)
// and logits = Wout · norm(x_last). Tensor names are GGUF's (`blk.N.attn_q.weight`, …).

import type { ExpertWeights, ModelOps } from './ops.js';
import type { HParams } from './hparams.js';
import type { RopeParams } from '../kernels/backend.js';
import type { Architecture, BoundModel, TensorSource } from './architecture.js';

export interface LlamaLayer<W> {
  attnNorm: W;          // [dim]
  wq: W;                // [dim, nHead·headDim]
  wk: W;                // [dim, nKvHead·headDim]
  wv: W;                // [dim, nKvHead·headDim]
  bq?: W;               // [nHead·headDim] (qwen2)
  bk?: W;               // [nKvHead·headDim]
  bv?: W;               // [nKvHead·headDim]
  wo: W;                // [nHead·headDim, dim]
  ffnNorm: W;           // [dim]
  /** dense SwiGLU: gate/up [dim, nFF], down [nFF, dim] */
  ffn?: { gate: W; up: W; down: W };
  /** sparse SwiGLU experts (llama with expert_count > 0) */
  experts?: ExpertWeights<W>;
}

export interface LlamaWeights<W> {
  tokenEmbd: W;         // [dim, nVocab]
  layers: LlamaLayer<W>[];
  outputNorm: W;        // [dim]
  output: W;            // [dim, nVocab] (token_embd itself when tied)
}

export interface LlamaConfig {
  hparams: HParams;
  /** NEOX-style rope (qwen2) instead of the original interleaved pairs (llama) */
  ropeNeox: boolean;
  /** llama3's per-pair rope frequency divisors (`rope_freqs.weight`), [ropeDims/2] */
  ropeFreqFactors?: Float32Array;
}

/** Names the tensors of a llama-family GGUF and fetches them with `get` (undefined when absent). */
export function llamaWeights<W>(hp: HParams, get: (name: string) => W | undefined): LlamaWeights<W> {
  const need = (name: string): W => {
    const w = get(name);
    if (w === undefined) throw new Error(`model is missing tensor "${name}"`);
    return w;
  };
  const layers: LlamaLayer<W>[] = [];
  for (let i = 0; i < hp.blockCount; i++) {
    const p = `blk.${i}.`;
    const layer: LlamaLayer<W> = {
      attnNorm: need(p + 'attn_norm.weight'),
      wq: need(p + 'attn_q.weight'),
      wk: need(p + 'attn_k.weight'),
      wv: need(p + 'attn_v.weight'),
      bq: get(p + 'attn_q.bias'),
      bk: get(p + 'attn_k.bias'),
      bv: get(p + 'attn_v.bias'),
      wo: need(p + 'attn_output.weight'),
      ffnNorm: need(p + 'ffn_norm.weight'),
    };
    if (hp.expertCount > 0) {
      layer.experts = {
        router: need(p + 'ffn_gate_inp.weight'),
        gate: need(p + 'ffn_gate_exps.weight'),
        up: need(p + 'ffn_up_exps.weight'),
        down: need(p + 'ffn_down_exps.weight'),
        nUsed: hp.expertUsedCount,
        normalizeWeights: true,
      };
    } else {
      layer.ffn = { gate: need(p + 'ffn_gate.weight'), up: need(p + 'ffn_up.weight'), down: need(p + 'ffn_down.weight') };
    }
    layers.push(layer);
  }
  const tokenEmbd = need('token_embd.weight');
  return {
    tokenEmbd,
    layers,
    outputNorm: need('output_norm.weight'),
    output: get('output.weight') ?? tokenEmbd,
  };
}

/** The forward pass: logits [nOutputRows, nVocab] for the batch the ops were made for. */
export function llamaForward<T, W>(ops: ModelOps<T, W>, cfg: LlamaConfig, weights: LlamaWeights<W>): T {
  const hp = cfg.hparams;
  const headDim = hp.keyLength;
  const rope: RopeParams = {
    nDims: hp.ropeDimensionCount,
    freqBase: hp.ropeFreqBase,
    freqScale: hp.ropeFreqScale,
    neox: cfg.ropeNeox,
    freqFactors: cfg.ropeFreqFactors,
  };
  const shape = { nHeads: hp.headCount, nKvHeads: hp.headCountKv, headDim, scale: 1 / Math.sqrt(headDim) };

  let x = ops.embed(weights.tokenEmbd); // [n, dim]
  for (let l = 0; l < weights.layers.length; l++) {
    const layer = weights.layers[l];
    // self-attention
    const h = ops.rmsnorm(x, layer.attnNorm, hp.rmsEps);
    const q = ops.rope(ops.linear(h, layer.wq, layer.bq), hp.headCount, headDim, rope);   // [n, nHead·headDim]
    const k = ops.rope(ops.linear(h, layer.wk, layer.bk), hp.headCountKv, headDim, rope); // [n, nKvHead·headDim]
    const v = ops.linear(h, layer.wv, layer.bv);                                          // [n, nKvHead·headDim]
    const attn = ops.attention(l, q, k, v, shape);                                        // [n, nHead·headDim]
    x = ops.add(x, ops.linear(attn, layer.wo));
    // feed-forward
    const f = ops.rmsnorm(x, layer.ffnNorm, hp.rmsEps);
    const ffnOut = layer.experts
      ? ops.mixtureOfExperts(l, f, layer.experts)
      : ops.linear(ops.swiglu(ops.linear(f, layer.ffn!.gate), ops.linear(f, layer.ffn!.up)), layer.ffn!.down);
    x = ops.add(x, ffnOut);
  }
  x = ops.outputRows(x);
  return ops.linear(ops.rmsnorm(x, weights.outputNorm, hp.rmsEps), weights.output); // [nOut, nVocab]
}

/** A llama-family architecture: `ropeNeox` selects the rope style (q/k/v biases are used when present). */
export function llamaFamily(names: string[], ropeNeox: boolean): Architecture {
  return {
    names,
    bind<W>(hp: HParams, tensors: TensorSource<W>): BoundModel<W> {
      const cfg: LlamaConfig = { hparams: hp, ropeNeox, ropeFreqFactors: tensors.floats('rope_freqs.weight') };
      const weights = llamaWeights(hp, (name) => tensors.get(name));
      return { forward: (ops) => llamaForward(ops, cfg, weights) };
    },
  };
}

export const llama = llamaFamily(['llama'], false);
