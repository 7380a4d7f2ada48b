// f32 matrix products for training (linear layers forward and backward): C[m, n] (+)= A·B, B [k, n] row-major,
// A either [m, k] row-major or given transposed ([k, m], for dW = gᵀ·x). A·Bᵀ (dx = g·W, x·Wᵀ) is B transposed first
// (`transpose`, O(k·n) against the product's O(m·k·n)). Register tile: TILE_ROWS rows × TILE_COLS columns of C live
// in v128 accumulators while p runs over k (8 accumulators, 2 vectors of B's row p, one broadcast A value: fits the
// 16 SIMD registers of x86-64). In the relaxed build each step is one relaxed_madd (a fused multiply-add on CPUs
// with FMA); the plain SIMD build multiplies and adds.

import { madd } from './simd';

const TILE_ROWS = 4;
const TILE_COLS = 8;
/** row tiles a thread claims at a time: each column strip of B is read from L1 by all of them */
const CHUNK_TILES = 8;
/** p runs over k in blocks of this many: a block of a strip of B (KC × TILE_COLS values) stays in L1 */
const KC = 256;

/** A[i, p] for the layouts above: a + 4·(i·k + p) row-major, a + 4·(p·m + i) transposed */
@inline function aAt(a: usize, i: i32, p: i32, m: i32, k: i32, transposed: bool): usize {
  return a + ((transposed ? <usize>p * m + i : <usize>i * k + p) << 2);
}

/** C tile rows [i, i + TILE_ROWS) × columns [j, j + TILE_COLS): p in [p0, p1) */
@inline function tile(c: usize, a: usize, b: usize, i: i32, j: i32, m: i32, n: i32, k: i32, p0: i32, p1: i32, transposed: bool, accumulate: bool): void {
  const rowC = <usize>n << 2;
  const pc = c + <usize>i * rowC + (<usize>j << 2);
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  if (accumulate) {
    c00 = v128.load(pc); c01 = v128.load(pc, 16);
    c10 = v128.load(pc + rowC); c11 = v128.load(pc + rowC, 16);
    c20 = v128.load(pc + 2 * rowC); c21 = v128.load(pc + 2 * rowC, 16);
    c30 = v128.load(pc + 3 * rowC); c31 = v128.load(pc + 3 * rowC, 16);
  }
  let pb = b + <usize>p0 * rowC + (<usize>j << 2);
  if (transposed) {
    // A's four rows at p are four consecutive values
    let pa = aAt(a, i, p0, m, k, true);
    const rowA = <usize>m << 2;
    for (let p = p0; p < p1; p++) {
      const b0 = v128.load(pb), b1 = v128.load(pb, 16), av = v128.load(pa);
      let s = i32x4.shuffle(av, av, 0, 0, 0, 0);
      c00 = madd(s, b0, c00); c01 = madd(s, b1, c01);
      s = i32x4.shuffle(av, av, 1, 1, 1, 1);
      c10 = madd(s, b0, c10); c11 = madd(s, b1, c11);
      s = i32x4.shuffle(av, av, 2, 2, 2, 2);
      c20 = madd(s, b0, c20); c21 = madd(s, b1, c21);
      s = i32x4.shuffle(av, av, 3, 3, 3, 3);
      c30 = madd(s, b0, c30); c31 = madd(s, b1, c31);
      pa += rowA;
      pb += rowC;
    }
  } else {
    let pa = aAt(a, i, p0, m, k, false);
    const rowA = <usize>k << 2;
    for (let p = p0; p < p1; p++) {
      const b0 = v128.load(pb), b1 = v128.load(pb, 16);
      let s = v128.load32_splat(pa);
      c00 = madd(s, b0, c00); c01 = madd(s, b1, c01);
      s = v128.load32_splat(pa + rowA);
      c10 = madd(s, b0, c10); c11 = madd(s, b1, c11);
      s = v128.load32_splat(pa + 2 * rowA);
      c20 = madd(s, b0, c20); c21 = madd(s, b1, c21);
      s = v128.load32_splat(pa + 3 * rowA);
      c30 = madd(s, b0, c30); c31 = madd(s, b1, c31);
      pa += 4;
      pb += rowC;
    }
  }
  v128.store(pc, c00); v128.store(pc, c01, 16);
  v128.store(pc + rowC, c10); v128.store(pc + rowC, c11, 16);
  v128.store(pc + 2 * rowC, c20); v128.store(pc + 2 * rowC, c21, 16);
  v128.store(pc + 3 * rowC, c30); v128.store(pc + 3 * rowC, c31, 16);
}

