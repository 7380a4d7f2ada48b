// Benchmarks of the RAG store (numbers for notes, not tests):
//   latency  — `Rag.search` (hybrid: query embedding, HNSW and full-text queries, fusion) p50/p99 over the questions
//              of bench/rag-questions.json, on a store of --chunks chunks (default 10,000: corpus text, random unit
//              vectors of the embedding model's width), embedded (PGlite folder) and over the wire (pglite-socket)
//   hnsw     — pgvector HNSW recall@10 against exact k-NN on --n random unit vectors of 384 dimensions (default 100,000),
//              for index shapes --m M,… --ef-construction E,… (default: the store's) and query-time --ef-search S,…,
//              --reuse: the last run's rows (and its index, without --m)
//   npx tsx bench/rag-bench.ts latency|hnsw [--chunks N] [--n N] [--queries N] [--m …] [--ef-construction …] [--ef-search …] [--reuse]

import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Rag, type SearchOptions } from '../src/rag/rag.js';
import { HNSW_INDEX, RagStore, vectorLiteral } from '../src/rag/store.js';
import { defaultModelPath } from '../src/cli/default-model.js';
import { normalizeL2 } from '../src/generate/embed.js';
import { Rng } from '../src/generate/rng.js';
import { startWireServer } from '../test/helpers/pg-wire.js';

const SHARED = process.env.KILN_SHARED ?? resolve('..', 'shared');
const WORK = resolve('tmp', 'rag-bench');
const [what = 'latency', ...rest] = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = rest.indexOf(name);
  return at >= 0 ? Number(rest[at + 1]) : fallback;
};
const rng = new Rng(42);
const randomUnit = (dim: number, from = rng) => normalizeL2(Float32Array.from({ length: dim }, () => from.nextFloat() * 2 - 1));

