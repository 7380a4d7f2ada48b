// The scale searches behind ggml's quantizers (ggml-quants.c: make_qx_quants, make_q3_quants, make_qkx2_quants /
// make_qkx3_quants, make_qp_quants). Every `float` operation of the C code is one f32() here, in the same order,
// so that the chosen scales and quants come out bit-identical.
//
// Each search fits x[0..n) with levels L[i] and returns the scale (and for the affine ones a min):
//   symmetric: x ≈ scale·(L − nmax)          (L in [0, 2·nmax))
//   affine:    x ≈ scale·L − min             (L in [0, nmax])

import * as float32Math from './float32-math.js';

// copied into module constants once: calls through an imported binding are slower in the hot loops
const { clamp, f32, nearestInt } = float32Math;

/** ggml's GROUP_MAX_EPS: groups whose largest |x| is below it are all zero. */
export const GROUP_MAX_EPS = f32(1e-15);

const TENTH = f32(0.1);

/** The value of largest magnitude among x[0..n) (the first one on ties) and that magnitude. */
function signedMaxAbs(x: Float32Array, n: number): { max: number; amax: number } {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  return { max, amax };
}

/** make_qx_quants: symmetric levels by weighted least squares over 19 candidate scales around −nmax/max.
 *  Weights: `weights` when given, else x² (rmseType 1, the only kind ggml's k-quants use). */
