// The paged KV cache (vLLM's PagedAttention layout): keys and values of every layer live in one pool of
// fixed-size blocks; a sequence owns a block table mapping its logical blocks to physical ones, so a token at
// position p sits in slot blockTable[p / blockSize] · blockSize + p % blockSize. Values are stored as f16,
// as llama.cpp's default cache does (half the memory of f32).

export const DEFAULT_BLOCK_SIZE = 16;

export class OutOfBlocksError extends Error {
  constructor(needed: number, free: number) {
    super(`KV cache is full: ${needed} more blocks needed, ${free} free`);
    this.name = 'OutOfBlocksError';
  }
}

export interface KVCacheShape {
  nLayers: number;
  /** f16 values per position in one layer's keys (nKvHeads × keyLength; MLA: latent + roped key) */
  keyDim: number;
  /** f16 values per position in one layer's values (nKvHeads × valueLength); 0 when attention reads the values from the keys (MLA) */
  valueDim: number;
  nBlocks: number;
  blockSize: number;
}

export class KVCache {
  /** per layer: f16 keys [nBlocks · blockSize, keyDim] */
  readonly keys: Uint16Array[];
  /** per layer: f16 values [nBlocks · blockSize, valueDim] (the keys themselves when valueDim is 0) */
  readonly values: Uint16Array[];

  /** `allocate`: zeroed storage for n f16 values (a backend's, so that its attention reads the cache in place) */
  constructor(readonly shape: KVCacheShape, allocate: (n: number) => Uint16Array = (n) => new Uint16Array(n)) {
    const slots = shape.nBlocks * shape.blockSize;
    const [keySize, valueSize] = [slots * shape.keyDim, slots * shape.valueDim];
    // one allocation: layer l's keys, then its values
    const storage = allocate(shape.nLayers * (keySize + valueSize));
    const layerAt = (l: number) => l * (keySize + valueSize);
    this.keys = Array.from({ length: shape.nLayers }, (_, l) => storage.subarray(layerAt(l), layerAt(l) + keySize));
    this.values = shape.valueDim === 0 ? this.keys : Array.from({ length: shape.nLayers }, (_, l) => storage.subarray(layerAt(l) + keySize, layerAt(l + 1)));
  }

  get blockSize(): number { return this.shape.blockSize; }
  get nBlocks(): number { return this.shape.nBlocks; }

  /** bytes held by the cache */
  get bytes(): number {
    const s = this.shape;
    return 2 * s.nLayers * s.nBlocks * s.blockSize * (s.keyDim + s.valueDim);
  }
}

/** A sequence's view of the cache: its block table and how many positions are filled. */
export class SequenceBlocks {
  /** logical block i of the sequence is physical block blockTable[i] */
  readonly blockTable: number[] = [];
  /** number of positions whose keys/values are in the cache */
  length = 0;

  constructor(readonly blockSize: number) {}

  /** blocks needed to hold `positions` positions */
  blocksFor(positions: number): number {
    return Math.ceil(positions / this.blockSize);
  }

  slot(position: number): number {
    const block = this.blockTable[Math.floor(position / this.blockSize)];
    if (block === undefined) throw new Error(`position ${position} has no cache block`);
    return block * this.blockSize + (position % this.blockSize);
  }

  /** slots of positions 0..n-1, in order */
  slots(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let p = 0; p < n; p++) out[p] = this.slot(p);
    return out;
  }
}

/** Hands out physical blocks, reference-counted so that sequences can share blocks (prefix caching, n > 1). */
export class BlockPool {
  private readonly freeList: number[];
  private readonly refCounts: Int32Array;

  constructor(readonly nBlocks: number) {
    this.refCounts = new Int32Array(nBlocks);
    // pop() hands out low ids first
    this.freeList = Array.from({ length: nBlocks }, (_, i) => nBlocks - 1 - i);
  }

  get freeCount(): number { return this.freeList.length; }
  get usedCount(): number { return this.nBlocks - this.freeList.length; }
  refCount(block: number): number { return this.refCounts[block]; }

  allocate(): number {
    const block = this.freeList.pop();
    if (block === undefined) throw new OutOfBlocksError(1, 0);
    this.refCounts[block] = 1;
    return block;
  }

  /** another owner for an allocated block */
  retain(block: number): void {
    if (this.refCounts[block] <= 0) throw new Error(`block ${block} is not allocated`);
    this.refCounts[block]++;
  }

  /** drops one owner; returns true when the block became free */
  release(block: number): boolean {
    if (this.refCounts[block] <= 0) throw new Error(`block ${block} released twice`);
    if (--this.refCounts[block] > 0) return false;
    this.freeList.push(block);
    return true;
  }

  /** grows a sequence's block table to hold `positions` positions */
  ensureCapacity(seq: SequenceBlocks, positions: number): void {
    const needed = seq.blocksFor(positions) - seq.blockTable.length;
    if (needed > this.freeList.length) throw new OutOfBlocksError(needed, this.freeList.length);
    for (let i = 0; i < needed; i++) seq.blockTable.push(this.allocate());
  }

  /** returns all of a sequence's blocks */
  releaseAll(seq: SequenceBlocks): void {
    for (const block of seq.blockTable) this.release(block);
    seq.blockTable.length = 0;
    seq.length = 0;
  }
}
