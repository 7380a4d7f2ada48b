// KV blocks per sequence, on top of the ref-counted BlockPool: growing a sequence's block table as it gets
// longer, freeing it when it ends, and the prefix cache. Only the last block of a sequence is ever partly
// filled, so the waste is under one block per sequence.
//
// Prefix caching (vLLM's automatic prefix caching): a FULL block is named by a chain hash,
//   hash_i = sha256(hash_{i-1} ‖ token ids of block i),
// so equal hashes mean equal tokens at equal positions with equal history, hence equal keys and values.
// A new sequence takes the cached blocks of its longest cached prefix instead of recomputing them.
// A block whose last owner leaves stays cached ("evictable"): it still counts as free, and is reused
// least-recently-freed first when the pool runs dry. Writing into a block that another sequence also
// holds first copies it (copy-on-write); n > 1 completions share their prompt's blocks this way.

import { platform } from '../platform/index.js';
import { BlockPool, OutOfBlocksError, SequenceBlocks, type KVCache } from '../generate/kv-cache.js';

/** A sequence's blocks, with the prefix-cache hashes of its full blocks. */
export class BlockTable extends SequenceBlocks {
  /** hashes[i] names full block i (only while the block is registered in the prefix cache) */
  readonly hashes: string[] = [];
}

export interface BlockUsage {
  /** blocks held by at least one sequence */
  used: number;
  /** blocks that can be handed out: never used, or cached without an owner */
  free: number;
  /** blocks without an owner that still hold a cached prefix (part of `free`) */
  cached: number;
  total: number;
}

function chainHash(parent: string, tokens: readonly number[]): string {
  return platform.sha256([new TextEncoder().encode(parent), new Uint8Array(Int32Array.from(tokens).buffer)]);
}

export class BlockManager {
  readonly pool: BlockPool;
  /** prefix cache: chain hash → block */
  private readonly blockByHash = new Map<string, number>();
  private readonly hashOfBlock = new Map<number, string>();
  /** cached blocks without an owner, least recently freed first (a Set iterates in insertion order) */
  private readonly evictable = new Set<number>();

  constructor(readonly cache: KVCache, readonly enablePrefixCaching = true) {
    this.pool = new BlockPool(cache.nBlocks);
  }

  get blockSize(): number { return this.cache.blockSize; }

  usage(): BlockUsage {
    const cached = this.evictable.size;
    return { used: this.pool.usedCount - cached, free: this.pool.freeCount + cached, cached, total: this.pool.nBlocks };
  }

  /** owners of a block: sequences holding it (an evictable block has none) */
  owners(block: number): number {
    return this.evictable.has(block) ? 0 : this.pool.refCount(block);
  }

  /**
   * Attaches the cached blocks of the longest cached prefix of `tokens` to an empty table and returns how
   * many positions they cover. When every token is cached the last one is still computed (its logits are
   * needed), so the table's last block will be written and is copied first if shared.
   */
  attachCachedPrefix(table: BlockTable, tokens: readonly number[]): number {
    if (table.blockTable.length !== 0) throw new Error('attachCachedPrefix needs an empty block table');
    if (!this.enablePrefixCaching) return 0;
    const bs = this.blockSize;
    const nFull = Math.floor(tokens.length / bs);
    let parent = '';
    for (let i = 0; i < nFull; i++) {
      const hash = chainHash(parent, tokens.slice(i * bs, (i + 1) * bs));
      const block = this.blockByHash.get(hash);
      if (block === undefined) break; // a cached prefix needs every block before it
      // an evictable block's reference (the cache's) becomes this sequence's; a held one gains an owner
      if (!this.evictable.delete(block)) this.pool.retain(block);
      table.blockTable.push(block);
      table.hashes.push(hash);
      parent = hash;
    }
    table.length = Math.min(table.blockTable.length * bs, tokens.length - 1);
    return table.length;
  }

  /** Blocks that must be handed out before positions table.length..end-1 can be written. */
  blocksNeeded(table: BlockTable, end: number): number {
    const grow = Math.max(0, table.blocksFor(end) - table.blockTable.length);
    return grow + (this.firstWriteIsShared(table, end) ? 1 : 0);
  }

  canWrite(table: BlockTable, end: number): boolean {
    return this.blocksNeeded(table, end) <= this.usage().free;
  }

