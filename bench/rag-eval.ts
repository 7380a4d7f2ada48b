// Retrieval evaluation of `kiln rag`: the questions of bench/rag-questions.json (written by hand from corpora in
// ../shared/data/text; each names the file and an exact phrase of it that answers it) against a store of those
// files, for each embedding model given: recall@5 of lexical (full-text) only, vector only and hybrid (weighted RRF)
// search, and hybrid's recall at several vector weights on the questions at odd and at even places apart (a weight
// chosen on one half is judged on the other). A question counts as found when one of the top 5 chunks is from its
// file and overlaps an occurrence of the phrase. Models: the default embedding model and a random-weight model of
// the same shape and tokenizer (mean pooling), made here. Each model's store is kept under tmp/rag-eval.
//   npx tsx bench/rag-eval.ts [--k 5] [MODEL.gguf | random …]

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_VECTOR_WEIGHT, Rag, type SearchOptions } from '../src/rag/rag.js';
import { defaultModelPath } from '../src/cli/default-model.js';
import { metaString, metaU32 } from '../src/gguf/writer.js';
import { openModelForTraining, writeLike } from '../src/train/load-model.js';
import { createModel } from '../src/train/llama-model.js';
import { Rng } from '../src/generate/rng.js';

const SHARED = process.env.KILN_SHARED ?? resolve('..', 'shared');
const TEXT = join(SHARED, 'data', 'text');
const FILES = ['cs336-fixtures/corpus.en', 'botchan.txt', 'tinystories-sample-197k.txt', 'cs336-fixtures/address.txt'];
const WORK = resolve('tmp', 'rag-eval');
const args = process.argv.slice(2);
const kAt = args.indexOf('--k');
const K = kAt >= 0 ? Number(args.splice(kAt, 2)[1]) : 5;

interface Question { file: string; q: string; a: string }
const questions = JSON.parse(readFileSync(new URL('./rag-questions.json', import.meta.url), 'utf8')) as Question[];

/** The default chat model's shape and tokenizer with weights drawn at random (seed 1), mean pooling. */
async function randomModel(): Promise<string> {
  const { model, file } = openModelForTraining(defaultModelPath('chat'));
  const random = createModel(model.shape, new Rng(1));
  file.metadata.set('general.name', metaString('kiln-brown-random'));
  file.metadata.set('llama.pooling_type', metaU32(1));
  const path = join(WORK, 'kiln-brown-random.gguf');
  await writeLike(path, file, random);
  return path;
}

/** [start, end) of every occurrence of `phrase` in `text` */
function occurrences(text: string, phrase: string): [number, number][] {
  const found: [number, number][] = [];
  for (let at = text.indexOf(phrase); at >= 0; at = text.indexOf(phrase, at + 1)) found.push([at, at + phrase.length]);
  return found;
}

// the files are indexed from copies in one folder, the .en one (plain text) named .txt
mkdirSync(join(WORK, 'docs'), { recursive: true });
const docPath = (file: string) => join(WORK, 'docs', file.replace(/\//g, '_').replace(/\.en$/, '.en.txt'));
for (const file of FILES) writeFileSync(docPath(file), readFileSync(join(TEXT, file)));
const answers = questions.map((q) => ({ ...q, path: docPath(q.file), ranges: occurrences(readFileSync(docPath(q.file), 'utf8'), q.a) }));
const missing = answers.filter((q) => q.ranges.length === 0);
if (missing.length > 0) throw new Error(`answers not in their files: ${missing.map((q) => q.a).join('; ')}`);

const models = await Promise.all((args.length > 0 ? args : [defaultModelPath('embed'), 'random']).map((m) => (m === 'random' ? randomModel() : m)));
/** hybrid's vector weights tried, each reported on the odd- and the even-numbered questions apart */
const WEIGHTS = [0, 0.05, 0.1, 0.2, 0.5, 1];
console.log(`${questions.length} questions, ${FILES.length} files, recall@${K}; hybrid and rerank at the default vector weight ${DEFAULT_VECTOR_WEIGHT}`);
const table = ['| embedding model | chunks | index chunks/s | lexical | vector | hybrid | hybrid + rerank |', '|---|---|---|---|---|---|---|'];
const sweep = [`| embedding model | ${WEIGHTS.map((w) => `w ${w}`).join(' | ')} |`, `|---|${WEIGHTS.map(() => '---|').join('')}`];
for (const model of models) {
  // one store per model file (by its hash), kept: a second run embeds nothing
  const db = join(WORK, `store-${createHash('sha256').update(readFileSync(model)).digest('hex').slice(0, 12)}`);
  const rag = await Rag.open({ db, embedModel: model });
  try {
    const started = performance.now();
    const report = await rag.index(FILES.map(docPath));
    const rate = report.indexed.length > 0 ? (report.chunks / ((performance.now() - started) / 1000)).toFixed(1) : '(kept)';
    /** questions found, of those whose index has parity `half` (all when undefined) */
    const found = async (options: SearchOptions, half?: number) => {
      let n = 0;
      for (const [i, q] of answers.entries()) {
        if (half !== undefined && i % 2 !== half) continue;
        const hits = await rag.search(q.q, { k: K, ...options });
        if (hits.some((h) => h.path === q.path && q.ranges.some(([s, e]) => h.start < e && s < h.end))) n++;
      }
      return n;
    };
    const recall = async (options: SearchOptions) => {
      const n = await found(options);
      return `${(n / answers.length).toFixed(3)} (${n})`;
    };
    table.push(`| ${rag.embedder.id.name} | ${await rag.store.chunkCount()} | ${rate} | ${await recall({ mode: 'lexical' })} | ${await recall({ mode: 'vector' })} | `
      + `${await recall({ mode: 'hybrid' })} | ${await recall({ mode: 'hybrid', rerank: true })} |`);
    const cells: string[] = [];
    for (const vectorWeight of WEIGHTS) cells.push(`${await found({ vectorWeight }, 1)} / ${await found({ vectorWeight }, 0)}`);
    sweep.push(`| ${rag.embedder.id.name} | ${cells.join(' | ')} |`);
  } finally {
    await rag.close();
  }
}
console.log(table.join('\n'));
console.log(`\nhybrid, questions found by vector weight: of those at odd (${Math.floor(answers.length / 2)}) / even (${Math.ceil(answers.length / 2)}) places in the file, counting from 0`);
console.log(sweep.join('\n'));
