// Block accounting, prefix caching and copy-on-write, without a model: a fake forward pass writes into each
// slot a code of the token prefix it stands for, so any block wrongly shared, reused or overwritten shows up
// as a wrong code at some position of some sequence.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVCache } from '../../src/generate/kv-cache.js';
import { BlockManager, BlockTable } from '../../src/engine/block-manager.js';
import { Scheduler, type SchedulableSequence } from '../../src/engine/scheduler.js';
import { Rng } from '../../src/generate/rng.js';

function tinyCache(nBlocks: number, blockSize: number): KVCache {
  return new KVCache({ nLayers: 2, keyDim: 1, valueDim: 1, nBlocks, blockSize });
}

/** the value a slot holds for position p: a rolling hash of tokens 0..p (what real K/V depend on) */
function prefixCode(tokens: readonly number[], p: number): number {
  let h = 17;
  for (let i = 0; i <= p; i++) h = (h * 31 + tokens[i] + 1) % 65521;
  return h;
}

/** the fake forward pass: positions start..end−1 get their codes in every layer */
function write(cache: KVCache, table: BlockTable, tokens: readonly number[], start: number, end: number): void {
  for (let p = start; p < end; p++) {
    const slot = table.slot(p);
    for (let layer = 0; layer < cache.keys.length; layer++) {
      cache.keys[layer][slot] = prefixCode(tokens, p);
      cache.values[layer][slot] = prefixCode(tokens, p) ^ 0x5555;
    }
  }
}

function assertComputed(cache: KVCache, table: BlockTable, tokens: readonly number[], label: string): void {
  for (let p = 0; p < table.length; p++) {
    const slot = table.slot(p);
    for (let layer = 0; layer < cache.keys.length; layer++) {
      assert.equal(cache.keys[layer][slot], prefixCode(tokens, p), `${label}: key at position ${p}, layer ${layer}`);
      assert.equal(cache.values[layer][slot], prefixCode(tokens, p) ^ 0x5555, `${label}: value at position ${p}`);
    }
  }
}

/** computes positions table.length..end−1 the way the engine does */
function compute(manager: BlockManager, table: BlockTable, tokens: readonly number[], end: number): void {
  const start = table.length;
  manager.prepareWrite(table, end);
  write(manager.cache, table, tokens, start, end);
  manager.commit(table, tokens, end);
}

test('a second request with the same prompt reuses its full blocks; freed cached blocks stay cached', () => {
  const manager = new BlockManager(tinyCache(16, 4));
  const prompt = [5, 1, 4, 1, 5, 9, 2, 6, 5, 3]; // 2 full blocks + 2 tokens
  const a = new BlockTable(4);
  assert.equal(manager.attachCachedPrefix(a, prompt), 0);
  compute(manager, a, prompt, prompt.length);
  assert.deepEqual(manager.usage(), { used: 3, free: 13, cached: 0, total: 16 });

  const b = new BlockTable(4);
  assert.equal(manager.attachCachedPrefix(b, prompt), 8);
  assert.deepEqual(b.blockTable, a.blockTable.slice(0, 2));
  assert.equal(manager.owners(a.blockTable[0]), 2);
  compute(manager, b, prompt, prompt.length);
  assert.notEqual(b.blockTable[2], a.blockTable[2]);
  assertComputed(manager.cache, b, prompt, 'b');
  assert.deepEqual(manager.usage(), { used: 4, free: 12, cached: 0, total: 16 });

  manager.free(a);
  manager.free(b);
  assert.deepEqual(manager.usage(), { used: 0, free: 16, cached: 2, total: 16 });

  // another prompt sharing only the first block hits one block
  const c = new BlockTable(4);
  const other = [5, 1, 4, 1, 7, 7, 7, 7, 7];
  assert.equal(manager.attachCachedPrefix(c, other), 4);
  compute(manager, c, other, other.length);
  assertComputed(manager.cache, c, other, 'c');
  manager.free(c);
  assert.equal(manager.usage().used, 0);
});

