// ModelOps for inference: activations are float buffers computed by a Backend, weights stay in their stored
// format, and attention writes this batch's keys/values into the paged KV cache before reading it back.
// One InferenceOps is made per forward pass; it knows the batch (tokens, positions, sequences).

import type { Backend } from '../kernels/backend.js';
import { f32View } from '../kernels/reference.js';
import type { ExpertWeights, ModelOps } from '../models/ops.js';
import { routeToExperts } from '../models/ops.js';
import type { WeightTensor } from '../tensor/tensor.js';
import { typeInfo } from '../tensor/ggml-type.js';
import { dequantizeTensor, fp32ToFp16Array } from '../tensor/index.js';
import type { KVCache, SequenceBlocks } from './kv-cache.js';
import { addLoraDelta, type LoraDelta } from './lora-adapter.js';
import type { AttentionShape, RopeParams } from '../kernels/backend.js';
import { ropeAngles, type RopeAngles } from '../kernels/rope.js';

/** A row-major activation matrix [rows, cols]. */
export interface Act {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** What one forward pass computes: one row per token, each belonging to a sequence in the cache. */
export interface ForwardBatch {
  /** [n] token ids */
  tokens: Int32Array;
  /** [n] position of each token within its sequence */
  positions: Int32Array;
  /** [n] the cache blocks of each token's sequence (already large enough for the token's position) */
  sequences: SequenceBlocks[];
  /** rows whose logits are wanted, ascending */
  outputRows: number[];
}

/** Optional observers of what happens inside (the inspector uses them). */
export interface ForwardObserver {
  expertChoice?(layer: number, row: number, experts: number[], weights: number[]): void;
  /**
   * Softmax attention weights of batch row `row` in `layer`: weights [nHeads, stride], head h's weight on
   * position j of the row's sequence at h·stride + j, for j = 0..positions[row]. Asking for them costs a
   * buffer and a copy per layer; a backend that cannot report them leaves NaN.
   */
  attentionWeights?(layer: number, row: number, weights: Float32Array, stride: number): void;
}

const f32Cache = new WeakMap<WeightTensor, Float32Array>();

/** A small (norm, bias) weight as floats, converted once per tensor. */
function floats(w: WeightTensor): Float32Array {
  let v = f32Cache.get(w);
  if (!v) {
    v = w.type === 0 ? f32View(w) : dequantizeTensor(w);
    f32Cache.set(w, v);
  }
  return v;
}

/** Expert e of a stacked [nIn, nOut, nExpert] tensor as a 2-D weight. */
function expertSlice(w: WeightTensor, e: number): WeightTensor {
  const [nIn, nOut] = w.dims;
  const { blockSize, typeSize } = typeInfo(w.type);
  const bytes = (nIn / blockSize) * typeSize * nOut;
  return { name: `${w.name}[${e}]`, type: w.type, dims: [nIn, nOut], data: w.data.subarray(e * bytes, (e + 1) * bytes) };
}

export class InferenceOps implements ModelOps<Act, WeightTensor> {
  private readonly n: number;
  private slotCache: Int32Array[] = [];
  private readonly sequenceSlots = new Map<SequenceBlocks, Int32Array>();
  /** rotation angles at the batch's positions, per rope setting (the same for every layer) */
  private readonly angles = new Map<RopeParams, RopeAngles>();

  constructor(
    private readonly backend: Backend,
    private readonly cache: KVCache,
    private readonly batch: ForwardBatch,
    private readonly observer?: ForwardObserver,
    /** LoRA deltas by adapted weight name */
    private readonly lora?: ReadonlyMap<string, LoraDelta[]>,
  ) {
    this.n = batch.tokens.length;
  }

  private act(rows: number, cols: number): Act {
    return { data: new Float32Array(rows * cols), rows, cols };
  }

  embed(table: WeightTensor): Act {
    const out = this.act(this.n, table.dims[0]);
    this.backend.embedding(out.data, table, this.batch.tokens);
    return out;
  }

  linear(x: Act, w: WeightTensor, bias?: WeightTensor): Act {
    const [nIn, nOut] = w.dims;
    if (x.cols !== nIn) throw new Error(`linear: input has ${x.cols} columns, ${w.name} expects ${nIn}`);
    const out = this.act(x.rows, nOut);
    this.backend.matmul(out.data, x.data, w, x.rows);
    for (const delta of this.lora?.get(w.name) ?? []) addLoraDelta(out.data, x.data, x.rows, delta);
    if (bias) this.backend.addBias(out.data, floats(bias), x.rows, nOut);
    return out;
  }

