// Seeded pseudo-random numbers for sampling: xoshiro128** (Blackman & Vigna) on four 32-bit words, seeded
// through SplitMix64 so that any integer seed, including 0 and negatives, gives a well-mixed state.
// The state is four plain numbers, so a preempted sequence can save it and resume the same stream.

/** The full generator state: four unsigned 32-bit words, not all zero. */
export type RngState = readonly [number, number, number, number];

export class RngError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RngError';
  }
}

/** A fresh seed from the operating system's entropy, for requests that give none (Web Crypto: Node and pages alike). */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

const MASK64 = (1n << 64n) - 1n;

/** SplitMix64: step `x` by the golden-ratio increment and return the mixed output (both as u64 bigints). */
function splitMix64(x: bigint): [next: bigint, output: bigint] {
  const next = (x + 0x9e3779b97f4a7c15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return [next, z ^ (z >> 31n)];
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Rng {
  private readonly s = new Uint32Array(4);

  /** `seed`: any integer (its value modulo 2^64 is used); omitted means a random seed. */
  constructor(seed: number | bigint = randomSeed()) {
    if (typeof seed === 'number' && !Number.isInteger(seed)) throw new RngError(`seed must be an integer, got ${seed}`);
    let x = BigInt.asUintN(64, BigInt(seed));
    for (let i = 0; i < 4; i += 2) {
      let out: bigint;
      [x, out] = splitMix64(x);
      this.s[i] = Number(out & 0xffffffffn);
      this.s[i + 1] = Number(out >> 32n);
    }
    // SplitMix64 outputs are a bijection of distinct inputs, so two consecutive ones are never both zero.
  }

  /** A generator continuing exactly from a saved state. */
  static fromState(state: RngState): Rng {
    const rng = new Rng(0);
    rng.restore(state);
    return rng;
  }

  state(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  restore(state: RngState): void {
    if (state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new RngError('RNG state must be four unsigned 32-bit integers');
    }
    if (state.every((w) => w === 0)) throw new RngError('RNG state must not be all zero');
    this.s.set(state);
  }

  /** Next output of xoshiro128**, an unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits (27 from one output, 26 from the next). */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }
}