test('a fully cached prompt recomputes its last token in a copy of the shared last block', () => {
  const manager = new BlockManager(tinyCache(8, 4));
  const prompt = [3, 1, 4, 1, 5, 9, 2, 6]; // exactly 2 full blocks
  const a = new BlockTable(4);
  manager.attachCachedPrefix(a, prompt);
  compute(manager, a, prompt, prompt.length);

  const b = new BlockTable(4);
  assert.equal(manager.attachCachedPrefix(b, prompt), 7);
  assert.equal(manager.blocksNeeded(b, 8), 1, 'one block for the copy');
  const shared = b.blockTable[1];
  compute(manager, b, prompt, 8);
  assert.notEqual(b.blockTable[1], shared, 'b writes into its own copy');
  assert.equal(a.blockTable[1], shared);
  assert.equal(manager.owners(shared), 1);
  assertComputed(manager.cache, a, prompt, 'a');
  assertComputed(manager.cache, b, prompt, 'b');

  // alone, the cached block is written in place: no copy needed
  manager.free(a);
  manager.free(b);
  const c = new BlockTable(4);
  assert.equal(manager.attachCachedPrefix(c, prompt), 7);
  assert.equal(manager.blocksNeeded(c, 8), 0);
  compute(manager, c, prompt, 8);
  assertComputed(manager.cache, c, prompt, 'c');
  const d = new BlockTable(4);
  assert.equal(manager.attachCachedPrefix(d, prompt), 7, 'the rewritten block is cached again');
  manager.free(c);
  manager.free(d);
  assert.equal(manager.usage().used, 0);
});

test('forked sequences copy their shared partial block before writing; the last owner writes in place', () => {
  const manager = new BlockManager(tinyCache(8, 4));
  const prompt = [1, 2, 3, 4, 5, 6];
  const parent = new BlockTable(4);
  compute(manager, parent, prompt, prompt.length);
  const child = manager.fork(parent);
  assert.equal(manager.owners(parent.blockTable[1]), 2);
  const partial = parent.blockTable[1];

  const childTokens = [...prompt, 7];
  compute(manager, child, childTokens, 7);
  assert.notEqual(child.blockTable[1], partial);
  assert.equal(child.blockTable[0], parent.blockTable[0], 'the full block stays shared');
  const parentTokens = [...prompt, 8];
  assert.equal(manager.blocksNeeded(parent, 7), 0);
  compute(manager, parent, parentTokens, 7);
  assert.equal(parent.blockTable[1], partial);
  assertComputed(manager.cache, parent, parentTokens, 'parent');
  assertComputed(manager.cache, child, childTokens, 'child');
  manager.free(parent);
  manager.free(child);
  assert.deepEqual(manager.usage(), { used: 0, free: 8, cached: 1, total: 8 });
});

test('cached blocks without owners are evicted least recently freed first', () => {
  const manager = new BlockManager(tinyCache(4, 2));
  const first = [1, 1, 1], second = [2, 2, 2];
  for (const tokens of [first, second]) {
    const t = new BlockTable(2);
    compute(manager, t, tokens, tokens.length);
    manager.free(t);
  }
  assert.deepEqual(manager.usage(), { used: 0, free: 4, cached: 2, total: 4 });
  // three fresh blocks: the two never-used ones, then the oldest cached block (first's)
  const big = new BlockTable(2);
  compute(manager, big, [9, 9, 9, 9, 9], 5);
  assert.equal(manager.usage().cached, 1);
  const probe = new BlockTable(2);
  assert.equal(manager.attachCachedPrefix(probe, first), 0, 'first was evicted');
  assert.equal(manager.attachCachedPrefix(new BlockTable(2), second), 2, 'second is still cached');
});

interface FakeSequence extends SchedulableSequence {
  tokens: number[];
  id: number;
  forks: number;
  readonly width: number;
}

