// Reverse-mode automatic differentiation over row-major f32 matrices.
// A Var is a value [rows, cols] plus, once backward reaches it, its gradient (same shape). Each operation below
// computes its value eagerly and returns a Var that remembers its inputs and a closure adding its gradient into
// theirs; `backward` runs those closures from the output back in reverse topological order.
// A Param is a Var that is a trainable tensor: its gradient buffer lives as long as it does and accumulates over
// backward passes until the optimizer clears it. Params keep GGUF's dims (a linear weight [nIn, nOut] is nOut rows
// of nIn). The arithmetic is the training backend's (./backend.ts: forward and backward kernels of each op side by
// side, src/kernels). All buffers come from `allocFloats` (that backend's memory): activations live until the caller
// releases them, so Params must be made before the mark a training step releases to.

import type { AttentionShape, RopeParams } from '../kernels/backend.js';
import type { RopeAngles } from '../kernels/rope.js';
import { allocFloats, trainingBackend } from './backend.js';
import { expSum, geluDerivative, geluF32, layerNormStats } from '../kernels/formulas.js';

export class Var {
  grad: Float32Array | null = null;

  constructor(
    readonly value: Float32Array,
    readonly rows: number,
    readonly cols: number,
    readonly parents: readonly Var[] = [],
    /** adds this node's gradient `g` into its parents' gradients */
    readonly backwardFn?: (g: Float32Array) => void,
  ) {}

  /** this node's gradient buffer, zeroed on first use */
  gradient(): Float32Array {
    return (this.grad ??= allocFloats(this.value.length));
  }
}

export class Param extends Var {
  override grad: Float32Array;

  /**
   * `dims`: ggml order, fastest-varying first; the value holds prod(dims[1..]) rows of dims[0]. `init`: initial
   * values (copied), or existing value and gradient buffers to share; zeros when absent.
   */
  constructor(readonly name: string, readonly dims: readonly number[], init?: Float32Array | { value: Float32Array; grad: Float32Array }) {
    const cols = dims[0], rows = dims.slice(1).reduce((a, b) => a * b, 1);
    const shared = init && !(init instanceof Float32Array) ? init : undefined;
    const value = shared ? shared.value : allocFloats(rows * cols);
    if (init instanceof Float32Array) {
      if (init.length !== rows * cols) throw new RangeError(`${name}: ${init.length} values for dims [${dims.join(', ')}]`);
      value.set(init);
    }
    super(value, rows, cols);
    this.grad = shared ? shared.grad : allocFloats(rows * cols);
  }

  override gradient(): Float32Array {
    return this.grad;
  }

  /** rows [first, first + count) as a Param sharing this one's value and gradient (an expert of a stacked tensor) */
  rowSlice(first: number, count: number): Param {
    const [from, to] = [first * this.cols, (first + count) * this.cols];
    return new Param(`${this.name}[${first}:${first + count}]`, [this.cols, count], { value: this.value.subarray(from, to), grad: this.grad.subarray(from, to) });
  }
}

/** A constant (or an input to differentiate with respect to, as gradient checks do). */
export function leaf(value: Float32Array, rows: number, cols: number): Var {
  return new Var(value, rows, cols);
}

