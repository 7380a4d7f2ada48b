// ModelOps for inference: activations are float buffers computed by a Backend, weights stay in their stored
// format, and attention writes this batch's keys/values into the paged KV cache before reading it back.
// One InferenceOps is made per forward pass; it knows the batch (tokens, positions, sequences).

import type { Backend } from '../kernels/backend.js';
import { f32View } from '../kernels/reference.js';
import type { AttentionMask, ExpertWeights, LatentAttentionShape, ModelOps } from '../models/ops.js';
import { routeToExperts } from '../models/ops.js';
import { rowSlice, type WeightTensor } from '../tensor/tensor.js';
import { dequantizeTensor, fp32ToFp16Array } from '../tensor/index.js';
import type { KVCache, SequenceBlocks } from './kv-cache.js';
import { addLoraDelta, type LoraDelta } from './lora-adapter.js';
import type { AttentionCacheView, AttentionShape, RopeParams } from '../kernels/backend.js';
import { GGMLType } from '../tensor/ggml-type.js';
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

/**
 * MLA's weights per head, made once per kv_b tensor as stacked weights (heads as experts, for matmulExperts): the
 * key parts transposed (F32 dims [nopeDim, kvRank, nHeads]: they map a head's q onto the latent, "absorbing" the
 * key expansion into the query) and the value parts' rows (kv_b's type, dims [kvRank, valueDim, nHeads]).
 */
const latentHeads = new WeakMap<WeightTensor, { keys: WeightTensor; values: WeightTensor }>();

function latentHeadWeights(kvB: WeightTensor, s: LatentAttentionShape): { keys: WeightTensor; values: WeightTensor } {
  let heads = latentHeads.get(kvB);
  if (heads) return heads;
  const { nHeads, nopeDim, valueDim, kvRank } = s;
  const all = dequantizeTensor(kvB); // [nHeads · (nopeDim + valueDim), kvRank]
  const keys = new Float32Array(nHeads * kvRank * nopeDim); // [nHeads, kvRank, nopeDim]: row r of head h holds Wk_h[i][r] over i
  const rowBytes = kvB.data.length / kvB.dims[1];
  const values = new Uint8Array(nHeads * valueDim * rowBytes); // [nHeads, valueDim] rows of kv_b
  for (let h = 0; h < nHeads; h++) {
    const first = h * (nopeDim + valueDim);
    for (let i = 0; i < nopeDim; i++) {
      for (let r = 0; r < kvRank; r++) keys[(h * kvRank + r) * nopeDim + i] = all[(first + i) * kvRank + r];
    }
    values.set(kvB.data.subarray((first + nopeDim) * rowBytes, (first + nopeDim + valueDim) * rowBytes), h * valueDim * rowBytes);
  }
  heads = {
    keys: { name: `${kvB.name}.kᵀ`, type: GGMLType.F32, dims: [nopeDim, kvRank, nHeads], data: new Uint8Array(keys.buffer) },
    values: { name: `${kvB.name}.v`, type: kvB.type, dims: [kvRank, valueDim, nHeads], data: values },
  };
  latentHeads.set(kvB, heads);
  return heads;
}

/** columns [start, start + width) of every row of x [rows, cols] into out [rows, width] at column `at` of width `outCols` */
function copyColumns(out: Float32Array, outCols: number, at: number, x: Float32Array, cols: number, start: number, width: number, rows: number): void {
  for (let t = 0; t < rows; t++) {
    const from = t * cols + start, to = t * outCols + at;
    // a short run value by value (a subarray costs more than copying it)
    if (width <= 64) for (let j = 0; j < width; j++) out[to + j] = x[from + j];
    else out.set(x.subarray(from, from + width), to);
  }
}

/** rows `rows` of x [x.rows, cols] → [rows.length, cols] */
export function selectRows(x: Act, rows: readonly number[]): Act {
  const data = new Float32Array(rows.length * x.cols);
  rows.forEach((r, i) => data.set(x.data.subarray(r * x.cols, (r + 1) * x.cols), i * x.cols));
  return { data, rows: rows.length, cols: x.cols };
}

