// Training's softmax cross-entropy (src/kernels/backend.ts TrainingBackend.crossEntropyForward / Backward), forward
// and backward side by side: f64 as the reference backend (src/kernels/reference-training.ts), with the same exp
// (expF64x2, step for step its expF64) and the same order of sums, so both give the same bits at any thread count
// (rows are independent). Rows are claimed from the counter in chunks of `chunk`.

import { expF64x2, pairAt } from './elementwise';

/**
 * The softmax of each row r of logits [rows, cols] f32 whose target (targets [rows] i32) is not negative, into probs
 * [rows, cols] f64: m = max_c x_c, e_c = e^(x_c − m), s = Σ_c e_c (even c and odd c in two sums added at the end, an
 * odd last value after them), p_c = e_c / s.
 */
export function cross_entropy_forward(logits: usize, targets: usize, rows: i32, cols: i32, probs: usize, counter: usize, chunk: i32, scratch: usize): void {
  for (let r0 = atomic.add<i32>(counter, chunk); r0 < rows; r0 = atomic.add<i32>(counter, chunk)) {
    for (let r = r0; r < min(rows, r0 + chunk); r++) {
      if (load<i32>(targets + (<usize>r << 2)) < 0) continue;
      const x = logits + (<usize>r * <usize>cols << 2), p = probs + (<usize>r * <usize>cols << 3);
      let c = 0;
      let mv = f32x4.splat(-Infinity);
      for (; c + 4 <= cols; c += 4) mv = f32x4.max(mv, v128.load(x + (<usize>c << 2)));
      let m: f64 = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
      for (; c < cols; c++) m = max(m, <f64>load<f32>(x + (<usize>c << 2)));
      const mm = f64x2.splat(m);
      let sums = f64x2.splat(0);
      for (c = 0; c + 2 <= cols; c += 2) {
        const e = expF64x2(f64x2.sub(pairAt(x + (<usize>c << 2), true), mm));
        v128.store(p + (<usize>c << 3), e);
        sums = f64x2.add(sums, e);
      }
      let s = f64x2.extract_lane(sums, 0) + f64x2.extract_lane(sums, 1);
      if (c < cols) {
        const e = f64x2.extract_lane(expF64x2(f64x2.sub(pairAt(x + (<usize>c << 2), false), mm)), 0);
        store<f64>(p + (<usize>c << 3), e);
        s += e;
      }
      const sv = f64x2.splat(s);
      for (c = 0; c + 2 <= cols; c += 2) v128.store(p + (<usize>c << 3), f64x2.div(v128.load(p + (<usize>c << 3)), sv));
      if (c < cols) store<f64>(p + (<usize>c << 3), load<f64>(p + (<usize>c << 3)) / s);
    }
  }
}

/** The forward's gradient, added for rows whose target t is not negative: dlogits[r, c] += k·p_c (in f64, rounded once), then dlogits[r, t] −= k. */
export function cross_entropy_backward(dlogits: usize, probs: usize, targets: usize, rows: i32, cols: i32, k: f64, counter: usize, chunk: i32, scratch: usize): void {
  const kv = f64x2.splat(k);
  for (let r0 = atomic.add<i32>(counter, chunk); r0 < rows; r0 = atomic.add<i32>(counter, chunk)) {
    for (let r = r0; r < min(rows, r0 + chunk); r++) {
      const t = load<i32>(targets + (<usize>r << 2));
      if (t < 0) continue;
      const dx = dlogits + (<usize>r * <usize>cols << 2), p = probs + (<usize>r * <usize>cols << 3);
      let c = 0;
      for (; c + 2 <= cols; c += 2) {
        const sum = f64x2.add(pairAt(dx + (<usize>c << 2), true), f64x2.mul(kv, v128.load(p + (<usize>c << 3))));
        v128.store64_lane(dx + (<usize>c << 2), f32x4.demote_f64x2_zero(sum), 0);
      }
      if (c < cols) store<f32>(dx + (<usize>c << 2), <f32>(<f64>load<f32>(dx + (<usize>c << 2)) + k * load<f64>(p + (<usize>c << 3))));
      const target = dx + (<usize>t << 2);
      store<f32>(target, <f32>(<f64>load<f32>(target) - k));
    }
  }
}