/** Backpropagates from `out`, seeded with `seed` (default: ones, i.e. d out / d out for a scalar loss). */
export function backward(out: Var, seed?: Float32Array): void {
  // reverse topological order by an iterative depth-first search
  const order: Var[] = [];
  const seen = new Set<Var>();
  const stack: [Var, number][] = [[out, 0]];
  seen.add(out);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, next] = top;
    if (next < node.parents.length) {
      top[1]++;
      const parent = node.parents[next];
      if (!seen.has(parent)) {
        seen.add(parent);
        stack.push([parent, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  const g = out.gradient();
  if (seed) g.set(seed);
  else g.fill(1);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (node.backwardFn && node.grad) node.backwardFn(node.grad);
  }
}

/** an operation's output Var: its value [rows, cols], inputs, and the closure that backpropagates through it */
function result(rows: number, cols: number, parents: Var[], backwardFn: (g: Float32Array) => void, value: Float32Array): Var {
  return new Var(value, rows, cols, parents, backwardFn);
}

// ---- the operations a transformer's forward pass uses ----

/** rows `tokens[t]` of `table` (vocabulary rows of dim) → [n, dim] */
export function embedding(table: Var, tokens: Int32Array): Var {
  const dim = table.cols, n = tokens.length;
  for (const id of tokens) {
    if (id < 0 || id >= table.rows) throw new RangeError(`token id ${id} is outside the vocabulary (0..${table.rows - 1})`);
  }
  const out = allocFloats(n * dim, false);
  for (let t = 0; t < n; t++) out.set(table.value.subarray(tokens[t] * dim, (tokens[t] + 1) * dim), t * dim);
  return result(n, dim, [table], (g) => {
    const dt = table.gradient();
    for (let t = 0; t < n; t++) {
      const row = tokens[t] * dim;
      for (let i = 0; i < dim; i++) dt[row + i] += g[t * dim + i];
    }
  }, out);
}

/** The values of x·Wᵀ: x [n, nIn], w nOut rows of nIn → [n, nOut] (no graph node). */
export function linearValues(x: Var, w: Var): Float32Array {
  const n = x.rows, nIn = x.cols, nOut = w.rows;
  if (w.cols !== nIn) throw new RangeError(`linear: input has ${nIn} columns, weight expects ${w.cols}`);
  const out = allocFloats(n * nOut, false);
  trainingBackend().gemm(out, x.value, w.value, n, nOut, nIn, false, true, false);
  return out;
}

/** x·Wᵀ (+ bias): x [n, nIn], w nOut rows of nIn → [n, nOut] */
export function linear(x: Var, w: Var, bias?: Var): Var {
  const n = x.rows, nIn = x.cols, nOut = w.rows;
  const out = linearValues(x, w);
  if (bias) addRowVector(out, bias.value, n, nOut);
  const parents = bias ? [x, w, bias] : [x, w];
  return result(n, nOut, parents, (g) => {
    // dx += g·W (g [n, nOut], W [nOut, nIn]); dW += gᵀ·x; dbias += Σ_rows g
    linearInputGradient(x, w, g);
    trainingBackend().gemm(w.gradient(), g, x.value, nOut, nIn, n, true, false, true);
    if (bias) sumRows(bias.gradient(), g, n, nOut);
  }, out);
}

/** dx += g·W for x·Wᵀ: g [n, nOut], W nOut rows of nIn */
export function linearInputGradient(x: Var, w: Var, g: Float32Array): void {
  trainingBackend().gemm(x.gradient(), g, w.value, x.rows, x.cols, w.rows, false, false, true);
}

function addRowVector(x: Float32Array, v: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) x[r * cols + c] += v[c];
}

/** into[c] += Σ_r x[r, c] */
function sumRows(into: Float32Array, x: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) into[c] += x[r * cols + c];
}

/** y = x · r ⊙ weight with r = 1/sqrt(mean(x²) + eps) per row */
export function rmsnorm(x: Var, weight: Var, eps: number): Var {
  const n = x.rows, d = x.cols, kernels = trainingBackend();
  const out = allocFloats(n * d, false);
  kernels.rmsnorm(out, x.value, weight.value, n, d, eps);
  return result(n, d, [x, weight], (g) => kernels.rmsnormBackward(x.gradient(), weight.gradient(), g, x.value, weight.value, n, d, eps), out);
}

/** rotary embedding of each head of x [n, nHeads·headDim], rows rotated by `angles` (see ropeAngles) */
export function rope(x: Var, nHeads: number, headDim: number, angles: RopeAngles, p: RopeParams): Var {
  const n = x.rows, kernels = trainingBackend();
  const out = allocFloats(x.value.length, false);
  out.set(x.value);
  kernels.rope(out, n, nHeads, headDim, angles, p);
  return result(n, x.cols, [x], (g) => kernels.ropeBackward(x.gradient(), g, n, nHeads, headDim, angles, p), out);
}

/**
 * Causal grouped-query attention within each of `nSeq` sequences of `seqLen` consecutive rows:
 * out[s, h] = Σ_{j ≤ s} softmax_j(scale · q[s, h]·k[j, h']) · v[j, h'], h' = h / (nHeads / nKvHeads).
 * q [n, nHeads·headDim], k and v [n, nKvHeads·headDim].
 */
export function attention(q: Var, k: Var, v: Var, shape: AttentionShape, nSeq: number, seqLen: number): Var {
  const n = q.rows, kernels = trainingBackend();
  if (n !== nSeq * seqLen) throw new RangeError(`attention: ${n} rows are not ${nSeq} sequences of ${seqLen}`);
  const out = allocFloats(n * shape.nHeads * shape.headDim, false);
  // the softmax weights [nSeq, nHeads, seqLen, seqLen], kept for the backward pass
  const probs = allocFloats(nSeq * shape.nHeads * seqLen * seqLen, false);
  kernels.attentionForward(out, probs, q.value, k.value, v.value, nSeq, seqLen, shape);
  return result(n, q.cols, [q, k, v], (g) =>
    kernels.attentionBackward(q.gradient(), k.gradient(), v.gradient(), g, probs, q.value, k.value, v.value, nSeq, seqLen, shape), out);
}