/**
 * Floats of one activation slab, and the most one activation takes of it (a decode step's activations are small;
 * larger ones are handed from layer to layer, see endLayer).
 */
const SLAB_FLOATS = 16384;
export const SLAB_ITEM_MAX = 4096;

export class InferenceOps implements ModelOps<Act, WeightTensor> {
  private readonly n: number;
  /** per mask: the visible slots of each row */
  private readonly slotCache = new Map<string, Int32Array[]>();
  private readonly sequenceSlots = new Map<SequenceBlocks, Int32Array>();
  /** rotation angles at the batch's positions, per rope setting (the same for every layer) */
  private readonly angles = new Map<RopeParams, RopeAngles>();
  /** where small activations come from, and how much of it is taken */
  private slab = new Float32Array(0);
  private slabUsed = 0;
  /**
   * Large activations: those made since the last endLayer, the one it kept (the layer's output), and the free ones
   * by length, which the next layer takes before it makes new ones. A typed array of megabytes made afresh costs more
   * than its use: its memory comes new from the system and every page faults as it is zeroed (SmolLM2's 512-token
   * prefill spent 12% of its time writing matrix products into new arrays).
   */
  private layerActs: Float32Array[] = [];
  private keptActs: Float32Array[] = [];
  private readonly freeActs = new Map<number, Float32Array[]>();

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

  /**
   * zeroed activations: small ones are views of a shared slab (a typed array of its own costs a microsecond), large
   * ones free since an earlier layer or new
   */
  private act(rows: number, cols: number): Act {
    const n = rows * cols;
    if (n > SLAB_ITEM_MAX) {
      const data = this.freeActs.get(n)?.pop()?.fill(0) ?? new Float32Array(n);
      this.layerActs.push(data);
      return { data, rows, cols };
    }
    if (this.slabUsed + n > this.slab.length) {
      this.slab = new Float32Array(SLAB_FLOATS);
      this.slabUsed = 0;
    }
    return { data: this.slab.subarray(this.slabUsed, (this.slabUsed += n)), rows, cols };
  }

  embed(table: WeightTensor, rows: 'tokens' | 'positions' | number = 'tokens'): Act {
    const out = this.act(this.n, table.dims[0]);
    const ids = rows === 'tokens' ? this.batch.tokens : rows === 'positions' ? this.batch.positions : new Int32Array(this.n).fill(rows);
    this.backend.embedding(out.data, table, ids);
    return out;
  }

  linear(x: Act, w: WeightTensor, bias?: WeightTensor): Act {
    const [nIn, nOut] = w.dims;
    if (x.cols !== nIn) throw new Error(`linear: input has ${x.cols} columns, ${w.name} expects ${nIn}`);
    const out = this.act(x.rows, nOut);
    const deltas = this.lora?.get(w.name);
    if (!deltas) {
      this.backend.matmul(out.data, x.data, w, x.rows, bias && floats(bias));
      return out;
    }
    // the adapter's delta before the bias
    this.backend.matmul(out.data, x.data, w, x.rows);
    for (const delta of deltas) addLoraDelta(out.data, x.data, x.rows, delta);
    if (bias) this.backend.addBias(out.data, floats(bias), x.rows, nOut);
    return out;
  }

  linears(x: Act, ws: readonly WeightTensor[], biases?: readonly (WeightTensor | undefined)[]): Act[] {
    // weights of one type and shape (and no adapter), all with biases or none, in one pass; else one by one
    const [first] = ws, biased = biases?.[0] !== undefined;
    const shared = this.backend.matmulMany && ws.every((w, i) => (biases?.[i] !== undefined) === biased && w.type === first.type &&
      w.dims.length === 2 && w.dims[0] === first.dims[0] && w.dims[1] === first.dims[1] && !this.lora?.has(w.name));
    if (!shared) return ws.map((w, i) => this.linear(x, w, biases?.[i]));
    if (x.cols !== first.dims[0]) throw new Error(`linear: input has ${x.cols} columns, ${first.name} expects ${first.dims[0]}`);
    const outs = ws.map((w) => this.act(x.rows, w.dims[1]));
    const floatBiases = biased ? biases!.map((b) => floats(b!)) : undefined;
    this.backend.matmulMany!(outs.map((o) => o.data), x.data, ws as WeightTensor[], x.rows, floatBiases);
    return outs;
  }

