// Rotary position embedding, for inference and training (src/kernels/rope.ts makes the angles): each rotated pair
// (a, b) of a head becomes (x_a·cos − x_b·sin, x_a·sin + x_b·cos) in f64 (the angles are f64), rounded once to f32 —
// the reference backend's arithmetic, so both give the same bits.

/**
 * rope of rows [nTokens, nHeads·headDim] of x into out (which may be x): the pairs of dims [offset, offset + nDims) of
 * each head — NEOX pairs (i, i + nDims/2), normal ones (2i, 2i+1) — rotated by row t's angles cos, sin [nTokens,
 * nDims/2] (f64); with `inverse` by −θ (rope's backward), the other dims copied. With `accumulate`, out += that
 * instead (each result rounded to f32 first). Rows in chunks of `chunk` claimed from the counter. (`scratch`: unused.)
 */
export function rope(x: usize, out: usize, nTokens: i32, nHeads: i32, headDim: i32, cos: usize, sin: usize, nDims: i32, neox: bool,
  offset: i32, inverse: bool, accumulate: bool, counter: usize, chunk: i32, scratch: usize): void {
  const half = nDims >> 1, rowBytes = <usize>(nHeads * headDim) << 2;
  // the sign of sin in each lane: (−s, s) rotates by θ, (s, −s) by −θ
  const signs = inverse ? f64x2(1, -1) : f64x2(-1, 1);
  const passThrough = offset > 0 || nDims < headDim;
  while (true) {
    const t0 = atomic.add<i32>(counter, chunk);
    if (t0 >= nTokens) break;
    const t1 = min(nTokens, t0 + chunk);
    for (let t = t0; t < t1; t++) {
      const xr = x + <usize>t * rowBytes, outr = out + <usize>t * rowBytes;
      const angles = <usize>(t * half) << 3;
      for (let h = 0; h < nHeads; h++) {
        const xh = xr + (<usize>(h * headDim) << 2), oh = outr + (<usize>(h * headDim) << 2);
        if (passThrough && (x != out || accumulate)) {
          for (let d = 0; d < headDim; d++) {
            if (d >= offset && d < offset + nDims) continue;
            const at = <usize>d << 2;
            store<f32>(oh + at, accumulate ? load<f32>(oh + at) + load<f32>(xh + at) : load<f32>(xh + at));
          }
        }
        for (let i = 0; i < half; i++) {
          const a = <usize>(offset + (neox ? i : 2 * i)) << 2;
          const b = <usize>(offset + (neox ? i + half : 2 * i + 1)) << 2;
          const p = f64x2.promote_low_f32x4(v128.load32_lane(xh + b, v128.load32_zero(xh + a), 1)); // (x_a, x_b)
          const c = v128.load64_splat(cos + angles + (<usize>i << 3)), s = f64x2.mul(v128.load64_splat(sin + angles + (<usize>i << 3)), signs);
          // (x_a·c + x_b·(−s), x_b·c + x_a·s): the reference's x_a·cos − x_b·sin and x_a·sin + x_b·cos, bit for bit
          let r = f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(p, c), f64x2.mul(i8x16.shuffle(p, p, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7), s)));
          if (accumulate) r = f32x4.add(r, v128.load32_lane(oh + b, v128.load32_zero(oh + a), 1));
          v128.store32_lane(oh + a, r, 0);
          v128.store32_lane(oh + b, r, 1);
        }
      }
    }
  }
}