  /**
   * Makes positions table.length..end-1 writable: grows the table, and gives the block holding position
   * table.length a private copy if another sequence holds it too.
   */
  prepareWrite(table: BlockTable, end: number): void {
    const needed = this.blocksNeeded(table, end);
    const free = this.usage().free;
    if (needed > free) throw new OutOfBlocksError(needed, free);
    const index = Math.floor(table.length / this.blockSize);
    if (this.firstWriteIsShared(table, end)) {
      const shared = table.blockTable[index];
      const copy = this.allocate();
      this.copyBlock(shared, copy);
      table.blockTable[index] = copy;
      this.release(shared);
    } else if (index < table.blockTable.length && index < table.hashes.length) {
      // an own cached block is about to change: it no longer matches its hash
      this.unregister(table.blockTable[index]);
    }
    table.hashes.length = Math.min(table.hashes.length, index);
    while (table.blockTable.length < table.blocksFor(end)) table.blockTable.push(this.allocate());
  }

  /** Records that positions up to `end` are computed, and caches blocks that became full. */
  commit(table: BlockTable, tokens: readonly number[], end: number): void {
    table.length = end;
    if (!this.enablePrefixCaching) return;
    const bs = this.blockSize;
    for (let i = table.hashes.length; i < Math.floor(end / bs); i++) {
      const hash = chainHash(i === 0 ? '' : table.hashes[i - 1], tokens.slice(i * bs, (i + 1) * bs));
      table.hashes.push(hash);
      const block = table.blockTable[i];
      // a block computed twice (two sequences at once) stays cached once; the duplicate is simply freed later
      if (!this.blockByHash.has(hash) && !this.hashOfBlock.has(block)) {
        this.blockByHash.set(hash, block);
        this.hashOfBlock.set(block, hash);
      }
    }
  }

  /** A new table holding the same blocks (n > 1 completions of one prompt). */
  fork(table: BlockTable): BlockTable {
    const child = new BlockTable(table.blockSize);
    for (const block of table.blockTable) this.pool.retain(block);
    child.blockTable.push(...table.blockTable);
    child.hashes.push(...table.hashes);
    child.length = table.length;
    return child;
  }

  /** Returns all of a table's blocks; cached ones stay cached. Last blocks first, so they are evicted first. */
  free(table: BlockTable): void {
    for (let i = table.blockTable.length - 1; i >= 0; i--) this.release(table.blockTable[i]);
    table.blockTable.length = 0;
    table.hashes.length = 0;
    table.length = 0;
  }

  private firstWriteIsShared(table: BlockTable, end: number): boolean {
    const index = Math.floor(table.length / this.blockSize);
    return end > table.length && index < table.blockTable.length && this.pool.refCount(table.blockTable[index]) > 1;
  }

  private allocate(): number {
    if (this.pool.freeCount > 0) return this.pool.allocate();
    const [oldest] = this.evictable; // least recently freed
    if (oldest === undefined) throw new OutOfBlocksError(1, 0);
    this.evictable.delete(oldest);
    this.unregister(oldest);
    return oldest; // its single reference passes to the new owner
  }

  private release(block: number): void {
    if (this.pool.refCount(block) === 1 && this.hashOfBlock.has(block)) {
      if (this.evictable.has(block)) throw new Error(`block ${block} released twice`);
      this.evictable.add(block); // the cache keeps the last reference
    } else {
      this.pool.release(block);
    }
  }

  private unregister(block: number): void {
    const hash = this.hashOfBlock.get(block);
    if (hash === undefined) return;
    this.hashOfBlock.delete(block);
    this.blockByHash.delete(hash);
  }

  /** copies the keys and values of every layer from block `from` to block `to` */
  private copyBlock(from: number, to: number): void {
    const { keys, values, blockSize } = this.cache;
    const { keyDim, valueDim } = this.cache.shape;
    for (let layer = 0; layer < keys.length; layer++) {
      keys[layer].copyWithin(to * blockSize * keyDim, from * blockSize * keyDim, (from + 1) * blockSize * keyDim);
      values[layer].copyWithin(to * blockSize * valueDim, from * blockSize * valueDim, (from + 1) * blockSize * valueDim);
    }
  }
}
