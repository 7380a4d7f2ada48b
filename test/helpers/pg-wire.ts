// A PostgreSQL server for the wire-protocol path of tests: an in-memory PGlite with pgvector, served by
// @electric-sql/pglite-socket on a Unix socket in a temporary folder, and the postgres:// URL that reaches it.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite/vector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface WireServer {
  url: string;
  stop(): Promise<void>;
}

export async function startWireServer(): Promise<WireServer> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-pgwire-'));
  const db = await PGlite.create({ extensions: { vector } });
  // node-postgres finds a server's socket as HOST/.s.PGSQL.PORT
  const server = new PGLiteSocketServer({ db, path: join(dir, '.s.PGSQL.5432') });
  await server.start();
  return {
    url: `postgresql://postgres@localhost/postgres?host=${encodeURIComponent(dir)}`,
    async stop() {
      await server.stop();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
