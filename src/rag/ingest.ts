// `kiln rag index`: the text files under the given paths into the store. A file whose content hash is the one
// stored is left alone; a new or changed one is chunked, embedded (chunks of several files batched together) and
// written in one transaction of its own; a stored file that is gone from under the given paths is removed.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { checkChunkOptions, chunkText, extractText, NotTextError, TEXT_EXTENSIONS, type ChunkOptions, type TextChunk } from './chunk.js';
import type { Embedder } from './embedder.js';
import type { RagStore } from './store.js';

export class MissingPathError extends Error {
  constructor(readonly path: string) {
    super(`no such file or folder: ${path}`);
    this.name = 'MissingPathError';
  }
}

export interface IndexEvents {
  /** a file left out, and why */
  onSkip?(path: string, reason: string): void;
  /** `done` of `total` files looked at; `chunks` embedded so far */
  onProgress?(done: number, total: number, chunks: number): void;
}

export interface IndexReport {
  /** files embedded and written (new or changed) */
  indexed: string[];
  unchanged: number;
  removed: string[];
  skipped: number;
  /** chunks embedded */
  chunks: number;
}

/** The files under `paths` (folders recursively, in name order) as absolute paths; a MissingPathError for a path that is not there. */
export function collectFiles(paths: readonly string[], onSkip?: (path: string, reason: string) => void): string[] {
  const files: string[] = [];
  const walk = (path: string, named: boolean): void => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const name of readdirSync(path).sort()) if (!name.startsWith('.')) walk(join(path, name), false);
    } else if (stat.isFile()) {
      if (TEXT_EXTENSIONS.includes(extname(path).toLowerCase())) files.push(path);
      else if (named) onSkip?.(path, `not a text file kiln indexes (${TEXT_EXTENSIONS.join(', ')})`);
    }
  };
  for (const path of paths) {
    if (!existsSync(path)) throw new MissingPathError(path);
    walk(resolve(path), true);
  }
  return [...new Set(files)];
}

/** Is `file` one of `roots` or under one of them? */
function underRoots(file: string, roots: readonly string[]): boolean {
  return roots.some((root) => file === root || file.startsWith(root.endsWith(sep) ? root : root + sep));
}

interface PendingFile {
  path: string;
  hash: string;
  chunks: TextChunk[];
}

/**
 * Indexes `paths` into `store` with `embedder`, binding the store to it first (`reindex`: rebuilding a store bound
 * to another model) once the paths are known to be there.
 */
export async function indexPaths(store: RagStore, embedder: Embedder, paths: readonly string[], chunking: ChunkOptions, reindex: boolean, events: IndexEvents = {}): Promise<IndexReport> {
  const report: IndexReport = { indexed: [], unchanged: 0, removed: [], skipped: 0, chunks: 0 };
  const skip = (path: string, reason: string): void => {
    report.skipped++;
    events.onSkip?.(path, reason);
  };
  checkChunkOptions(chunking);
  const files = collectFiles(paths, skip);
  await store.bind(embedder.id, reindex);
  const roots = paths.map((p) => resolve(p));
  const present = new Set(files);
  const stored = new Map((await store.files()).map((f) => [f.path, f.hash]));
  const size = Math.min(chunking.size, embedder.contextLength - 2); // room for the tokenizer's BOS/CLS and SEP

  for (const path of stored.keys()) {
    if (underRoots(path, roots) && !present.has(path)) {
      await store.removeFile(path);
      report.removed.push(path);
    }
  }

  let pending: PendingFile[] = [];
  const flush = async (): Promise<void> => {
    const embeddings = await embedder.embed(pending.flatMap((f) => f.chunks.map((c) => c.text)));
    let at = 0;
    for (const file of pending) {
      await store.putFile(file.path, file.hash, file.chunks.map((c) => ({ ...c, embedding: embeddings[at++] })));
      report.indexed.push(file.path);
      report.chunks += file.chunks.length;
    }
    pending = [];
  };

  for (let i = 0; i < files.length; i++) {
    const path = files[i];
    const bytes = readFileSync(path);
    const hash = createHash('sha256').update(bytes).digest('hex');
    if (stored.get(path) === hash) {
      report.unchanged++;
    } else {
      try {
        const extracted = extractText(path, bytes);
        // the text is embedded; the range stored is the file's
        const chunks = chunkText(extracted.text, (word) => embedder.countTokens(word), { size, overlap: Math.min(chunking.overlap, size - 1) })
          .map((c) => { const [start, end] = extracted.source(c.start, c.end); return { ...c, start, end }; });
        pending.push({ path, hash, chunks });
      } catch (e) {
        if (!(e instanceof NotTextError)) throw e;
        skip(path, e.reason);
        if (stored.has(path)) {
          await store.removeFile(path); // it was text once; it is not now
          report.removed.push(path);
        }
      }
      if (pending.reduce((n, f) => n + f.chunks.length, 0) >= embedder.batchSize * 4) await flush();
    }
    events.onProgress?.(i + 1, files.length, report.chunks);
  }
  if (pending.length > 0) await flush();
  events.onProgress?.(files.length, files.length, report.chunks);
  return report;
}