/** seconds since `wall` (performance.now()) and CPU seconds of this process since `cpu` (process.cpuUsage()): the machine is shared */
const elapsed = (wall: number, cpu: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(cpu);
  return `${((performance.now() - wall) / 1000).toFixed(1)} s (${((used.user + used.system) / 1e6).toFixed(1)} s CPU)`;
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

/** A store of `n` chunks: 500-character slices of the corpora, random vectors, 100 chunks a file. */
async function fillStore(rag: Rag, n: number): Promise<number> {
  const text = ['botchan.txt', 'tinyshakespeare.txt', 'tinystories-sample-197k.txt'].map((f) => readFileSync(join(SHARED, 'data', 'text', f), 'utf8')).join('\n');
  await rag.store.bind(rag.embedder.id, true);
  const started = performance.now();
  for (let file = 0; file * 100 < n; file++) {
    const chunks = Array.from({ length: Math.min(100, n - file * 100) }, (_, j) => {
      const start = ((file * 100 + j) * 500) % (text.length - 500);
      return { start, end: start + 500, text: text.slice(start, start + 500), embedding: randomUnit(rag.embedder.id.dim) };
    });
    await rag.store.putFile(`/bench/file${file}.txt`, String(file), chunks);
  }
  return n / ((performance.now() - started) / 1000);
}

async function latency(): Promise<void> {
  const n = option('--chunks', 10_000), queries = option('--queries', 200);
  const questions = (JSON.parse(readFileSync(new URL('./rag-questions.json', import.meta.url), 'utf8')) as { q: string }[]).map((q) => q.q);
  const server = await startWireServer();
  const db = join(WORK, 'latency-store');
  rmSync(db, { recursive: true, force: true });
  for (const [name, where] of [['embedded (PGlite folder)', db], ['wire (pg → pglite-socket)', server.url]] as const) {
    const rag = await Rag.open({ db: where, embedModel: defaultModelPath('embed') });
    try {
      const rate = await fillStore(rag, n);
      for (const options of [{ mode: 'hybrid' }, { mode: 'vector' }, { mode: 'lexical' }] as SearchOptions[]) {
        await rag.search(questions[0], options); // warm-up
        const times: number[] = [];
        for (let i = 0; i < queries; i++) {
          const started = performance.now();
          await rag.search(questions[i % questions.length], { k: 5, ...options });
          times.push(performance.now() - started);
        }
        times.sort((a, b) => a - b);
        console.log(`${name}, ${await rag.store.chunkCount()} chunks (written at ${rate.toFixed(0)} chunks/s without embedding): ${options.mode} k=5 `
          + `p50 ${percentile(times, 0.5).toFixed(1)} ms, p99 ${percentile(times, 0.99).toFixed(1)} ms over ${queries} queries`);
      }
    } finally {
      await rag.close();
    }
  }
  await server.stop();
}

/**
 * HNSW recall@10 against exact k-NN: --n random unit vectors of 384 dimensions into one table, then for each
 * index shape (--m and --ef-construction, comma-separated lists, one index after another on the same rows) the
 * build time and, for each --ef-search value, recall and query latency p50/p99 over --queries random queries.
 * --reuse: the rows the last run left (inserting 100k vectors takes minutes), and its index unless --m is given.
 */
async function hnsw(): Promise<void> {
  const n = option('--n', 100_000), queries = option('--queries', 100), dim = 384, k = 10;
  const list = (name: string, fallback: string) => (rest.includes(name) ? rest[rest.indexOf(name) + 1] : fallback).split(',').map(Number);
  const reuse = rest.includes('--reuse');
  const shapes = list('--m', String(HNSW_INDEX.m)).flatMap((m) => list('--ef-construction', String(HNSW_INDEX.efConstruction)).map((efConstruction) => ({ m, efConstruction })));
  const efSearches = list('--ef-search', '40,100,200,400,1000');
  const db = join(WORK, 'hnsw-store');
  if (!reuse) rmSync(db, { recursive: true, force: true });
  const store = await RagStore.open(db);
  const sql = store.sql;
  try {
    let vectors: Float32Array; // [n, dim]
    let started = performance.now(), cpu = process.cpuUsage();
    if (reuse) {
      const rows = await sql.query<{ embedding: string }>('SELECT embedding::text AS embedding FROM bench_vectors ORDER BY id');
      vectors = new Float32Array(rows.length * dim);
      rows.forEach((r, id) => vectors.set(JSON.parse(r.embedding) as number[], id * dim));
      console.log(`reusing ${rows.length} vectors of ${dim} dimensions`);
    } else {
      await sql.exec(`CREATE TABLE bench_vectors (id integer PRIMARY KEY, embedding vector(${dim}) NOT NULL)`);
      vectors = new Float32Array(n * dim);
      for (let first = 0; first < n; first += 1000) {
        const batch = Array.from({ length: Math.min(1000, n - first) }, (_, j) => {
          const v = randomUnit(dim);
          vectors.set(v, (first + j) * dim);
          return vectorLiteral(v);
        });
        await sql.query('INSERT INTO bench_vectors SELECT $2::int + o::int - 1, v::vector FROM unnest($1::text[]) WITH ORDINALITY AS u(v, o)', [batch, first]);
      }
      console.log(`inserted ${n} vectors of ${dim} dimensions in ${elapsed(started, cpu)}`);
    }
    const count = vectors.length / dim;
    const queryRng = new Rng(7); // the queries are the same whether the rows are new or reused
    const qs = Array.from({ length: queries }, () => randomUnit(dim, queryRng));
    const exact = qs.map((q) => {
      const scores = new Float32Array(count);
      for (let id = 0; id < count; id++) {
        let s = 0;
        for (let i = 0; i < dim; i++) s += vectors[id * dim + i] * q[i];
        scores[id] = s;
      }
      return new Set(Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]).slice(0, k));
    });
    /** recall@k and latency over the queries, each run by `search` inside its own transaction */
    const measure = async (label: string, settings: string, search: string, params: (q: Float32Array) => unknown[]) => {
      let overlap = 0;
      const times: number[] = [];
      for (let i = 0; i < queries; i++) {
        const t = performance.now();
        const rows = await sql.transaction(async (tx) => {
          await tx.exec(settings);
          return tx.query<{ id: number }>(search, params(qs[i]));
        });
        times.push(performance.now() - t);
        overlap += rows.filter((r) => exact[i].has(r.id)).length;
      }
      times.sort((a, b) => a - b);
      console.log(`  ${label}: recall@${k} ${(overlap / (queries * k)).toFixed(4)} over ${queries} queries, `
        + `p50 ${percentile(times, 0.5).toFixed(1)} ms, p99 ${percentile(times, 0.99).toFixed(1)} ms`);
    };
    for (const shape of reuse && !rest.includes('--m') ? [undefined] : shapes) {
      if (shape === undefined) {
        const [{ options }] = await sql.query<{ options: string[] }>("SELECT reloptions AS options FROM pg_class WHERE relname = 'bench_hnsw'");
        console.log(`the index left by the last run: ${options.join(', ')}`);
      } else {
        started = performance.now();
        cpu = process.cpuUsage();
        await sql.exec(`DROP INDEX IF EXISTS bench_hnsw; SET maintenance_work_mem = '1GB';
          CREATE INDEX bench_hnsw ON bench_vectors USING hnsw (embedding vector_cosine_ops) WITH (m = ${shape.m}, ef_construction = ${shape.efConstruction})`);
        console.log(`m ${shape.m}, ef_construction ${shape.efConstruction}: HNSW index built in ${elapsed(started, cpu)}`);
      }
      for (const ef of efSearches) {
        await measure(`ef_search ${ef}`, `SET LOCAL hnsw.ef_search = ${ef}`, 'SELECT id FROM bench_vectors ORDER BY embedding <=> $1::vector LIMIT $2', (q) => [vectorLiteral(q), k]);
      }
    }
  } finally {
    await store.close();
  }
}

await (what === 'hnsw' ? hnsw() : latency());