export function makeQxQuants(n: number, nmax: number, x: Float32Array, L: Int8Array, weights: Float32Array | null): number {
  const { max, amax } = signedMaxAbs(x, n);
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  const weightOf = (i: number) => (weights ? weights[i] : f32(x[i] * x[i]));
  let iscale = f32(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = clamp(nearestInt(f32(iscale * x[i])), -nmax, nmax - 1);
    L[i] = l + nmax;
    const w = weightOf(i);
    sumlx = f32(sumlx + f32(f32(w * x[i]) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  let scale = suml2 ? f32(sumlx / suml2) : 0;
  let best = f32(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f32(-f32(nmax + f32(TENTH * is)) / max);
    sumlx = suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(f32(iscale * x[i])), -nmax, nmax - 1);
      const w = weightOf(i);
      sumlx = f32(sumlx + f32(f32(w * x[i]) * l));
      suml2 = f32(suml2 + f32(f32(w * l) * l));
    }
    if (suml2 > 0 && f32(sumlx * sumlx) > f32(best * suml2)) {
      for (let i = 0; i < n; i++) L[i] = nmax + clamp(nearestInt(f32(iscale * x[i])), -nmax, nmax - 1);
      scale = f32(sumlx / suml2);
      best = f32(scale * sumlx);
    }
  }
  return scale;
}

/** make_q3_quants (with do_rmse): symmetric levels, then up to 5 rounds of moving single levels while the
 *  x²-weighted fit improves. */
export function makeQ3Quants(n: number, nmax: number, x: Float32Array, L: Int8Array): number {
  const { max, amax } = signedMaxAbs(x, n);
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  const iscale = f32(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = clamp(nearestInt(f32(iscale * x[i])), -nmax, nmax - 1);
    L[i] = l;
    const w = f32(x[i] * x[i]);
    sumlx = f32(sumlx + f32(f32(w * x[i]) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let nChanged = 0;
    for (let i = 0; i < n; i++) {
      const w = f32(x[i] * x[i]);
      let slx = f32(sumlx - f32(f32(w * x[i]) * L[i]));
      if (slx > 0) {
        let sl2 = f32(suml2 - f32(f32(w * L[i]) * L[i]));
        const newL = clamp(nearestInt(f32(f32(x[i] * sl2) / slx)), -nmax, nmax - 1);
        if (newL !== L[i]) {
          slx = f32(slx + f32(f32(w * x[i]) * newL));
          sl2 = f32(sl2 + f32(f32(w * newL) * newL));
          if (sl2 > 0 && f32(f32(slx * slx) * suml2) > f32(f32(sumlx * sumlx) * sl2)) {
            L[i] = newL; sumlx = slx; suml2 = sl2;
            nChanged++;
          }
        }
      }
    }
    if (nChanged === 0) break;
  }
  for (let i = 0; i < n; i++) L[i] += nmax;
  return suml2 > 0 ? f32(sumlx / suml2) : 0;
}

/** Weighted error of x ≈ scale·L + offset: Σ w·|diff| (useMad) or Σ w·diff². */
function affineError(n: number, x: Float32Array, weights: Float32Array, scale: number, offset: number, L: Uint8Array, useMad: boolean): number {
  let error = 0;
  for (let i = 0; i < n; i++) {
    let diff = f32(f32(f32(scale * L[i]) + offset) - x[i]);
    diff = useMad ? Math.abs(diff) : f32(diff * diff);
    error = f32(error + f32(weights[i] * diff));
  }
  return error;
}

/** Result of an affine fit: x ≈ scale·L − min. */
export interface AffineFit { scale: number; min: number }

/** make_qkx2_quants / make_qkx3_quants (the same search): affine levels in [0, nmax], trying nstep+1 scales
 *  (nmax + rmin + rdelta·is)/(max − min) and solving the weighted least-squares scale and min for each.
 *  rmin and rdelta are the C float literals (e.g. -0.9f), rounded to float32 here. */
export function makeQkxQuants(
  n: number, nmax: number, x: Float32Array, weights: Float32Array, L: Uint8Array, Laux: Uint8Array,
  rmin: number, rdelta: number, nstep: number, useMad: boolean,
): AffineFit {
  rmin = f32(rmin);
  rdelta = f32(rdelta);
  let min = x[0], max = x[0];
  let sumW = weights[0];
  let sumX = f32(sumW * x[0]);
  for (let i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const w = weights[i];
    sumW = f32(sumW + w);
    sumX = f32(sumX + f32(w * x[i]));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, 0, n);
    return { scale: 0, min: -min };
  }
  let iscale = f32(nmax / f32(max - min));
  let scale = f32(1 / iscale);
  for (let i = 0; i < n; i++) L[i] = clamp(nearestInt(f32(iscale * f32(x[i] - min))), 0, nmax);
  let bestError = affineError(n, x, weights, scale, min, L, useMad);
  for (let is = 0; is <= nstep; is++) {
    // min is the best fit so far (as in ggml, later candidates start from it)
    iscale = f32(f32(f32(rmin + f32(rdelta * is)) + nmax) / f32(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(f32(iscale * f32(x[i] - min))), 0, nmax);
      Laux[i] = l;
      const wl = f32(weights[i] * l);
      sumL = f32(sumL + wl);
      sumL2 = f32(sumL2 + f32(wl * l));
      sumXL = f32(sumXL + f32(wl * x[i]));
    }
    const D = f32(f32(sumW * sumL2) - f32(sumL * sumL));
    if (D > 0) {
      let thisScale = f32(f32(f32(sumW * sumXL) - f32(sumX * sumL)) / D);
      let thisMin = f32(f32(f32(sumL2 * sumX) - f32(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f32(sumXL / sumL2);
      }
      const error = affineError(n, x, weights, thisScale, thisMin, Laux, useMad);
      if (error < bestError) {
        L.set(Laux.subarray(0, n));
        bestError = error;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return { scale, min: -min };
}

/** make_qp_quants: non-negative values x (block scales or mins) to levels in [0, nmax] with weights,
 *  trying 9 scales around nmax/max, then moving single levels while the weighted fit improves. */
export function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, weights: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = max > x[i] ? max : x[i];
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f32(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(f32(iscale * x[i]));
  const scale = f32(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f32(x[i] - f32(scale * L[i]));
    bestMse = f32(bestMse + f32(f32(weights[i] * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f32(f32(f32(TENTH * is) + nmax) / max);
    const scaleIs = f32(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f32(iscaleIs * x[i])));
      const diff = f32(x[i] - f32(scaleIs * l));
      mse = f32(mse + f32(f32(weights[i] * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f32(iscale * x[i])));
    L[i] = l;
    const w = weights[i];
    sumlx = f32(sumlx + f32(f32(w * x[i]) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let nChanged = 0;
    for (let i = 0; i < n; i++) {
      const w = weights[i];
      let slx = f32(sumlx - f32(f32(w * x[i]) * L[i]));
      let sl2 = f32(suml2 - f32(f32(w * L[i]) * L[i]));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(f32(f32(x[i] * sl2) / slx)));
        if (newL !== L[i]) {
          slx = f32(slx + f32(f32(w * x[i]) * newL));
          sl2 = f32(sl2 + f32(f32(w * newL) * newL));
          if (f32(f32(slx * slx) * suml2) > f32(f32(sumlx * sumlx) * sl2)) {
            L[i] = newL; sumlx = slx; suml2 = sl2;
            nChanged++;
          }
        }
      }
    }
    if (nChanged === 0) break;
  }
  return suml2 > 0 ? f32(sumlx / suml2) : 0;
}
