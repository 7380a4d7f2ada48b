// The RAG store's schema and its queries, the same SQL on PGlite and on a PostgreSQL server:
//   kiln_rag_meta   key → value: schema version, and the embedding model the vectors came from (name, dimension)
//   kiln_rag_files  one row per indexed file: path, content hash
//   kiln_rag_chunks one row per chunk: its file, character range, text, embedding vector(dim) (HNSW, cosine) and
//                   a generated tsvector (GIN) for full-text search
// The chunks table is made when the first embedding model is bound, since its vector column's width is the model's.

import { openSql, RagStoreError, type Sql } from './sql.js';

export { RagStoreError };

/** The embedding model a store's vectors came from. */
export interface EmbedModelId {
  /** the model's name and a hash of its file */
  name: string;
  dim: number;
}

export class EmbedModelMismatchError extends Error {
  constructor(readonly stored: EmbedModelId, readonly given: EmbedModelId) {
    super(`the store was built with embedding model ${stored.name} (${stored.dim} dimensions), not ${given.name} (${given.dim} dimensions): `
      + 'use the same model, or rebuild the store with --reindex');
    this.name = 'EmbedModelMismatchError';
  }
}

export interface ChunkRow {
  /** character range [start, end) of the file (its decoded text; for HTML, the markup the chunk's text came from) */
  start: number;
  end: number;
  text: string;
  embedding: Float32Array;
}

export interface StoredFile {
  id: number;
  path: string;
  hash: string;
  chunks: number;
}

/** A chunk found by a search, with its rank score. */
export interface ChunkHit {
  id: number;
  path: string;
  ordinal: number;
  start: number;
  end: number;
  text: string;
  score: number;
}

/**
 * The HNSW index's shape (pgvector's m and ef_construction) and the query-time candidate list (hnsw.ef_search,
 * pgvector's largest): the smallest measured that keeps recall@10 ≥ 0.95 against exact search on 100k random 384-d
 * unit vectors, HNSW's hardest case (bench/rag-bench.ts hnsw: 0.962; m 32 / ef_construction 64: 0.864; pgvector's
 * defaults m 16, ef_search 40 fall far below). Recall over speed: writes cost about 2–3× pgvector's default shape.
 */
export const HNSW_INDEX = { m: 48, efConstruction: 96, efSearch: 1000 };

/** Schema versions, each the SQL that takes a store from the version before to it. */
const MIGRATIONS: string[] = [
  `CREATE EXTENSION IF NOT EXISTS vector;
   CREATE TABLE kiln_rag_meta (key text PRIMARY KEY, value text NOT NULL);
   CREATE TABLE kiln_rag_files (id serial PRIMARY KEY, path text UNIQUE NOT NULL, hash text NOT NULL, chunks integer NOT NULL);`,
  // an HTML chunk's range was one of the extracted text, now it is one of the file: such files are indexed again
  `DELETE FROM kiln_rag_files WHERE path ~* '\\.html?$';`,
];

/** the text-search configuration of the tsvector and of queries */
const TS_CONFIG = 'english';

/** pgvector's literal of a vector: '[0.1,0.2,…]' */
export function vectorLiteral(v: Float32Array | number[]): string {
  return `[${Array.from(v).join(',')}]`;
}

function parseVector(text: string): Float32Array {
  return Float32Array.from(JSON.parse(text) as number[]);
}

export class RagStore {
  private constructor(readonly sql: Sql, private model: EmbedModelId | undefined) {}

  /** Opens the store at `db` (a PGlite folder or a postgres:// URL), creating or migrating its schema. */
  static async open(db: string): Promise<RagStore> {
    const sql = await openSql(db);
    try {
      await migrate(sql);
      return new RagStore(sql, await boundModel(sql));
    } catch (e) {
      await sql.close();
      throw e instanceof RagStoreError ? e : new RagStoreError(`cannot use the store at ${db}: ${(e as Error).message}`);
    }
  }

  /** the embedding model the store's vectors came from; undefined while it has none */
  get embedModel(): EmbedModelId | undefined {
    return this.model;
  }

