// Retrieval evaluation of `kiln rag`: the questions of bench/rag-questions.json (written by hand from corpora in
// ../shared/data/text; each names the file and an exact phrase of it that answers it) against a store of those
// files, for each embedding model given: recall@5 of lexical (full-text) only, vector only and hybrid (RRF) search.
// A question counts as found when one of the top 5 chunks is from its file and overlaps an occurrence of the phrase.
// Models: the default embedding model, the default chat model (its own last-token pooling) and a random-weight
// model of the same shape and tokenizer (mean pooling), made here.
//   npx tsx bench/rag-eval.ts [--k 5] [MODEL.gguf …]

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Rag, type SearchMode } from '../src/rag/rag.js';
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

const models = args.length > 0 ? args : [defaultModelPath('embed'), defaultModelPath('chat'), await randomModel()];
console.log(`${questions.length} questions, ${FILES.length} files, recall@${K}`);
console.log(`| embedding model | chunks | index chunks/s | lexical | vector | hybrid | hybrid + rerank |`);
console.log('|---|---|---|---|---|---|---|');
for (const model of models) {
  const db = join(WORK, `store-${model.split('/').pop()}`);
  rmSync(db, { recursive: true, force: true });
  rmSync(`${db}.lock`, { force: true });
  const rag = await Rag.open({ db, embedModel: model });
  try {
    const started = performance.now();
    const report = await rag.index(FILES.map(docPath));
    const rate = report.chunks / ((performance.now() - started) / 1000);
    const recall = async (mode: SearchMode, rerank = false) => {
      let found = 0;
      for (const q of answers) {
        const hits = await rag.search(q.q, { k: K, mode, rerank });
        if (hits.some((h) => h.path === q.path && q.ranges.some(([s, e]) => h.start < e && s < h.end))) found++;
      }
      return `${(found / answers.length).toFixed(3)} (${found})`;
    };
    console.log(`| ${rag.embedder.id.name} | ${report.chunks} | ${rate.toFixed(1)} | ${await recall('lexical')} | ${await recall('vector')} | ${await recall('hybrid')} | ${await recall('hybrid', true)} |`);
  } finally {
    await rag.close();
  }
}
