// rmsnorm and layernorm.

const SQUARES = 0, VALUES = 1, CENTRED_SQUARES = 2;

/** The terms of rowSumsPair for four values of row a and four of row b: [a_k, b_k] in f64, k = 0…3, in t0…t3. */
@inline function pairTerms(va: v128, vb: v128, kind: i32, meanA: f32, meanB: f32, k: i32): v128 {
  if (kind == CENTRED_SQUARES) {
    va = f32x4.sub(va, f32x4.splat(meanA));
    vb = f32x4.sub(vb, f32x4.splat(meanB));
    va = f32x4.mul(va, va);
    vb = f32x4.mul(vb, vb);
  }
  let pair: v128;
  switch (k) {
    case 0: pair = i8x16.shuffle(va, vb, 0, 1, 2, 3, 16, 17, 18, 19, 0, 0, 0, 0, 0, 0, 0, 0); break;
    case 1: pair = i8x16.shuffle(va, vb, 4, 5, 6, 7, 20, 21, 22, 23, 0, 0, 0, 0, 0, 0, 0, 0); break;
    case 2: pair = i8x16.shuffle(va, vb, 8, 9, 10, 11, 24, 25, 26, 27, 0, 0, 0, 0, 0, 0, 0, 0); break;
    default: pair = i8x16.shuffle(va, vb, 12, 13, 14, 15, 28, 29, 30, 31, 0, 0, 0, 0, 0, 0, 0, 0); break;
  }
  const wide = f64x2.promote_low_f32x4(pair);
  return kind == SQUARES ? f64x2.mul(wide, wide) : wide;
}

/** Σ over two rows a and b of n values of the terms `kind`, each row summed in f64 in order (lane 0: a, lane 1: b). */
@inline function rowSumsPair(a: usize, b: usize, n: i32, kind: i32, meanA: f32, meanB: f32): v128 {
  let acc = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const va = v128.load(a + (<usize>i << 2)), vb = v128.load(b + (<usize>i << 2));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 0));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 1));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 2));
    acc = f64x2.add(acc, pairTerms(va, vb, kind, meanA, meanB, 3));
  }
  for (; i < n; i++) acc = f64x2.add(acc, pairTerms(v128.load32_zero(a + (<usize>i << 2)), v128.load32_zero(b + (<usize>i << 2)), kind, meanA, meanB, 0));
  return acc;
}

/** out = x · s · weight over a row of n values (s: the row's f32 scale; x·s rounded to f32 first). */
@inline function scaleRow(x: usize, weight: usize, out: usize, n: i32, s: f32): void {
  const vs = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    v128.store(out + at, f32x4.mul(f32x4.mul(v128.load(x + at), vs), v128.load(weight + at)));
  }
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), (load<f32>(x + (<usize>i << 2)) * s) * load<f32>(weight + (<usize>i << 2)));
}

/** 1 / sqrt(mean + eps) rounded to f32, the mean of squares rounded to f32 first (as the reference backend). */
@inline function rmsScale(sumSquares: f64, n: i32, eps: f64): f32 {
  return <f32>(1 / Math.sqrt(<f64><f32>(sumSquares / n) + eps));
}

/**
 * RMS norm of rows [nTokens, dim]: out = x / sqrt(mean(x²) + eps) · weight. Two rows at a time share the f64 lanes;
 * each row's squares are summed in order, as the reference backend does.
 */
export function rmsnorm(x: usize, weight: usize, out: usize, nTokens: i32, dim: i32, eps: f64): void {
  const rowBytes = <usize>dim << 2;
  for (let t = 0; t < nTokens; t += 2) {
    const a = x + <usize>t * rowBytes;
    const b = t + 1 < nTokens ? a + rowBytes : a;
    const sums = rowSumsPair(a, b, dim, SQUARES, 0, 0);
    scaleRow(a, weight, out + <usize>t * rowBytes, dim, rmsScale(f64x2.extract_lane(sums, 0), dim, eps));
    if (t + 1 < nTokens) scaleRow(b, weight, out + <usize>(t + 1) * rowBytes, dim, rmsScale(f64x2.extract_lane(sums, 1), dim, eps));
  }
}

/**
 * rmsnorm's gradients (training): with r a row's scale (as rmsnorm computes it) and u = g ⊙ weight,
 * dx += r·u − x·r³/dim·Σ(u ⊙ x), added; row chunk c's part of dweight, Σ_rows g ⊙ x·r, into partials [c, dim]
 * (zeroed by the caller, which adds the parts up in chunk order: the same sums whichever thread took a chunk).
 * Rows in chunks of `chunk` claimed from the counter. (`scratch`: unused.)
 */
