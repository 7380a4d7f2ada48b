// Rotary position embedding angles, shared by the inference backends and training: θ_i = pos · scale ·
// base^(−2i/nDims) for the pairs i of each row, optionally divided by a per-pair factor (llama3), and with YaRN's
// mix of interpolated and extrapolated frequencies (and its magnitude factor) where the model uses YaRN.

import type { RopeParams, YarnParams } from './backend.js';

/** cos and sin of every rotated pair of every row: [n, nDims/2] each */
export interface RopeAngles {
  cos: Float64Array;
  sin: Float64Array;
}

/**
 * YaRN's correction range [low, high] of pair indices: pairs that turn more than betaFast times over the original
 * context extrapolate (keep their frequency), fewer than betaSlow interpolate (ggml_rope_yarn_corr_dims).
 */
function yarnRange(p: RopeParams, y: YarnParams): [number, number] {
  const dim = (rotations: number) => (p.nDims * Math.log(y.originalContext / (rotations * 2 * Math.PI))) / (2 * Math.log(p.freqBase));
  return [Math.max(0, Math.floor(dim(y.betaFast))), Math.min(p.nDims - 1, Math.ceil(dim(y.betaSlow)))];
}

/** The rotation angles of every row at `positions` [n]. */
export function ropeAngles(positions: Int32Array, p: RopeParams): RopeAngles {
  const half = p.nDims / 2, n = positions.length;
  const cos = new Float64Array(n * half), sin = new Float64Array(n * half);
  const y = p.yarn;
  const [low, high] = y ? yarnRange(p, y) : [0, 0];
  // YaRN scales cos and sin by attn_factor · (1 + 0.1·ln(1/freqScale)) when it mixes frequencies
  const magnitude = y ? y.attnFactor * (y.extFactor !== 0 ? 1 + 0.1 * Math.log(1 / p.freqScale) : 1) : 1;
  // rows at a position seen before copy its angles (a training batch repeats every position once per sequence)
  const firstRow = new Map<number, number>();
  for (let t = 0; t < n; t++) {
    const seen = firstRow.get(positions[t]);
    if (seen !== undefined) {
      cos.copyWithin(t * half, seen * half, (seen + 1) * half);
      sin.copyWithin(t * half, seen * half, (seen + 1) * half);
      continue;
    }
    firstRow.set(positions[t], t);
    for (let i = 0; i < half; i++) {
      // θ = pos · base^(−2i/nDims), optionally divided by a per-pair factor (llama3), interpolated by freqScale
      let extrapolated = positions[t] * Math.pow(p.freqBase, (-2 * i) / p.nDims);
      if (p.freqFactors) extrapolated /= p.freqFactors[i];
      let theta = p.freqScale * extrapolated;
      if (y && y.extFactor !== 0) {
        // YaRN: ramp from extrapolation (fast pairs, i below low) to interpolation (slow pairs, above high)
        const mix = (1 - Math.min(1, Math.max(0, (i - low) / Math.max(0.001, high - low)))) * y.extFactor;
        theta = theta * (1 - mix) + extrapolated * mix;
      }
      cos[t * half + i] = Math.cos(theta) * magnitude;
      sin[t * half + i] = Math.sin(theta) * magnitude;
    }
  }
  return { cos, sin };
}
