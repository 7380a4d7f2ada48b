// The merge candidates of BPE-style tokenizers: pairs of adjacent symbols, popped smallest key first and,
// between equal keys, leftmost first (llama.cpp's comparators). A binary heap over parallel typed arrays,
// so that the millions of candidates of a long text cost no objects.

export class BigramQueue {
  // heap entry i: keys[i], lefts[i], rights[i], lengths[i]
  private keys: Float64Array;
  private lefts: Int32Array;
  private rights: Int32Array;
  private lengths: Int32Array;
  private count = 0;

  /** the entry the last successful pop() took out */
  left = -1;
  right = -1;
  length = 0;

  constructor(expected = 16) {
    const capacity = Math.max(16, expected);
    this.keys = new Float64Array(capacity);
    this.lefts = new Int32Array(capacity);
    this.rights = new Int32Array(capacity);
    this.lengths = new Int32Array(capacity);
  }

  /** `length`: the pair's joined length when queued, to tell later whether either symbol has changed. */
  push(key: number, left: number, right: number, length: number): void {
    if (this.count === this.keys.length) this.grow();
    let i = this.count++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.precedes(key, left, parent)) break;
      this.move(parent, i);
      i = parent;
    }
    this.set(i, key, left, right, length);
  }

  /** Takes out the first entry into left/right/length; false when the queue is empty. */
  pop(): boolean {
    if (this.count === 0) return false;
    this.left = this.lefts[0];
    this.right = this.rights[0];
    this.length = this.lengths[0];
    const last = --this.count;
    const key = this.keys[last], left = this.lefts[last], right = this.rights[last], length = this.lengths[last];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.precedes(this.keys[child + 1], this.lefts[child + 1], child)) child++;
      if (!this.precedes(this.keys[child], this.lefts[child], last)) break;
      this.move(child, i);
      i = child;
    }
    this.set(i, key, left, right, length);
    return true;
  }

  /** whether (key, left) comes before entry j */
  private precedes(key: number, left: number, j: number): boolean {
    return key < this.keys[j] || (key === this.keys[j] && left < this.lefts[j]);
  }

  private move(from: number, to: number): void {
    this.set(to, this.keys[from], this.lefts[from], this.rights[from], this.lengths[from]);
  }

  private set(i: number, key: number, left: number, right: number, length: number): void {
    this.keys[i] = key;
    this.lefts[i] = left;
    this.rights[i] = right;
    this.lengths[i] = length;
  }

  private grow(): void {
    const capacity = this.keys.length * 2;
    const grown = <A extends Float64Array | Int32Array>(a: A, make: (n: number) => A): A => {
      const b = make(capacity);
      b.set(a);
      return b;
    };
    this.keys = grown(this.keys, (n) => new Float64Array(n));
    this.lefts = grown(this.lefts, (n) => new Int32Array(n));
    this.rights = grown(this.rights, (n) => new Int32Array(n));
    this.lengths = grown(this.lengths, (n) => new Int32Array(n));
  }
}

/**
 * The merge loop shared by the BPE-style tokenizers. Symbol i is text.substr(start[i], length[i]); adjacent
 * symbols are merged, smallest `pairKey` first, until no adjacent pair has a key. Merged-away symbols get
 * length 0; returns `next`, which links the surviving symbols from index 0 (−1 ends the list).
 */
export function mergeSymbols(
  text: string,
  start: readonly number[],
  length: number[],
  pairKey: (left: string, right: string) => number | undefined,
): number[] {
  const n = start.length;
  const prev = Array.from({ length: n }, (_, i) => i - 1);
  const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const queue = new BigramQueue(n);
  const addBigram = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const key = pairKey(text.substr(start[left], length[left]), text.substr(start[right], length[right]));
    if (key !== undefined) queue.push(key, left, right, length[left] + length[right]);
  };
  for (let i = 1; i < n; i++) addBigram(i - 1, i);

  while (queue.pop()) {
    const { left, right } = queue;
    // a changed length means one of the two has merged since the pair was queued
    if (length[left] === 0 || length[right] === 0 || length[left] + length[right] !== queue.length) continue;
    // merge right into left and unlink right
    length[left] += length[right];
    length[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    addBigram(prev[left], left);
    addBigram(left, next[left]);
  }
  return next;
}