export function rmsnorm_backward(g: usize, x: usize, weight: usize, dx: usize, partials: usize, nTokens: i32, dim: i32, eps: f64, counter: usize, chunk: i32, scratch: usize): void {
  const rowBytes = <usize>dim << 2;
  const dim4 = dim & ~3;
  while (true) {
    const t0 = atomic.add<i32>(counter, chunk);
    if (t0 >= nTokens) break;
    const t1 = min(nTokens, t0 + chunk);
    const part = partials + <usize>(t0 / chunk) * rowBytes;
    for (let t = t0; t < t1; t++) {
      const xr = x + <usize>t * rowBytes, gr = g + <usize>t * rowBytes, dxr = dx + <usize>t * rowBytes;
      const r = rmsScale(f64x2.extract_lane(rowSumsPair(xr, xr, dim, SQUARES, 0, 0), 0), dim, eps);
      let dots = f32x4.splat(0);
      let i = 0;
      for (; i < dim4; i += 4) {
        const at = <usize>i << 2;
        dots = f32x4.add(dots, f32x4.mul(f32x4.mul(v128.load(gr + at), v128.load(weight + at)), v128.load(xr + at)));
      }
      let dot = f32x4.extract_lane(dots, 0) + f32x4.extract_lane(dots, 1) + f32x4.extract_lane(dots, 2) + f32x4.extract_lane(dots, 3);
      for (; i < dim; i++) dot += load<f32>(gr + (<usize>i << 2)) * load<f32>(weight + (<usize>i << 2)) * load<f32>(xr + (<usize>i << 2));
      const k: f32 = r * r * r * dot / <f32>dim;
      const vr = f32x4.splat(r), vk = f32x4.splat(k);
      for (i = 0; i < dim4; i += 4) {
        const at = <usize>i << 2;
        const gv = v128.load(gr + at), xv = v128.load(xr + at);
        v128.store(dxr + at, f32x4.add(v128.load(dxr + at), f32x4.sub(f32x4.mul(f32x4.mul(vr, gv), v128.load(weight + at)), f32x4.mul(vk, xv))));
        v128.store(part + at, f32x4.add(v128.load(part + at), f32x4.mul(f32x4.mul(gv, xv), vr)));
      }
      for (; i < dim; i++) {
        const at = <usize>i << 2;
        const gv = load<f32>(gr + at), xv = load<f32>(xr + at);
        store<f32>(dxr + at, load<f32>(dxr + at) + (r * gv * load<f32>(weight + at) - k * xv));
        store<f32>(part + at, load<f32>(part + at) + gv * xv * r);
      }
    }
  }
}

/** out = ((x − mean)·scale)·weight + bias over a row of n values, each step rounded to f32 (as formulas.ts layerNormStats' callers). */
@inline function normalizeRow(x: usize, weight: usize, bias: usize, out: usize, n: i32, mean: f32, scale: f32): void {
  const vm = f32x4.splat(mean), vs = f32x4.splat(scale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    v128.store(out + at, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(v128.load(x + at), vm), vs), v128.load(weight + at)), v128.load(bias + at)));
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    store<f32>(out + at, ((load<f32>(x + at) - mean) * scale) * load<f32>(weight + at) + load<f32>(bias + at));
  }
}

/**
 * LayerNorm of rows [nTokens, dim] as ggml_norm (formulas.ts layerNormStats): mean = Σx / dim and var = Σ(x − mean)² / dim,
 * both sums in f64 in order, scale = 1 / sqrt(var + eps) in f32; then out = (x − mean)·scale·weight + bias. Rows in
 * chunks of `chunk` claimed from the counter, two at a time sharing the f64 lanes. (`scratch`: unused.)
 */
export function layernorm(x: usize, weight: usize, bias: usize, out: usize, nTokens: i32, dim: i32, eps: f32, counter: usize, chunk: i32, scratch: usize): void {
  const rowBytes = <usize>dim << 2;
  while (true) {
    const t0 = atomic.add<i32>(counter, chunk);
    if (t0 >= nTokens) break;
    const t1 = min(nTokens, t0 + chunk);
    for (let t = t0; t < t1; t += 2) {
      const a = x + <usize>t * rowBytes;
      const b = t + 1 < t1 ? a + rowBytes : a;
      const sums = rowSumsPair(a, b, dim, VALUES, 0, 0);
      const meanA = <f32>(f64x2.extract_lane(sums, 0) / <f64>dim), meanB = <f32>(f64x2.extract_lane(sums, 1) / <f64>dim);
      const squares = rowSumsPair(a, b, dim, CENTRED_SQUARES, meanA, meanB);
      const scaleA = <f32>1 / Mathf.sqrt(<f32>(f64x2.extract_lane(squares, 0) / <f64>dim) + eps);
      normalizeRow(a, weight, bias, out + <usize>t * rowBytes, dim, meanA, scaleA);
      if (t + 1 < t1) {
        const scaleB = <f32>1 / Mathf.sqrt(<f32>(f64x2.extract_lane(squares, 1) / <f64>dim) + eps);
        normalizeRow(b, weight, bias, out + <usize>(t + 1) * rowBytes, dim, meanB, scaleB);
      }
    }
  }
}