/** silu(gate) ⊙ up, silu(x) = x·σ(x) */
export function swiglu(gate: Var, up: Var): Var {
  const n = gate.value.length, kernels = trainingBackend();
  const out = allocFloats(n, false);
  kernels.swiglu(out, gate.value, up.value, n);
  return result(gate.rows, gate.cols, [gate, up], (g) => kernels.swigluBackward(gate.gradient(), up.gradient(), g, gate.value, up.value, n), out);
}

/** a + b (residual connections): the sum and both gradients added by the backend's kernel, in its memory */
export function add(a: Var, b: Var): Var {
  const n = a.value.length, kernels = trainingBackend();
  if (b.value.length !== n) throw new RangeError(`add: ${n} values vs ${b.value.length}`);
  const out = allocFloats(n, false);
  out.set(a.value);
  kernels.addInPlace(out, b.value, n);
  return result(a.rows, a.cols, [a, b], (g) => {
    kernels.addInPlace(a.gradient(), g, n);
    kernels.addInPlace(b.gradient(), g, n);
  }, out);
}

/** columns [start, start + width) of x → [rows, width] (a fused projection's parts) */
export function columns(x: Var, start: number, width: number): Var {
  const n = x.rows, c = x.cols;
  if (start < 0 || start + width > c) throw new RangeError(`columns: [${start}, ${start + width}) outside ${c} columns`);
  const out = allocFloats(n * width, false);
  for (let t = 0; t < n; t++) out.set(x.value.subarray(t * c + start, t * c + start + width), t * width);
  return result(n, width, [x], (g) => {
    const dx = x.gradient();
    for (let t = 0; t < n; t++) for (let j = 0; j < width; j++) dx[t * c + start + j] += g[t * width + j];
  }, out);
}

/** y = (x − mean) · r ⊙ weight + bias with r = 1/sqrt(var(x) + eps) per row (formulas.ts's statistics) */
export function layernorm(x: Var, weight: Var, bias: Var, eps: number): Var {
  const n = x.rows, d = x.cols, xv = x.value, w = weight.value;
  const out = allocFloats(n * d, false);
  trainingBackend().layernorm(out, xv, w, bias.value, n, d, eps);
  return result(n, d, [x, weight, bias], (g) => {
    // with u = g ⊙ weight and x̂ = (x − mean)·r: dx = r·(u − mean(u) − x̂·mean(u ⊙ x̂)); dweight += Σ g ⊙ x̂; dbias += Σ g
    const dx = x.gradient(), dw = weight.gradient(), db = bias.gradient();
    const xhat = new Float32Array(d);
    for (let t = 0; t < n; t++) {
      const o = t * d;
      const [mean, r] = layerNormStats(xv, o, d, eps);
      for (let i = 0; i < d; i++) xhat[i] = (xv[o + i] - mean) * r;
      let meanU = 0, meanUX = 0;
      for (let i = 0; i < d; i++) {
        const u = g[o + i] * w[i];
        meanU += u;
        meanUX += u * xhat[i];
        dw[i] += g[o + i] * xhat[i];
        db[i] += g[o + i];
      }
      meanU /= d;
      meanUX /= d;
      for (let i = 0; i < d; i++) dx[o + i] += r * (g[o + i] * w[i] - meanU - xhat[i] * meanUX);
    }
  }, out);
}

/** gelu(x) (the tanh form, formulas.ts), or gelu(gate) ⊙ up (GeGLU) */
export function gelu(x: Var, up?: Var): Var {
  const n = x.value.length, xv = x.value;
  const out = allocFloats(n, false);
  for (let i = 0; i < n; i++) out[i] = up ? geluF32(xv[i]) * up.value[i] : geluF32(xv[i]);
  return result(x.rows, x.cols, up ? [x, up] : [x], (g) => {
    const dx = x.gradient(), du = up?.gradient();
    for (let i = 0; i < n; i++) {
      const u = up ? up.value[i] : 1;
      dx[i] += g[i] * u * geluDerivative(xv[i]);
      if (du) du[i] += g[i] * geluF32(xv[i]);
    }
  }, out);
}

