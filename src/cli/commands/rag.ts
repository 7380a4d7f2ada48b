// `kiln rag index PATH… | search QUERY | ask QUESTION`: retrieval-augmented generation over a store of document
// chunks — PGlite in a folder (default .kiln/rag) or a PostgreSQL server (--db postgres://…) — embedded by
// --embed MODEL (default: models/kiln-brown-embed.gguf).

import { relative } from 'node:path';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { decimal, integer } from '../options.js';
import { defaultModelPath, modelPath } from '../default-model.js';
import { Progress } from '../progress.js';
import { DEFAULT_CHUNKING, DEFAULT_DB, DEFAULT_VECTOR_WEIGHT, Rag, type SearchMode } from '../../rag/rag.js';

const shown = (path: string): string => relative(process.cwd(), path) || path;

function storeCommand(name: string): Command<[], { db: string; embed?: string }> {
  return new Command(name)
    .option('--db <folder|url>', 'the store: a PGlite folder or a postgres:// URL', DEFAULT_DB)
    .option('--embed <model>', 'the embedding model, a GGUF file (default: models/kiln-brown-embed.gguf)');
}

async function withRag<T>(o: { db: string; embed?: string }, fn: (rag: Rag) => Promise<T>): Promise<T> {
  const rag = await Rag.open({ db: o.db, embedModel: o.embed === undefined ? defaultModelPath('embed') : modelPath(o.embed) });
  try {
    return await fn(rag);
  } finally {
    await rag.close();
  }
}

function indexCommand(): CommandUnknownOpts {
  return storeCommand('index')
    .summary('index .txt, .md and .html files (folders recursively) into the store')
    .argument('<PATH...>', 'files and folders')
    .addOption(new Option('--chunk-tokens <n>', 'tokens per chunk').argParser(integer(1)).default(DEFAULT_CHUNKING.size))
    .addOption(new Option('--overlap <n>', 'tokens each chunk shares with the one before').argParser(integer(0)).default(DEFAULT_CHUNKING.overlap))
    .option('--reindex', 'empty the store and rebuild it (needed to change the embedding model)')
    .action(async (paths, o) => withRag(o, async (rag) => {
      let progress: Progress | undefined;
      const started = performance.now();
      const report = await rag.index(paths, {
        chunking: { size: o.chunkTokens, overlap: o.overlap },
        reindex: o.reindex,
        onSkip: (path, reason) => (progress ? progress.log(`skipped ${shown(path)}: ${reason}`) : console.error(`skipped ${shown(path)}: ${reason}`)),
        onProgress: (done, total, chunks) => {
          progress ??= new Progress('file', total);
          progress.update(done, `${chunks} chunks embedded`, total);
        },
      });
      progress?.stop();
      const seconds = (performance.now() - started) / 1000;
      console.log(`indexed ${report.indexed.length} files (${report.chunks} chunks, ${(report.chunks / seconds).toFixed(1)} chunks/s), `
        + `${report.unchanged} unchanged, ${report.removed.length} removed, ${report.skipped} skipped; the store holds ${await rag.store.chunkCount()} chunks`);
    }));
}

function searchOptions<O extends { db: string; embed?: string }>(command: Command<[string], O>, k: number) {
  return command
    .addOption(new Option('-k <n>', 'chunks to return').argParser(integer(1, 1000)).default(k))
    .addOption(new Option('--mode <mode>', 'vector and full-text fused, or one of them').choices(['hybrid', 'vector', 'lexical'] as const).default('hybrid' as const))
    .option('--rerank', 're-order the fused candidates by exact cosine similarity to the query')
    .addOption(new Option('--vector-weight <w>', `the vector ranking's weight in hybrid fusion, full text's being 1 (default ${DEFAULT_VECTOR_WEIGHT}: the default embedding model is weak)`).argParser(decimal))
    .option('--json', 'print JSON');
}

function searchCommand(): CommandUnknownOpts {
  return searchOptions(storeCommand('search')
    .summary('the chunks that best match a query (vector + full-text, fused by reciprocal rank)')
    .argument('<QUERY>', 'what to look for'), 5)
    .action(async (query, o) => withRag(o, async (rag) => {
      const hits = await rag.search(query, { k: o.k, mode: o.mode as SearchMode, rerank: o.rerank, vectorWeight: o.vectorWeight });
      if (o.json) {
        console.log(JSON.stringify(hits.map((h) => ({ path: h.path, chunk: h.ordinal, start: h.start, end: h.end, text: h.text, score: h.score }))));
        return;
      }
      hits.forEach((h, i) => console.log(`${i + 1}. ${shown(h.path)} #${h.ordinal} [${h.start}, ${h.end}) score ${h.score.toFixed(4)}\n   ${h.text.replace(/\s+/g, ' ').slice(0, 200)}`));
    }));
}

function askCommand(): CommandUnknownOpts {
  return searchOptions(storeCommand('ask')
    .summary('answer a question from the store\'s top chunks, with numbered citations')
    .argument('<QUESTION>', 'the question')
    .option('--model <model>', 'the chat model, a GGUF file (default: models/kiln-brown.gguf)')
    .addOption(new Option('-n, --n-predict <n>', 'tokens to generate at most').argParser(integer(1)).default(64))
    .addOption(new Option('--seed <n>', 'sampling seed').argParser(integer(0)).default(1)), 3)
    .action(async (question, o) => withRag(o, async (rag) => {
      const { answer, sources } = await rag.ask(question, {
        model: modelPath(o.model), k: o.k, mode: o.mode as SearchMode, rerank: o.rerank, vectorWeight: o.vectorWeight,
        sampling: { max_tokens: o.nPredict, seed: o.seed },
      });
      if (o.json) {
        console.log(JSON.stringify({ answer, sources: sources.map(({ path, chunk, start, end, text, score }) => ({ path, chunk, start, end, text, score })) }));
        return;
      }
      console.log(answer);
      console.log('\nSources:');
      for (const s of sources) console.log(`[${s.n}] ${shown(s.path)} chunk ${s.chunk}, characters ${s.start}–${s.end}: ${s.text.replace(/\s+/g, ' ').slice(0, 120)}…`);
    }));
}

export function ragCommand(): CommandUnknownOpts {
  return new Command('rag')
    .summary('retrieval-augmented generation: index documents, search them, answer with citations')
    .addCommand(indexCommand())
    .addCommand(searchCommand())
    .addCommand(askCommand());
}
