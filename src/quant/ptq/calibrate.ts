// Activation range calibration: the clipping threshold T a tensor's values are quantized within (|x| ≤ T),
// chosen from a histogram of |x| over [0, amax] in 2048 bins by
//   minmax:     T = amax
//   percentile: T = the p-th percentile of |x| (linear within a bin)
//   kl:         TensorRT's entropy calibration: for each candidate T = the end of bin i (i ≥ levels), the
//               reference P is the histogram up to i with everything beyond folded into bin i−1, Q is the same
//               bins merged into `levels` quantization levels and spread back evenly over each level's nonempty
//               bins; T minimizes KL(P‖Q). levels = 128 (signed 8-bit) or 255 (values all ≥ 0, unsigned 8-bit).

export type CalibrationMethod = 'minmax' | 'percentile' | 'kl';

export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'kl'];

export const HISTOGRAM_BINS = 2048;

/** A histogram of |x| over [0, amax] (amax fixed up front: a first pass finds it). */
export class AbsHistogram {
  readonly counts = new Float64Array(HISTOGRAM_BINS);
  /** whether any value was negative (decides 128 vs 255 levels) */
  signed = false;

  constructor(readonly amax: number) {}

  get binWidth(): number { return this.amax / HISTOGRAM_BINS; }

  add(x: Float32Array, from = 0, to = x.length): void {
    const perBin = this.amax > 0 ? HISTOGRAM_BINS / this.amax : 0;
    for (let i = from; i < to; i++) {
      if (x[i] < 0) this.signed = true;
      this.counts[Math.min(HISTOGRAM_BINS - 1, Math.floor(Math.abs(x[i]) * perBin))]++;
    }
  }
}

/** The largest |x| of an array. */
export function absMax(x: Float32Array): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** The |x| value below which `percent` % of the histogram's mass lies. */
export function percentileThreshold(h: AbsHistogram, percent: number): number {
  const total = h.counts.reduce((a, b) => a + b, 0);
  const target = (total * percent) / 100;
  let below = 0;
  for (let i = 0; i < HISTOGRAM_BINS; i++) {
    const c = h.counts[i];
    if (c > 0 && below + c >= target) return (i + (target - below) / c) * h.binWidth;
    below += c;
  }
  return h.amax;
}

/** KL(P‖Q) of two unnormalized distributions over the same bins; Q's empty bins where P has mass count as ε. */
function klDivergenceOfCounts(p: Float64Array, q: Float64Array, n: number): number {
  let pSum = 0, qSum = 0;
  for (let i = 0; i < n; i++) { pSum += p[i]; qSum += q[i]; }
  let kl = 0;
  for (let i = 0; i < n; i++) {
    if (p[i] === 0) continue;
    const pi = p[i] / pSum;
    const qi = q[i] > 0 ? q[i] / qSum : 1e-12;
    kl += pi * Math.log(pi / qi);
  }
  return kl;
}

/** TensorRT's entropy threshold (see the header). */
export function klThreshold(h: AbsHistogram, levels = h.signed ? 128 : 255): number {
  const hist = h.counts;
  const p = new Float64Array(HISTOGRAM_BINS);
  const q = new Float64Array(HISTOGRAM_BINS);
  let beyond = hist.reduce((a, b) => a + b, 0);
  for (let i = 0; i < levels; i++) beyond -= hist[i];
  let best = HISTOGRAM_BINS, bestKl = Infinity;
  for (let i = levels; i <= HISTOGRAM_BINS; i++) {
    // P: bins [0, i) with the clipped mass (bins ≥ i) added to the last one
    p.set(hist.subarray(0, i));
    p[i - 1] += beyond;
    if (i < HISTOGRAM_BINS) beyond -= hist[i];
    // Q: `levels` runs of bins (the last one takes the remainder), each run's mass spread over its nonempty bins
    const perLevel = Math.floor(i / levels);
    for (let l = 0; l < levels; l++) {
      const from = l * perLevel, to = l === levels - 1 ? i : from + perLevel;
      let mass = 0, nonEmpty = 0;
      for (let j = from; j < to; j++) { mass += hist[j]; if (hist[j] > 0) nonEmpty++; }
      for (let j = from; j < to; j++) q[j] = hist[j] > 0 ? mass / nonEmpty : 0;
    }
    const kl = klDivergenceOfCounts(p, q, i);
    if (kl < bestKl) { bestKl = kl; best = i; }
  }
  return Math.min(h.amax, (best + 0.5) * h.binWidth);
}

export interface CalibrationOptions {
  method: CalibrationMethod;
  /** percentile method: the share of |x| kept (default 99.99) */
  percentile?: number;
}

/** The clipping threshold of a histogram by `options.method`. */
export function thresholdOf(h: AbsHistogram, options: CalibrationOptions): number {
  if (options.method === 'minmax') return h.amax;
  if (options.method === 'percentile') return percentileThreshold(h, options.percentile ?? 99.99);
  return klThreshold(h);
}

/** The clipping threshold of a sample of values (both passes over the array). */
export function calibrateThreshold(x: Float32Array, options: CalibrationOptions): number {
  const h = new AbsHistogram(absMax(x));
  h.add(x);
  return thresholdOf(h, options);
}