  /**
   * Binds the store to `model`: the first model makes the chunks table; another one is refused
   * (EmbedModelMismatchError) unless `reindex`, which empties the store and rebinds it.
   */
  async bind(model: EmbedModelId, reindex = false): Promise<void> {
    const same = this.model?.name === model.name && this.model.dim === model.dim;
    if (same && !reindex) return;
    if (this.model && !reindex) throw new EmbedModelMismatchError(this.model, model);
    if (!Number.isInteger(model.dim) || model.dim < 1 || model.dim > 16000) throw new RagStoreError(`embedding dimension ${model.dim} is out of range`);
    await this.sql.transaction(async (tx) => {
      await tx.exec(`DROP TABLE IF EXISTS kiln_rag_chunks; DELETE FROM kiln_rag_files;
        CREATE TABLE kiln_rag_chunks (
          id bigserial PRIMARY KEY,
          file_id integer NOT NULL REFERENCES kiln_rag_files(id) ON DELETE CASCADE,
          ordinal integer NOT NULL,
          start_char integer NOT NULL,
          end_char integer NOT NULL,
          text text NOT NULL,
          embedding vector(${model.dim}) NOT NULL,
          tsv tsvector GENERATED ALWAYS AS (to_tsvector('${TS_CONFIG}', text)) STORED);
        CREATE INDEX kiln_rag_chunks_file ON kiln_rag_chunks (file_id);
        CREATE INDEX kiln_rag_chunks_hnsw ON kiln_rag_chunks USING hnsw (embedding vector_cosine_ops) WITH (m = ${HNSW_INDEX.m}, ef_construction = ${HNSW_INDEX.efConstruction});
        CREATE INDEX kiln_rag_chunks_tsv ON kiln_rag_chunks USING gin (tsv);`);
      await setMeta(tx, 'embed_model', model.name);
      await setMeta(tx, 'embed_dim', String(model.dim));
    });
    this.model = model;
  }

  /** Checks that queries embedded by `model` may search this store. */
  checkModel(model: EmbedModelId): void {
    if (!this.model) throw new RagStoreError('the store is empty: index some files first (kiln rag index PATH… --embed MODEL)');
    if (this.model.name !== model.name || this.model.dim !== model.dim) throw new EmbedModelMismatchError(this.model, model);
  }

  async files(): Promise<StoredFile[]> {
    return this.sql.query<StoredFile>('SELECT id, path, hash, chunks FROM kiln_rag_files ORDER BY path');
  }