test('block accounting stays exact over thousands of random admit/grow/fork/finish/abort/preempt events', () => {
  const blockSize = 4, nBlocks = 14, maxLength = 40;
  const manager = new BlockManager(tinyCache(nBlocks, blockSize));
  const scheduler = new Scheduler<FakeSequence>(manager, { maxNumSeqs: 5, maxNumBatchedTokens: 12 });
  const rng = new Rng(1234);
  const pick = (n: number) => Math.floor(rng.nextFloat() * n);
  const bases = [[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 9, 9], [7, 7, 7, 7, 7, 7, 7, 7, 7]];
  const live: FakeSequence[] = [];
  let nextId = 0, finished = 0, steps = 0;
  const newSequence = (tokens: number[], forks: number, blocks = new BlockTable(blockSize)): FakeSequence => {
    const seq: FakeSequence = { tokens, blocks, id: nextId++, forks, get width() { return 1 + this.forks; } };
    live.push(seq);
    return seq;
  };
  const end = (seq: FakeSequence) => {
    scheduler.remove(seq);
    live.splice(live.indexOf(seq), 1);
    finished++;
  };

  const checkInvariants = () => {
    const holders = new Map<number, number>();
    for (const seq of live) {
      // no waste beyond the partly filled last block
      assert.equal(seq.blocks.blockTable.length, seq.blocks.blocksFor(seq.blocks.length), `blocks of sequence ${seq.id}`);
      for (const b of seq.blocks.blockTable) holders.set(b, (holders.get(b) ?? 0) + 1);
      assertComputed(manager.cache, seq.blocks, seq.tokens, `sequence ${seq.id}`);
    }
    for (let b = 0; b < nBlocks; b++) assert.equal(manager.owners(b), holders.get(b) ?? 0, `owners of block ${b}`);
    const usage = manager.usage();
    assert.equal(usage.used, holders.size);
    assert.equal(usage.used + usage.free, nBlocks);
  };

  for (; steps < 3000; steps++) {
    if (rng.nextFloat() < 0.3) {
      const base = bases[pick(bases.length)];
      const prompt = [...base.slice(0, 1 + pick(base.length)), ...Array.from({ length: pick(6) }, () => pick(10))];
      scheduler.add(newSequence(prompt, rng.nextFloat() < 0.2 ? 1 : 0));
    }
    const chunks = scheduler.schedule();
    for (const { seq, start, count } of chunks) write(manager.cache, seq.blocks, seq.tokens, start, start + count);
    for (const { seq, start, count } of chunks) {
      manager.commit(seq.blocks, seq.tokens, start + count);
      if (start + count < seq.tokens.length) continue;
      const family = [seq];
      for (; seq.forks > 0; seq.forks--) {
        const child = newSequence([...seq.tokens], 0, manager.fork(seq.blocks));
        scheduler.addRunning(child);
        family.push(child);
      }
      for (const s of family) {
        s.tokens.push(pick(10)); // the sampled token
        if (s.tokens.length >= maxLength || rng.nextFloat() < 0.05) end(s);
      }
    }
    if (live.length > 0 && rng.nextFloat() < 0.05) end(live[pick(live.length)]); // abort
    checkInvariants();
  }
  assert.ok(scheduler.preemptions > 50, `only ${scheduler.preemptions} preemptions`);
  assert.ok(scheduler.prefixCacheHitRate > 0.1, `hit rate ${scheduler.prefixCacheHitRate}`);
  assert.ok(finished > 200, `only ${finished} sequences finished`);
  for (const seq of [...live]) end(seq);
  const usage = manager.usage();
  assert.equal(usage.used, 0);
  assert.equal(usage.free, nBlocks);
  assert.equal(manager.pool.freeCount + usage.cached, nBlocks);
});

test('decodes are scheduled before prompt chunks, whatever their order among the running sequences', () => {
  const manager = new BlockManager(tinyCache(64, 4));
  const scheduler = new Scheduler<FakeSequence>(manager, { maxNumSeqs: 4, maxNumBatchedTokens: 8 });
  const sequence = (tokens: number[], id: number, blocks = new BlockTable(4)): FakeSequence => ({ tokens, blocks, id, forks: 0, width: 1 });
  const step = () => {
    const chunks = scheduler.schedule();
    for (const { seq, start, count } of chunks) compute(manager, seq.blocks, seq.tokens, start + count);
    return chunks.map(({ seq, count }) => [seq.id, count]);
  };
  const a = sequence([1, 2, 3], 0);
  scheduler.add(a);
  assert.deepEqual(step(), [[0, 3]]);
  a.tokens.push(4);
  const b = sequence(Array.from({ length: 30 }, (_, i) => i % 10), 1);
  scheduler.add(b);
  assert.deepEqual(step(), [[0, 1], [1, 7]]);
  a.tokens.push(5);
  // a decoding sequence that joined after b (a fork of a) goes before b's next chunk
  const child = sequence([...a.tokens], 2, manager.fork(a.blocks));
  scheduler.addRunning(child);
  assert.deepEqual(step(), [[0, 1], [2, 1], [1, 6]]);
});
