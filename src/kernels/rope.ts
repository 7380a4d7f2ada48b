// Rotary position embedding angles, shared by the inference backends and training: θ_i = pos · scale ·
// base^(−2i/nDims) for the pairs i of each row, optionally divided by a per-pair factor (llama3).

import type { RopeParams } from './backend.js';

/** cos and sin of every rotated pair of every row: [n, nDims/2] each */
export interface RopeAngles {
  cos: Float64Array;
  sin: Float64Array;
}

/** The rotation angles of every row at `positions` [n]. */
export function ropeAngles(positions: Int32Array, p: RopeParams): RopeAngles {
  const half = p.nDims / 2, n = positions.length;
  const cos = new Float64Array(n * half), sin = new Float64Array(n * half);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < half; i++) {
      // θ_i = pos · scale · base^(−2i/nDims), optionally divided by a per-pair factor (llama3)
      let theta = p.freqScale * positions[t] * Math.pow(p.freqBase, (-2 * i) / p.nDims);
      if (p.freqFactors) theta /= p.freqFactors[i];
      cos[t * half + i] = Math.cos(theta);
      sin[t * half + i] = Math.sin(theta);
    }
  }
  return { cos, sin };
}
