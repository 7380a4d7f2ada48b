// The two ways kiln reaches PostgreSQL, behind one small interface: PGlite (WebAssembly PostgreSQL with pgvector)
// in a folder, the embedded default; or a server at a postgres:// URL through node-postgres. The same SQL runs on
// both. A PGlite folder is guarded by a lock file beside it, FOLDER.lock (PGlite has no lock of its own, two
// processes writing one folder would corrupt it, and initdb wants the folder empty); a store that cannot be opened gives a RagStoreError and is left as it was.

import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import type { PGlite } from '@electric-sql/pglite';

export class RagStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RagStoreError';
  }
}

export interface Sql {
  /** one statement with $1… parameters; its rows */
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** several statements, no parameters */
  exec(sql: string): Promise<void>;
  /** `fn` inside BEGIN … COMMIT (ROLLBACK if it throws) */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}


/** Opens (creating if need be) the PGlite store in `dir`, with the vector extension loaded from the npm package. */
export async function openPGlite(dir: string): Promise<Sql> {
  mkdirSync(dir, { recursive: true });
  const release = lockFolder(dir);
  const fresh = readdirSync(dir).length === 0;
  let db: PGlite;
  try {
    // loaded when a store is opened, not with every kiln command
    const [{ PGlite }, { vector }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite/vector')]);
    db = await PGlite.create({ dataDir: dir, extensions: { vector } });
  } catch (e) {
    release();
    throw new RagStoreError(`cannot open the store in ${dir}${fresh ? '' : ' (left as it is)'}: ${(e as Error).message ?? e}`);
  }
  const sql: Sql = {
    query: async <T>(text: string, params?: unknown[]) => (await db.query<T>(text, params)).rows,
    exec: async (text) => { await db.exec(text); },
    transaction: (fn) => db.transaction((tx) => fn({
      query: async <T>(text: string, params?: unknown[]) => (await tx.query<T>(text, params)).rows,
      exec: async (text) => { await tx.exec(text); },
      transaction: () => { throw new RagStoreError('nested transaction'); },
      close: async () => {},
    })),
    close: async () => {
      await db.close();
      release();
    },
  };
  return sql;
}

/** Takes `dir`'s lock file, or a RagStoreError naming the process that holds it; a lock left by a dead process is taken over. */
function lockFolder(dir: string): () => void {
  const path = `${dir.replace(/[\\/]+$/, '')}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new RagStoreError(`cannot lock the store in ${dir}: ${(e as Error).message}`);
      const holder = Number(readFileSync(path, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && processAlive(holder)) {
        throw new RagStoreError(`the store in ${dir} is in use by process ${holder} (lock file ${path})`);
      }
      rmSync(path, { force: true }); // its process is gone (killed): the store itself recovers from its WAL
    }
  }
  throw new RagStoreError(`cannot lock the store in ${dir}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Connects to a PostgreSQL server (pgvector installed) at `url`. One connection: queries and transactions run one at a time. */
export async function openPostgres(url: string): Promise<Sql> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (e) {
    throw new RagStoreError(`cannot connect to ${redact(url)}: ${(e as Error).message}`);
  }
  let queue: Promise<unknown> = Promise.resolve();
  // every use of the connection waits for the one before it (a transaction holds it throughout)
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  };
  const query = async <T>(text: string, params?: unknown[]) => (await client.query(text, params)).rows as T[];
  const exec = async (text: string) => { await client.query(text); };
  const inner: Sql = { query, exec, transaction: () => { throw new RagStoreError('nested transaction'); }, close: async () => {} };
  return {
    query: (text, params) => serial(() => query(text, params)),
    exec: (text) => serial(() => exec(text)),
    transaction: (fn) => serial(async () => {
      await client.query('BEGIN');
      try {
        const result = await fn(inner);
        await client.query('COMMIT');
        return result;
      } catch (e) {
        await client.query('ROLLBACK');
        throw e;
      }
    }),
    close: () => serial(() => client.end()),
  };
}

/** postgres://user:secret@host → postgres://user:***@host, for messages */
function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

/** A `--db` value: a postgres:// URL, else a PGlite folder. */
export function openSql(db: string): Promise<Sql> {
  return /^postgres(ql)?:\/\//.test(db) ? openPostgres(db) : openPGlite(db);
}

