// A WebAssembly SIMD matrix-multiply kernel, assembled here byte by byte (no toolchain needed):
//   gemm(c, a, b, i0, i1, k, m, j1, aRow, aCol, acc):  C[i, j] (+)= Σ_p A[i, p] · B[p, j]   for i in [i0, i1), j in [0, j1)
// adding to C when acc ≠ 0, overwriting it otherwise.
// B [k, m] and C [·, m] are row-major f32 at byte addresses b, c of an imported (shared) memory; A[i, p] is the
// f32 at a + 4·(i·aRow + p·aCol), so A may be row-major (aRow = k, aCol = 1) or transposed (aRow = 1, aCol = rows).
// Register tile: TILE_ROWS rows × TILE_COLS columns of C live in v128 locals while p runs over k; each step
// loads TILE_COLS/4 vectors of B's row p and broadcasts one A value per tile row; with `fma` the multiply-add is
// relaxed SIMD's f32x4.relaxed_madd (one fused instruction where the CPU has FMA). The caller guarantees
// (i1 − i0) % TILE_ROWS == 0, j1 % TILE_COLS == 0, j1 ≤ m and k ≥ 1.

export const TILE_ROWS = 2;
export const TILE_COLS = 16;
const VECS = TILE_COLS / 4;

// ---- encoding ----

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];

const I32 = 0x7f, V128 = 0x7b, VOID = 0x40;
const op = {
  block: [0x02, VOID], loop: [0x03, VOID], if: [0x04, VOID], else: [0x05], end: [0x0b],
  br: (d: number) => [0x0c, ...uleb(d)], brIf: (d: number) => [0x0d, ...uleb(d)],
  get: (l: number) => [0x20, ...uleb(l)], set: (l: number) => [0x21, ...uleb(l)], tee: (l: number) => [0x22, ...uleb(l)],
  i32: (v: number) => [0x41, ...sleb(v)],
  add: [0x6a], sub: [0x6b], mul: [0x6c], shl: [0x74], geU: [0x4f],
  f32Load: [0x2a, 2, 0],
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array(16).fill(0)],
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 2, ...uleb(offset)],
  v128Store: (offset: number) => [0xfd, ...uleb(0x0b), 2, ...uleb(offset)],
  f32x4Splat: [0xfd, ...uleb(0x13)], f32x4Add: [0xfd, ...uleb(0xe4)], f32x4Mul: [0xfd, ...uleb(0xe6)],
  f32x4RelaxedMadd: [0xfd, ...uleb(0x105)], // a·b + c
};

// ---- the kernel ----

// locals: parameters, then i32 scratch, then v128 accumulators [row r, vector v], B vectors and the broadcast A
const C = 0, A = 1, B = 2, I0 = 3, I1 = 4, K = 5, M = 6, J1 = 7, A_ROW = 8, A_COL = 9, ADD = 10; // A strides: floats, then bytes
const I = 11, J = 12, P = 13, PA = 14, PB = 15, PC = 16, ROW_C = 17; // ROW_C: C's and B's row stride in bytes
const ACC = 18;                          // ACC + r·VECS + v
const BV = ACC + TILE_ROWS * VECS;       // BV + v
const SPLAT = BV + VECS;
const N_I32 = ACC - I, N_V128 = SPLAT + 1 - ACC;

/** address of row r of a tile: base + r · stride (row 0 is the base itself) */
const rowAddr = (base: number, stride: number, r: number): number[] =>
  r === 0 ? op.get(base) : [...op.get(base), ...op.get(stride), ...op.i32(r), ...op.mul, ...op.add];