  linearSplit(x: Act, w: WeightTensor, widths: readonly number[], bias?: WeightTensor): Act[] {
    // parts of one width (and no adapter) in one pass, each straight into its own output; else split the product
    if (!this.backend.matmulMany || widths.some((width) => width !== widths[0]) || this.lora?.has(w.name)) {
      const y = this.linear(x, w, bias);
      let start = 0;
      return widths.map((width) => this.columns(y, (start += width) - width, width));
    }
    if (x.cols !== w.dims[0]) throw new Error(`linear: input has ${x.cols} columns, ${w.name} expects ${w.dims[0]}`);
    const outs = widths.map((width) => this.act(x.rows, width));
    const parts = widths.map((width, i) => rowSlice(w, i * width, width, `${w.name}[${i}]`));
    const biases = bias && widths.map((width, i) => floats(bias).subarray(i * width, (i + 1) * width));
    this.backend.matmulMany(outs.map((o) => o.data), x.data, parts, x.rows, biases);
    return outs;
  }

  columns(x: Act, start: number, width: number): Act {
    const out = this.act(x.rows, width);
    copyColumns(out.data, width, 0, x.data, x.cols, start, width, x.rows);
    return out;
  }

  rmsnorm(x: Act, weight: WeightTensor, eps: number): Act {
    const out = this.act(x.rows, x.cols);
    this.backend.rmsnorm(out.data, x.data, floats(weight), x.rows, x.cols, eps);
    return out;
  }

  layernorm(x: Act, weight: WeightTensor, bias: WeightTensor, eps: number): Act {
    const out = this.act(x.rows, x.cols);
    this.backend.layernorm(out.data, x.data, floats(weight), floats(bias), x.rows, x.cols, eps);
    return out;
  }

  rope(x: Act, nHeads: number, headDim: number, params: RopeParams): Act {
    let angles = this.angles.get(params);
    if (!angles) this.angles.set(params, (angles = ropeAngles(this.batch.positions, params)));
    this.backend.rope(x.data, x.rows, nHeads, headDim, angles, params);
    return x;
  }

  /** the slots of every position of row t's sequence in the cache up to the batch's last one in it (one array per sequence) */
  private sequenceSlotsOf(row: number): Int32Array {
    const seq = this.batch.sequences[row];
    let all = this.sequenceSlots.get(seq);
    if (!all) {
      const last = this.batch.positions.reduce((m, p, t) => (this.batch.sequences[t] === seq ? Math.max(m, p) : m), 0);
      this.sequenceSlots.set(seq, (all = seq.slots(last + 1)));
    }
    return all;
  }

  /**
   * slots of the positions row t may attend to under `mask`, in order: views of one array per sequence, so that a
   * backend can tell rows of a sequence apart. Causal: 0..pos; a window of w: pos−w+1..pos; bidirectional: the
   * whole sequence.
   */
  private slotsFor(mask: AttentionMask): (row: number) => Int32Array {
    const key = mask.kind === 'window' ? `window ${mask.window}` : mask.kind;
    let rows = this.slotCache.get(key);
    if (!rows) this.slotCache.set(key, (rows = []));
    return (row) => {
      let slots = rows[row];
      if (!slots) {
        const all = this.sequenceSlotsOf(row), pos = this.batch.positions[row];
        const [start, end] = mask.kind === 'bidirectional' ? [0, all.length]
          : [mask.kind === 'window' ? Math.max(0, pos - mask.window + 1) : 0, pos + 1];
        slots = rows[row] = all.subarray(start, end);
      }
      return slots;
    };
  }