  rmsnorm(x: Act, weight: WeightTensor, eps: number): Act {
    const out = this.act(x.rows, x.cols);
    this.backend.rmsnorm(out.data, x.data, floats(weight), x.rows, x.cols, eps);
    return out;
  }

  rope(x: Act, nHeads: number, headDim: number, params: RopeParams): Act {
    let angles = this.angles.get(params);
    if (!angles) this.angles.set(params, (angles = ropeAngles(this.batch.positions, params)));
    this.backend.rope(x.data, x.rows, nHeads, headDim, angles, params);
    return x;
  }

  /**
   * slots of the positions row t may attend to: its sequence's positions 0..pos[t], a view of one array per sequence
   * (holding its slots up to the batch's last position in it), so that a backend can tell rows of a sequence apart
   */
  private slotsFor = (row: number): Int32Array => {
    let slots = this.slotCache[row];
    if (!slots) {
      const seq = this.batch.sequences[row];
      let all = this.sequenceSlots.get(seq);
      if (!all) {
        const last = this.batch.positions.reduce((m, p, t) => (this.batch.sequences[t] === seq ? Math.max(m, p) : m), 0);
        this.sequenceSlots.set(seq, (all = seq.slots(last + 1)));
      }
      slots = this.slotCache[row] = all.subarray(0, this.batch.positions[row] + 1);
    }
    return slots;
  };

  attention(layer: number, q: Act, k: Act, v: Act, shape: AttentionShape): Act {
    const keys = this.cache.keys[layer], values = this.cache.values[layer];
    // store this batch's keys and values (f16) at their positions' slots
    for (let t = 0; t < this.n; t++) {
      const slot = this.batch.sequences[t].slot(this.batch.positions[t]);
      fp32ToFp16Array(k.data.subarray(t * k.cols, (t + 1) * k.cols), keys.subarray(slot * k.cols, (slot + 1) * k.cols));
      fp32ToFp16Array(v.data.subarray(t * v.cols, (t + 1) * v.cols), values.subarray(slot * v.cols, (slot + 1) * v.cols));
    }
    const out = this.act(this.n, shape.nHeads * shape.headDim);
    const view = { keys, values, slotsFor: this.slotsFor };
    if (!this.observer?.attentionWeights) {
      this.backend.attention(out.data, q.data, this.n, view, shape);
      return out;
    }
    // [n, nHeads, stride]: stride = the longest row's visible positions
    const stride = Math.max(...this.batch.positions) + 1;
    const weights = { data: new Float32Array(this.n * shape.nHeads * stride).fill(NaN), stride };
    this.backend.attention(out.data, q.data, this.n, view, shape, weights);
    const perRow = shape.nHeads * stride;
    for (let t = 0; t < this.n; t++) this.observer.attentionWeights(layer, t, weights.data.subarray(t * perRow, (t + 1) * perRow), stride);
    return out;
  }

  swiglu(gate: Act, up: Act): Act {
    const out = this.act(gate.rows, gate.cols);
    this.backend.swiglu(out.data, gate.data, up.data, gate.data.length);
    return out;
  }

  add(a: Act, b: Act): Act {
    this.backend.addInPlace(a.data, b.data, a.data.length);
    return a;
  }

  mixtureOfExperts(layer: number, x: Act, experts: ExpertWeights<WeightTensor>): Act {
    const router = this.linear(x, experts.router); // [n, nExpert]
    const dim = x.cols;
    const out = this.act(x.rows, dim);
    for (let t = 0; t < x.rows; t++) {
      const row: Act = { data: x.data.subarray(t * dim, (t + 1) * dim), rows: 1, cols: dim };
      const logits = router.data.subarray(t * router.cols, (t + 1) * router.cols);
      const choice = routeToExperts(logits, experts.nUsed, experts.normalizeWeights);
      this.observer?.expertChoice?.(layer, t, choice.experts, choice.weights);
      choice.experts.forEach((e, i) => {
        const hidden = this.swiglu(this.linear(row, expertSlice(experts.gate, e)), this.linear(row, expertSlice(experts.up, e)));
        const y = this.linear(hidden, expertSlice(experts.down, e));
        const w = Math.fround(choice.weights[i]);
        for (let d = 0; d < dim; d++) out.data[t * dim + d] += y.data[d] * w;
      });
    }
    return out;
  }

  outputRows(x: Act): Act {
    const rows = this.batch.outputRows;
    if (rows.length === x.rows) return x;
    const out = this.act(rows.length, x.cols);
    rows.forEach((r, i) => out.data.set(x.data.subarray(r * x.cols, (r + 1) * x.cols), i * x.cols));
    return out;
  }
}