function gemmBody(fma: boolean): number[] {
  const code: number[] = [];
  const emit = (...parts: number[][]) => { for (const p of parts) code.push(...p); };
  emit(op.get(A_ROW), op.i32(2), op.shl, op.set(A_ROW));
  emit(op.get(A_COL), op.i32(2), op.shl, op.set(A_COL));
  emit(op.get(M), op.i32(2), op.shl, op.set(ROW_C));
  emit(op.get(I0), op.set(I));
  emit(op.block, op.loop);                                               // for i in [i0, i1) step TILE_ROWS
  emit(op.get(I), op.get(I1), op.geU, op.brIf(1));
  emit(op.i32(0), op.set(J));
  emit(op.block, op.loop);                                               //   for j in [0, j1) step TILE_COLS
  emit(op.get(J), op.get(J1), op.geU, op.brIf(1));
  // pc = c + i·rowC + 4j; pa = a + i·aRow; pb = b + 4j
  emit(op.get(C), op.get(I), op.get(ROW_C), op.mul, op.add, op.get(J), op.i32(2), op.shl, op.add, op.set(PC));
  emit(op.get(A), op.get(I), op.get(A_ROW), op.mul, op.add, op.set(PA));
  emit(op.get(B), op.get(J), op.i32(2), op.shl, op.add, op.set(PB));
  // accumulators start from C (adding) or from zero (overwriting)
  emit(op.get(ADD), op.if);
  for (let r = 0; r < TILE_ROWS; r++) {
    for (let v = 0; v < VECS; v++) emit(rowAddr(PC, ROW_C, r), op.v128Load(16 * v), op.set(ACC + r * VECS + v));
  }
  emit(op.else);
  for (let a = 0; a < TILE_ROWS * VECS; a++) emit(op.v128Zero, op.set(ACC + a));
  emit(op.end);
  emit(op.get(K), op.set(P));
  emit(op.loop);                                                         //     for p in [0, k)
  for (let v = 0; v < VECS; v++) emit(op.get(PB), op.v128Load(16 * v), op.set(BV + v));
  for (let r = 0; r < TILE_ROWS; r++) {
    // acc[r][v] += splat(A[i + r, p]) · B[p, j + 4v ..]
    emit(rowAddr(PA, A_ROW, r), op.f32Load, op.f32x4Splat, op.set(SPLAT));
    for (let v = 0; v < VECS; v++) {
      const acc = ACC + r * VECS + v;
      if (fma) emit(op.get(SPLAT), op.get(BV + v), op.get(acc), op.f32x4RelaxedMadd, op.set(acc));
      else emit(op.get(acc), op.get(SPLAT), op.get(BV + v), op.f32x4Mul, op.f32x4Add, op.set(acc));
    }
  }
  emit(op.get(PA), op.get(A_COL), op.add, op.set(PA));
  emit(op.get(PB), op.get(ROW_C), op.add, op.set(PB));
  emit(op.get(P), op.i32(1), op.sub, op.tee(P), op.brIf(0), op.end);
  for (let r = 0; r < TILE_ROWS; r++) {
    for (let v = 0; v < VECS; v++) emit(rowAddr(PC, ROW_C, r), op.get(ACC + r * VECS + v), op.v128Store(16 * v));
  }
  emit(op.get(J), op.i32(TILE_COLS), op.add, op.set(J), op.br(0), op.end, op.end);
  emit(op.get(I), op.i32(TILE_ROWS), op.add, op.set(I), op.br(0), op.end, op.end);
  const locals = vec([[...uleb(N_I32), I32], [...uleb(N_V128), V128]]);
  const body = [...locals, ...code, ...op.end];
  return [...uleb(body.length), ...body];
}

/** zero(at, bytes): memory.fill with 0 (a memset, faster than filling a shared typed array from JavaScript) */
function zeroBody(): number[] {
  const body = [...vec([]), ...op.get(0), ...op.i32(0), ...op.get(1), 0xfc, ...uleb(11), 0x00, ...op.end];
  return [...uleb(body.length), ...body];
}

/** The module's bytes; it imports `env.memory` (shared, up to `maxPages` 64 KiB pages) and exports `gemm`, `zero`. */
export function gemmModuleBytes(maxPages: number, fma: boolean): Uint8Array {
  const i32s = (n: number) => vec(Array.from({ length: n }, () => [I32]));
  const gemmType = [0x60, ...i32s(11), ...vec([])];
  const zeroType = [0x60, ...i32s(2), ...vec([])];
  const memoryImport = [...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(maxPages)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([gemmType, zeroType])),
    ...section(2, vec([memoryImport])),
    ...section(3, vec([uleb(0), uleb(1)])),
    ...section(7, vec([[...name('gemm'), 0x00, ...uleb(0)], [...name('zero'), 0x00, ...uleb(1)]])),
    ...section(10, vec([gemmBody(fma), zeroBody()])),
  ]);
}