  /** stores f16 rows of `from` [n, from.cols] at this batch's slots in `to` (rows of `stride`, starting at column `at`) */
  private store(to: Uint16Array, stride: number, at: number, from: Act): void {
    for (let t = 0; t < this.n; t++) {
      const slot = this.batch.sequences[t].slot(this.batch.positions[t]);
      fp32ToFp16Array(from.data.subarray(t * from.cols, (t + 1) * from.cols), to.subarray(slot * stride + at, slot * stride + at + from.cols));
    }
  }

  attention(layer: number, q: Act, k: Act, v: Act, shape: AttentionShape, mask: AttentionMask = { kind: 'causal' }): Act {
    const keys = this.cache.keys[layer], values = this.cache.values[layer];
    this.store(keys, k.cols, 0, k);
    this.store(values, v.cols, 0, v);
    return this.attend(layer, q, { keys, values, keyStride: k.cols, valueStride: v.cols, slotsFor: this.slotsFor(mask) }, shape);
  }

  latentAttention(layer: number, q: Act, latent: Act, kRope: Act, kvB: WeightTensor, s: LatentAttentionShape): Act {
    const { nHeads, nopeDim, ropeDim, kvRank, valueDim } = s;
    const keyDim = kvRank + ropeDim, qDim = nopeDim + ropeDim;
    // the cache row of a position: [latent | roped key], shared by every head; the values are the latent part
    const keys = this.cache.keys[layer];
    this.store(keys, keyDim, 0, latent);
    this.store(keys, keyDim, kvRank, kRope);
    const heads = latentHeadWeights(kvB, s);
    // row (t, h) of the per-head products is head h of token t: heads are the products' "experts"
    const rows = this.n * nHeads;
    const head = new Int32Array(rows);
    for (let i = 0; i < rows; i++) head[i] = i % nHeads;
    // each head's query against the latent: [Wkᵀ·q_nope | q_rope] → qLatent [n, nHeads × keyDim]
    const qNope = this.act(rows, nopeDim).data; // [n·nHeads, nopeDim]
    copyColumns(qNope, nopeDim, 0, q.data, qDim, 0, nopeDim, rows);
    const absorbed = this.act(rows, kvRank).data; // [n·nHeads, kvRank]
    this.backend.matmulExperts([absorbed], qNope, rows, [heads.keys], head);
    const qLatent = this.act(this.n, nHeads * keyDim);
    copyColumns(qLatent.data, keyDim, 0, absorbed, kvRank, 0, kvRank, rows);
    copyColumns(qLatent.data, keyDim, kvRank, q.data, qDim, nopeDim, ropeDim, rows);
    const view = { keys, values: keys, keyStride: keyDim, valueStride: keyDim, slotsFor: this.slotsFor({ kind: 'causal' }) };
    const latentOut = this.attend(layer, qLatent, view, { nHeads, nKvHeads: 1, headDim: keyDim, valueDim: kvRank, scale: s.scale }); // [n, nHeads × kvRank]
    // each head's value: Wv · (attention-weighted latent) → [n, nHeads × valueDim]
    const out = this.act(this.n, nHeads * valueDim);
    this.backend.matmulExperts([out.data], latentOut.data, rows, [heads.values], head);
    return out;
  }

  /** attention over the cache `view`; reports the weights to an observer that asks for them */
  private attend(layer: number, q: Act, view: AttentionCacheView, shape: AttentionShape): Act {
    const valueDim = shape.valueDim ?? shape.headDim;
    const out = this.act(this.n, shape.nHeads * valueDim);
    if (!this.observer?.attentionWeights) {
      this.backend.attention(out.data, q.data, this.n, view, shape);
      return out;
    }
    // [n, nHeads, stride]: stride = the longest row's visible positions; the observer gets weights by position
    const stride = Math.max(...this.batch.positions) + 1;
    const rows = Array.from({ length: this.n }, (_, t) => view.slotsFor(t));
    const longest = Math.max(...rows.map((r) => r.length));
    const weights = { data: new Float32Array(this.n * shape.nHeads * longest).fill(NaN), stride: longest };
    this.backend.attention(out.data, q.data, this.n, view, shape, weights);
    for (let t = 0; t < this.n; t++) {
      // the row's first visible position (a window starts later than 0): where its slots begin in its sequence's
      const first = (rows[t].byteOffset - this.sequenceSlotsOf(t).byteOffset) / 4;
      const byPosition = new Float32Array(shape.nHeads * stride);
      for (let h = 0; h < shape.nHeads; h++) {
        const from = (t * shape.nHeads + h) * longest;
        byPosition.set(weights.data.subarray(from, from + rows[t].length), h * stride + first);
      }
      this.observer.attentionWeights(layer, t, byPosition, stride);
    }
    return out;
  }

