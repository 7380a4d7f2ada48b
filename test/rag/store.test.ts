// The RAG store on both of its paths — PGlite in a folder, and node-postgres over the PostgreSQL wire protocol
// (PGlite served by pglite-socket) — with the same assertions: nearest neighbours through the HNSW index equal
// exact (brute-force) k-NN on a small set, full-text search finds the chunks holding a word, a removed file leaves
// no rows, a store bound to one embedding model refuses another until rebuilt.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RagStore, RagStoreError, EmbedModelMismatchError, type ChunkRow } from '../../src/rag/store.js';
import { normalizeL2 } from '../../src/generate/embed.js';
import { mulberry32 } from '../helpers/random.js';
import { startWireServer, type WireServer } from '../helpers/pg-wire.js';

const DIM = 16;
const MODEL = { name: 'test-model', dim: DIM };

function randomUnitVectors(n: number, seed: number): Float32Array[] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => normalizeL2(Float32Array.from({ length: DIM }, () => rand() * 2 - 1)));
}

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);

const WORDS = ['river', 'mountain', 'castle', 'teacher', 'school', 'garden', 'winter', 'letter'];

/** three files of 100 chunks each: vector i, text naming WORDS[i % 8] */
function fileChunks(vectors: Float32Array[], file: number): ChunkRow[] {
  return Array.from({ length: 100 }, (_, j) => {
    const i = file * 100 + j;
    const text = `chunk ${i} about the ${WORDS[i % WORDS.length]}`;
    return { start: j * 40, end: j * 40 + text.length, text, embedding: vectors[i] };
  });
}

const tmpRoot = mkdtempSync(join(tmpdir(), 'kiln-rag-store-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

for (const backend of ['pglite', 'wire'] as const) {
  describe(`RagStore (${backend})`, () => {
    let server: WireServer | undefined;
    let db: string;
    let store: RagStore;
    const vectors = randomUnitVectors(300, 7);

    before(async () => {
      if (backend === 'wire') server = await startWireServer();
      db = server?.url ?? join(tmpRoot, 'store');
      store = await RagStore.open(db);
      await store.bind(MODEL);
      for (let f = 0; f < 3; f++) await store.putFile(`/docs/file${f}.txt`, `hash${f}`, fileChunks(vectors, f));
    });
    after(async () => {
      await store?.close();
      await server?.stop();
    });

    test('HNSW nearest neighbours equal exact k-NN (brute-force cosine) on 300 vectors', async () => {
      const queries = randomUnitVectors(10, 99);
      for (const q of queries) {
        const exact = vectors.map((v, i) => ({ i, s: cosine(q, v) })).sort((a, b) => b.s - a.s).slice(0, 10);
        const found = await store.nearest(q, 10, 100);
        // chunk ids are 1-based in insertion order: vector i is chunk i + 1
        assert.deepEqual(found.map((h) => h.id - 1), exact.map((e) => e.i));
        found.forEach((h, r) => assert.ok(Math.abs(h.score - exact[r].s) < 1e-5, `score ${h.score} vs ${exact[r].s}`));
      }
    });

    test('a hit carries its file, chunk number, range and text', async () => {
      const [hit] = await store.nearest(vectors[150], 1);
      assert.deepEqual({ path: hit.path, ordinal: hit.ordinal, start: hit.start, text: hit.text },
        { path: '/docs/file1.txt', ordinal: 50, start: 2000, text: 'chunk 150 about the winter' });
    });

    test('full-text search returns exactly the chunks that hold a word (stemmed), none for stop words', async () => {
      const hits = await store.fullText('Which castles?', 100);
      assert.equal(hits.length, 38); // i % 8 = 2 for i = 2, 10, …, 298
      assert.ok(hits.every((h) => h.text.includes('castle')));
      assert.deepEqual(await store.fullText('the of and', 5), []);
    });

    test('a removed file leaves no chunks; re-putting a file replaces its chunks', async () => {
      await store.putFile('/docs/extra.txt', 'e1', fileChunks(vectors, 0).slice(0, 4));
      assert.equal(await store.chunkCount(), 304);
      await store.putFile('/docs/extra.txt', 'e2', fileChunks(vectors, 0).slice(0, 2));
      assert.equal(await store.chunkCount(), 302);
      await store.removeFile('/docs/extra.txt');
      assert.equal(await store.chunkCount(), 300);
      assert.deepEqual((await store.files()).map((f) => f.path), ['/docs/file0.txt', '/docs/file1.txt', '/docs/file2.txt']);
    });

    test('another embedding model is refused; --reindex rebinds and empties the store', async () => {
      const other = { name: 'other-model', dim: 8 };
      await assert.rejects(store.bind(other), EmbedModelMismatchError);
      assert.throws(() => store.checkModel(other), /built with embedding model test-model \(16 dimensions\), not other-model \(8 dimensions\).*--reindex/);
      await store.close();
      // reopened, the store still knows its model
      store = await RagStore.open(db);
      assert.deepEqual(store.embedModel, MODEL);
      await store.bind(other, true);
      assert.equal(await store.chunkCount(), 0);
      assert.deepEqual(await store.files(), []);
      assert.deepEqual(store.embedModel, other);
    });
  });
}

describe('a store that cannot be opened', () => {
  test('a folder in use by a live process is refused, naming it', async () => {
    const dir = join(tmpRoot, 'locked');
    const store = await RagStore.open(dir);
    try {
      await assert.rejects(RagStore.open(dir), (e: Error) => e instanceof RagStoreError && e.message.includes(`in use by process ${process.pid}`));
    } finally {
      await store.close();
    }
  });

  test('a lock left by a dead process is taken over', async () => {
    const dir = join(tmpRoot, 'stale');
    await (await RagStore.open(dir)).close();
    writeFileSync(`${dir}.lock`, '2147483646'); // no such process
    await (await RagStore.open(dir)).close();
  });

  test('a corrupt folder gives a RagStoreError and is left as it was', async () => {
    const dir = join(tmpRoot, 'corrupt');
    mkdirSync(dir);
    writeFileSync(join(dir, 'PG_VERSION'), 'not a database\n');
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await assert.rejects(RagStore.open(dir), (e: Error) => e instanceof RagStoreError && e.message.includes('left as it is'));
    assert.deepEqual(readdirSync(dir).sort(), ['PG_VERSION', 'notes.txt']);
  });
});