/** c·tanh(x/c) */
export function softcap(x: Var, cap: number): Var {
  const n = x.value.length, xv = x.value;
  const out = allocFloats(n, false);
  out.set(xv);
  trainingBackend().softcap(out, n, cap);
  return result(x.rows, x.cols, [x], (g) => {
    // d/dx c·tanh(x/c) = 1 − tanh²(x/c)
    const dx = x.gradient();
    for (let i = 0; i < n; i++) {
      const t = Math.tanh(xv[i] / cap);
      dx[i] += g[i] * (1 - t * t);
    }
  }, out);
}

/** s·x */
export function scale(x: Var, s: number): Var {
  const n = x.value.length, xv = x.value;
  const out = allocFloats(n, false);
  out.set(xv);
  trainingBackend().scale(out, n, s);
  return result(x.rows, x.cols, [x], (g) => {
    const dx = x.gradient();
    for (let i = 0; i < n; i++) dx[i] += g[i] * s;
  }, out);
}

/** rows `rows` of x → [rows.length, cols] */
export function gatherRows(x: Var, rows: readonly number[]): Var {
  const c = x.cols;
  const out = allocFloats(rows.length * c);
  rows.forEach((r, i) => out.set(x.value.subarray(r * c, (r + 1) * c), i * c));
  return result(rows.length, c, [x], (g) => {
    const dx = x.gradient();
    rows.forEach((r, i) => { for (let j = 0; j < c; j++) dx[r * c + j] += g[i * c + j]; });
  }, out);
}

// ---- mixture-of-experts routing ----

/** Which experts each of n tokens uses: `experts[t][i]`, chosen outside the graph (selection has no gradient). */
export interface ExpertChoice {
  experts: number[][];
}

/**
 * The chosen experts' weights from router logits [n, nExpert]: softmax over all experts, taken at the chosen ones,
 * optionally renormalized over them → [n, nUsed]. Differentiable with respect to the logits.
 */
export function routerWeights(logits: Var, choice: ExpertChoice, normalize: boolean): Var {
  const n = logits.rows, nE = logits.cols, nUsed = choice.experts[0]?.length ?? 0;
  const probs = softmaxRows(logits.value, n, nE, 1);
  const out = allocFloats(n * nUsed);
  const totals = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    let total = 0;
    for (const e of choice.experts[t]) total += probs[t * nE + e];
    totals[t] = normalize ? total : 1;
    choice.experts[t].forEach((e, i) => { out[t * nUsed + i] = probs[t * nE + e] / totals[t]; });
  }
  return result(n, nUsed, [logits], (g) => {
    const dl = logits.gradient();
    for (let t = 0; t < n; t++) {
      // w_i = p_{e_i} / T with T = Σ_chosen p (or 1): dp_{e_i} = g_i/T − Σ_k g_k·p_{e_k}/T² (only when normalizing)
      const dp = new Float64Array(nE);
      let gw = 0;
      choice.experts[t].forEach((e, i) => { gw += g[t * nUsed + i] * out[t * nUsed + i]; });
      choice.experts[t].forEach((e, i) => { dp[e] = g[t * nUsed + i] / totals[t] - (normalize ? gw / totals[t] : 0); });
      // softmax: dl_j = p_j (dp_j − Σ_k p_k dp_k)
      let dot = 0;
      for (let j = 0; j < nE; j++) dot += probs[t * nE + j] * dp[j];
      for (let j = 0; j < nE; j++) dl[t * nE + j] += probs[t * nE + j] * (dp[j] - dot);
    }
  }, out);
}

/**
 * out[t] = Σ_i weights[t, i] · expertOut[e_i][row of t among expert e_i's tokens]: the weighted sum of each token's
 * experts. `tokensOf[e]` lists expert e's tokens ascending; `expertOut[e]` is its output for them.
 */
export function combineExperts(weights: Var, choice: ExpertChoice, tokensOf: number[][], expertOut: (Var | undefined)[], dim: number): Var {
  const n = weights.rows, nUsed = weights.cols;
  const out = allocFloats(n * dim);
  // rowIn[t][i]: row of token t in its i-th expert's output
  const rowIn = choice.experts.map((es, t) => es.map((e) => tokensOf[e].indexOf(t)));
  const present = expertOut.filter((v): v is Var => v !== undefined);
  for (let t = 0; t < n; t++) {
    choice.experts[t].forEach((e, i) => {
      const w = weights.value[t * nUsed + i], y = expertOut[e]!.value, r = rowIn[t][i] * dim;
      for (let d = 0; d < dim; d++) out[t * dim + d] += w * y[r + d];
    });
  }
  return result(n, dim, [weights, ...present], (g) => {
    const dw = weights.gradient();
    for (let t = 0; t < n; t++) {
      choice.experts[t].forEach((e, i) => {
        const y = expertOut[e]!, dy = y.gradient(), r = rowIn[t][i] * dim, w = weights.value[t * nUsed + i];
        let dot = 0;
        for (let d = 0; d < dim; d++) {
          dot += g[t * dim + d] * y.value[r + d];
          dy[r + d] += w * g[t * dim + d];
        }
        dw[t * nUsed + i] += dot;
      });
    }
  }, out);
}