/** C[i, j] (+)= Σ_p A[i, p]·B[p, j] one value at a time: the rows and columns beyond whole tiles */
@inline function edge(c: usize, a: usize, b: usize, i0: i32, i1: i32, j0: i32, j1: i32, m: i32, n: i32, k: i32, transposed: bool, accumulate: bool): void {
  for (let i = i0; i < i1; i++) {
    for (let j = j0; j < j1; j++) {
      const at = c + ((<usize>i * n + j) << 2);
      let sum: f32 = accumulate ? load<f32>(at) : 0;
      for (let p = 0; p < k; p++) sum += load<f32>(aAt(a, i, p, m, k, transposed)) * load<f32>(b + ((<usize>p * n + j) << 2));
      store<f32>(at, sum);
    }
  }
}

@inline function rows(c: usize, a: usize, b: usize, i0: i32, i1: i32, m: i32, n: i32, k: i32, transposed: bool, accumulate: bool): void {
  const nTiled = n - n % TILE_COLS, iTiled = i0 + (i1 - i0) / TILE_ROWS * TILE_ROWS;
  // blocks of k outer, then column strips: a block of a strip of B stays in L1 for the chunk's row tiles
  for (let p0 = 0; p0 < k; p0 += KC) {
    const p1 = min(k, p0 + KC);
    for (let j = 0; j < nTiled; j += TILE_COLS) {
      for (let i = i0; i < iTiled; i += TILE_ROWS) {
        if (accumulate || p0 > 0) tile(c, a, b, i, j, m, n, k, p0, p1, transposed, true);
        else tile(c, a, b, i, j, m, n, k, p0, p1, transposed, false);
      }
    }
  }
  edge(c, a, b, i0, iTiled, nTiled, n, m, n, k, transposed, accumulate);
  edge(c, a, b, iTiled, i1, 0, n, m, n, k, transposed, accumulate);
}

/**
 * C[m, n] = A·B, or C += A·B when `accumulate`; A [m, k] (or its transpose [k, m] when `transposed`), B [k, n], all
 * row-major f32 at byte addresses c, a, b. Threads claim chunks of CHUNK_TILES row tiles from the counter.
 * (`scratch`: the pooled kernels' per-thread area, unused.)
 */
export function gemm(c: usize, a: usize, b: usize, m: i32, n: i32, k: i32, transposed: bool, accumulate: bool, counter: usize, scratch: usize): void {
  const chunk = TILE_ROWS * CHUNK_TILES;
  while (true) {
    const i0 = atomic.add<i32>(counter, chunk);
    if (i0 >= m) break;
    const i1 = min(m, i0 + chunk);
    if (transposed) {
      if (accumulate) rows(c, a, b, i0, i1, m, n, k, true, true);
      else rows(c, a, b, i0, i1, m, n, k, true, false);
    } else if (accumulate) rows(c, a, b, i0, i1, m, n, k, false, true);
    else rows(c, a, b, i0, i1, m, n, k, false, false);
  }
}

/** out[cols, rows] = xᵀ for x [rows, cols] (f32), in 4 × 4 blocks where both fit */
export function transpose(out: usize, x: usize, rows: i32, cols: i32): void {
  const r4 = rows & ~3, c4 = cols & ~3;
  const rowX = <usize>cols << 2, rowOut = <usize>rows << 2;
  for (let r = 0; r < r4; r += 4) {
    for (let c = 0; c < c4; c += 4) {
      const p = x + ((<usize>r * cols + c) << 2);
      const v0 = v128.load(p), v1 = v128.load(p + rowX), v2 = v128.load(p + 2 * rowX), v3 = v128.load(p + 3 * rowX);
      const t0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5), t1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
      const t2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7), t3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
      const q = out + ((<usize>c * rows + r) << 2);
      v128.store(q, i64x2.shuffle(t0, t1, 0, 2));
      v128.store(q + rowOut, i64x2.shuffle(t0, t1, 1, 3));
      v128.store(q + 2 * rowOut, i64x2.shuffle(t2, t3, 0, 2));
      v128.store(q + 3 * rowOut, i64x2.shuffle(t2, t3, 1, 3));
    }
  }
  for (let r = 0; r < rows; r++) {
    for (let c = r < r4 ? c4 : 0; c < cols; c++) store<f32>(out + ((<usize>c * rows + r) << 2), load<f32>(x + ((<usize>r * cols + c) << 2)));
  }
}

/** bytes [at, at + n) = 0 (a memset: faster than filling a shared typed array from JavaScript) */
export function zero(at: usize, n: usize): void {
  memory.fill(at, 0, n);
}