  swiglu(gate: Act, up: Act): Act {
    const out = this.act(gate.rows, gate.cols);
    this.backend.swiglu(out.data, gate.data, up.data, gate.data.length);
    return out;
  }

  geglu(gate: Act, up: Act): Act {
    const out = this.act(gate.rows, gate.cols);
    this.backend.gelu(out.data, gate.data, gate.data.length, up.data);
    return out;
  }

  gelu(x: Act): Act {
    const out = this.act(x.rows, x.cols);
    this.backend.gelu(out.data, x.data, x.data.length);
    return out;
  }

  softcap(x: Act, cap: number): Act {
    this.backend.softcap(x.data, x.data.length, cap);
    return x;
  }

  scale(x: Act, s: number): Act {
    this.backend.scale(x.data, x.data.length, s);
    return x;
  }

  add(a: Act, b: Act): Act {
    this.backend.addInPlace(a.data, b.data, a.data.length);
    return a;
  }

  mixtureOfExperts(layer: number, x: Act, experts: ExpertWeights<WeightTensor>): Act {
    const router = this.linear(x, experts.router); // [n, nExpert]
    const { nUsed } = experts;
    const dim = x.cols, nFF = experts.gate.dims[1], slots = x.rows * nUsed;
    // slot (t, i): token t's i-th chosen expert, and its weight
    const chosen = new Int32Array(slots), weights = new Float32Array(slots);
    for (let t = 0; t < x.rows; t++) {
      const choice = routeToExperts(router.data.subarray(t * router.cols, (t + 1) * router.cols), nUsed, experts.normalizeWeights, experts.weightScale);
      this.observer?.expertChoice?.(layer, t, choice.experts, choice.weights);
      chosen.set(choice.experts, t * nUsed);
      weights.set(choice.weights, t * nUsed);
    }
    // every slot's gate and up from its token's row, then down: [slots, nFF] → [slots, dim]
    const gate = this.act(slots, nFF), up = this.act(slots, nFF);
    this.backend.matmulExperts([gate.data, up.data], x.data, x.rows, [experts.gate, experts.up], chosen);
    const hidden = this.swiglu(gate, up);
    const y = this.act(slots, dim).data;
    this.backend.matmulExperts([y], hidden.data, slots, [experts.down], chosen);
    // out[t] = Σ_i weight(t, i) · y(t, i), in the order of the chosen experts
    const out = this.act(x.rows, dim);
    const o = out.data;
    for (let t = 0; t < x.rows; t++) {
      for (let i = 0; i < nUsed; i++) {
        const w = weights[t * nUsed + i];
        for (let d = t * dim, from = (t * nUsed + i) * dim; d < (t + 1) * dim; d++, from++) o[d] += y[from] * w;
      }
    }
    return out;
  }

  outputRows(x: Act): Act {
    return this.batch.outputRows.length === x.rows ? x : selectRows(x, this.batch.outputRows);
  }

  endLayer(x: Act): Act {
    // the large activations of this layer and the previous layer's output are free, but those holding x; what is
    // made after the last layer (the pass's outputs) is never freed
    const kept: Float32Array[] = [];
    for (const data of [...this.keptActs, ...this.layerActs]) {
      if (data.buffer === x.data.buffer) {
        kept.push(data);
        continue;
      }
      let free = this.freeActs.get(data.length);
      if (!free) this.freeActs.set(data.length, (free = []));
      free.push(data);
    }
    this.keptActs = kept;
    this.layerActs = [];
    return x;
  }
}