// ---- losses and log-probabilities ----

/** softmax of each row of x / temperature, in float64 (formulas.ts expSum): [rows, cols] */
function softmaxRows(x: Float32Array, rows: number, cols: number, temperature: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * cols, (r + 1) * cols);
    const [, sum] = expSum(x, r * cols, cols, row, temperature);
    for (let c = 0; c < cols; c++) row[c] /= sum;
  }
  return out;
}

function checkTargets(logits: Var, targets: Int32Array): void {
  if (targets.length !== logits.rows) throw new RangeError(`${targets.length} targets for ${logits.rows} rows of logits`);
  for (const t of targets) {
    if (t >= logits.cols) throw new RangeError(`target ${t} is outside the vocabulary (0..${logits.cols - 1})`);
  }
}

/**
 * Mean cross-entropy −log softmax(logits[t])[targets[t]] over the rows whose target is ≥ 0 (a negative target
 * masks its row out, e.g. prompt tokens in fine-tuning) → a scalar [1, 1].
 */
export function crossEntropy(logits: Var, targets: Int32Array): Var {
  checkTargets(logits, targets);
  const n = logits.rows, V = logits.cols, kernels = trainingBackend();
  // the softmax in f64, in the backend's memory (kept for the backward pass)
  const buffer = allocFloats(2 * n * V, false), probs = new Float64Array(buffer.buffer, buffer.byteOffset, n * V);
  kernels.crossEntropyForward(logits.value, targets, n, V, probs);
  let total = 0, count = 0;
  for (let t = 0; t < n; t++) {
    if (targets[t] < 0) continue;
    total -= Math.log(probs[t * V + targets[t]]);
    count++;
  }
  const out = allocFloats(1);
  out[0] = count > 0 ? total / count : 0;
  return result(1, 1, [logits], (g) => {
    // d/dlogits = (softmax − onehot(target)) / count
    if (count > 0) kernels.crossEntropyBackward(logits.gradient(), probs, targets, n, V, g[0] / count);
  }, out);
}

/**
 * Distillation loss T² · mean_rows KL(softmax(teacher/T) ‖ softmax(student/T)) → a scalar [1, 1].
 * The teacher's logits [rows, vocab] are constants.
 */
export function klDivergence(student: Var, teacher: Float32Array, temperature: number): Var {
  const n = student.rows, V = student.cols, T = temperature;
  if (teacher.length !== n * V) throw new RangeError(`teacher logits: ${teacher.length} values for [${n}, ${V}]`);
  const p = softmaxRows(teacher, n, V, T), q = softmaxRows(student.value, n, V, T);
  let kl = 0;
  for (let i = 0; i < n * V; i++) if (p[i] > 0) kl += p[i] * (Math.log(p[i]) - Math.log(q[i]));
  const out = allocFloats(1);
  out[0] = (T * T * kl) / n;
  return result(1, 1, [student], (g) => {
    // d/dstudent = T² · (q − p) / (T · n)
    const ds = student.gradient(), k = (g[0] * T) / n;
    for (let i = 0; i < n * V; i++) ds[i] += k * (q[i] - p[i]);
  }, out);
}

/** log softmax(logits[t])[targets[t]] per row → [n, 1]; 0 (and no gradient) where the target is negative */
export function tokenLogprobs(logits: Var, targets: Int32Array): Var {
  checkTargets(logits, targets);
  const n = logits.rows, V = logits.cols;
  const probs = softmaxRows(logits.value, n, V, 1);
  const out = allocFloats(n);
  for (let t = 0; t < n; t++) if (targets[t] >= 0) out[t] = Math.log(probs[t * V + targets[t]]);
  return result(n, 1, [logits], (g) => {
    // d/dlogits = g · (onehot(target) − softmax)
    const dl = logits.gradient();
    for (let t = 0; t < n; t++) {
      if (targets[t] < 0) continue;
      for (let c = 0; c < V; c++) dl[t * V + c] -= g[t] * probs[t * V + c];
      dl[t * V + targets[t]] += g[t];
    }
  }, out);
}
