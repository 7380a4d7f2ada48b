// `kiln rag index` killed with SIGKILL midway leaves a consistent store (every file's rows whole: written in one
// transaction each), its lock is taken over, and the next run indexes only the files the killed one had not
// written.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rag } from '../../src/rag/rag.js';
import { defaultModelPath } from '../../src/cli/default-model.js';
import { sharedPath } from '../shared.js';

const FILES = 60;
const root = mkdtempSync(join(tmpdir(), 'kiln-rag-kill-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** rows of each stored file against the chunk count its file row records */
async function inconsistentFiles(rag: Rag): Promise<string[]> {
  const rows = await rag.store.sql.query<{ path: string; chunks: number; n: string }>(
    'SELECT f.path, f.chunks, count(c.id) AS n FROM kiln_rag_files f LEFT JOIN kiln_rag_chunks c ON c.file_id = f.id GROUP BY f.id');
  return rows.filter((r) => Number(r.n) !== r.chunks).map((r) => r.path);
}

test('SIGKILL midway through kiln rag index leaves a consistent store; the next run finishes the job', { timeout: 300_000 }, async () => {
  const docs = join(root, 'docs');
  const db = join(root, 'store');
  mkdirSync(docs);
  const stories = readFileSync(sharedPath('data', 'text', 'tinystories-sample-197k.txt'), 'utf8').split(/\n\s*\n/);
  const perFile = Math.floor(stories.length / FILES);
  for (let i = 0; i < FILES; i++) writeFileSync(join(docs, `story${String(i).padStart(2, '0')}.txt`), stories.slice(i * perFile, (i + 1) * perFile).join('\n\n'));

  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run-dev.ts', 'rag', 'index', docs, '--embed', defaultModelPath(), '--db', db, '--chunk-tokens', '32', '--overlap', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  // killed once the progress shows files written, long before the last one
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    const m = [...stderr.matchAll(/file (\d+)\/\d+ \| (\d+) chunks embedded/g)].at(-1);
    if (m && Number(m[2]) > 0 && Number(m[1]) < FILES) child.kill('SIGKILL');
  });
  assert.equal(await exited, 'SIGKILL', `the run ended before it was killed:\n${stderr}`);

  const rag = await Rag.open({ db, embedModel: defaultModelPath() }); // the dead run's lock is taken over
  try {
    assert.deepEqual(await inconsistentFiles(rag), []);
    const written = (await rag.store.files()).length;
    assert.ok(written > 0 && written < FILES, `${written} files written before the kill`);
    const report = await rag.index([docs], { chunking: { size: 32, overlap: 0 } });
    assert.equal(report.unchanged, written);
    assert.equal(report.indexed.length, FILES - written);
    assert.equal((await rag.store.files()).length, FILES);
    assert.deepEqual(await inconsistentFiles(rag), []);
  } finally {
    await rag.close();
  }
});