  /** Replaces `path`'s chunks with `chunks`, in one transaction: a killed run leaves the old file or the new one, never a part. */
  async putFile(path: string, hash: string, chunks: readonly ChunkRow[]): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query('DELETE FROM kiln_rag_files WHERE path = $1', [path]);
      const [{ id }] = await tx.query<{ id: number }>('INSERT INTO kiln_rag_files (path, hash, chunks) VALUES ($1, $2, $3) RETURNING id', [path, hash, chunks.length]);
      // all rows in one statement, the columns as arrays
      await tx.query(`INSERT INTO kiln_rag_chunks (file_id, ordinal, start_char, end_char, text, embedding)
        SELECT $1, o - 1, s, e, t, v::vector FROM unnest($2::int[], $3::int[], $4::text[], $5::text[]) WITH ORDINALITY AS u(s, e, t, v, o)`,
      [id, chunks.map((c) => c.start), chunks.map((c) => c.end), chunks.map((c) => c.text), chunks.map((c) => vectorLiteral(c.embedding))]);
    });
  }

  async removeFile(path: string): Promise<void> {
    await this.sql.query('DELETE FROM kiln_rag_files WHERE path = $1', [path]);
  }

  async chunkCount(): Promise<number> {
    if (!this.model) return 0;
    const [{ n }] = await this.sql.query<{ n: string }>('SELECT count(*) AS n FROM kiln_rag_chunks');
    return Number(n);
  }

  /**
   * The k chunks nearest `query` by cosine distance, through the HNSW index (score: cosine similarity);
   * `efSearch` is the index's candidate list (pgvector's hnsw.ef_search, at least k).
   */
  async nearest(query: Float32Array, k: number, efSearch = Math.max(HNSW_INDEX.efSearch, k)): Promise<ChunkHit[]> {
    return this.sql.transaction(async (tx) => {
      await tx.exec(`SET LOCAL hnsw.ef_search = ${Math.min(1000, Math.trunc(efSearch))}`);
      return hits(await tx.query<RawHit>(`${HIT_COLUMNS}, 1 - (c.embedding <=> $1::vector) AS score ${HIT_FROM}
        ORDER BY c.embedding <=> $1::vector LIMIT $2`, [vectorLiteral(query), k]));
    });
  }

  /** The k chunks best matching `query`'s words by full-text rank (any word may match; stop words drop out). */
  async fullText(query: string, k: number): Promise<ChunkHit[]> {
    const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
    if (words.length === 0) return [];
    return hits(await this.sql.query<RawHit>(`${HIT_COLUMNS}, ts_rank(c.tsv, q) AS score ${HIT_FROM}, to_tsquery('${TS_CONFIG}', $1) q
      WHERE c.tsv @@ q ORDER BY score DESC, c.id LIMIT $2`, [words.join(' | '), k]));
  }

  /** the stored embeddings of chunks `ids` */
  async embeddings(ids: readonly number[]): Promise<Map<number, Float32Array>> {
    const rows = await this.sql.query<{ id: string; embedding: string }>('SELECT id, embedding::text AS embedding FROM kiln_rag_chunks WHERE id = ANY($1::bigint[])', [ids]);
    return new Map(rows.map((r) => [Number(r.id), parseVector(r.embedding)]));
  }

  close(): Promise<void> {
    return this.sql.close();
  }
}

interface RawHit {
  id: string;
  path: string;
  ordinal: number;
  start_char: number;
  end_char: number;
  text: string;
  score: number;
}

const HIT_COLUMNS = 'SELECT c.id, f.path, c.ordinal, c.start_char, c.end_char, c.text';
const HIT_FROM = 'FROM kiln_rag_chunks c JOIN kiln_rag_files f ON f.id = c.file_id';

function hits(rows: RawHit[]): ChunkHit[] {
  return rows.map((r) => ({ id: Number(r.id), path: r.path, ordinal: r.ordinal, start: r.start_char, end: r.end_char, text: r.text, score: Number(r.score) }));
}

async function setMeta(sql: Sql, key: string, value: string): Promise<void> {
  await sql.query('INSERT INTO kiln_rag_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', [key, value]);
}

/** Brings the schema up to the latest version, each step in its own transaction; a newer store than kiln knows is refused. */
async function migrate(sql: Sql): Promise<void> {
  const [{ exists }] = await sql.query<{ exists: boolean }>("SELECT to_regclass('kiln_rag_meta') IS NOT NULL AS exists");
  const rows = exists ? await sql.query<{ value: string }>("SELECT value FROM kiln_rag_meta WHERE key = 'schema_version'") : [];
  const version = rows.length > 0 ? Number(rows[0].value) : 0;
  if (version > MIGRATIONS.length) throw new RagStoreError(`the store's schema is version ${version}, newer than this kiln knows (${MIGRATIONS.length})`);
  for (let v = version; v < MIGRATIONS.length; v++) {
    await sql.transaction(async (tx) => {
      await tx.exec(MIGRATIONS[v]);
      await setMeta(tx, 'schema_version', String(v + 1));
    });
  }
}

async function boundModel(sql: Sql): Promise<EmbedModelId | undefined> {
  const rows = await sql.query<{ key: string; value: string }>("SELECT key, value FROM kiln_rag_meta WHERE key IN ('embed_model', 'embed_dim')");
  const meta = new Map(rows.map((r) => [r.key, r.value]));
  const name = meta.get('embed_model');
  return name === undefined ? undefined : { name, dim: Number(meta.get('embed_dim')) };
}
