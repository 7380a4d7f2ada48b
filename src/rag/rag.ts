// `Rag`: a store, the embedding model its vectors come from, and the three things done with them — index files,
// search (hybrid: vector nearest neighbours and full-text rank fused by weighted reciprocal-rank fusion, optionally
// re-ranked by exact cosine similarity to the query), and answer a question from the top chunks with numbered
// citations that map to file, chunk and character range.

import { join } from 'node:path';
import { LLM, SamplingParams, type SamplingParamsInit } from '../engine/llm.js';
import { Model } from '../generate/model.js';
import { Embedder } from './embedder.js';
import { indexPaths, type IndexEvents, type IndexReport } from './ingest.js';
import { RagStore, type ChunkHit } from './store.js';
import type { ChunkOptions } from './chunk.js';

/** where the embedded store lives when no --db is given */
export const DEFAULT_DB = join('.kiln', 'rag');

export const DEFAULT_CHUNKING: ChunkOptions = { size: 128, overlap: 32 };

/** reciprocal-rank fusion's constant (Cormack et al. 2009): score = Σ weight / (RRF_K + rank) */
export const RRF_K = 60;

/**
 * The vector ranking's weight in the fusion, the full-text ranking's being 1. RRF with equal weights lets a chunk
 * that merely appears in both candidate lists (50 deep each) outrank the full-text top hit, which is right for two
 * retrievers of similar quality and wrong for kiln's small embedding model, whose vector ranking is near chance
 * (bench/rag-eval.ts). At 0.05 a vector rank is worth at most 0.05 / 61 ≈ 0.0008, the gap between full-text ranks
 * 1 and 4 (1/61 − 1/64): the vectors can move a chunk a few places in the full-text order, and a chunk only the
 * vectors found stays below every full-text candidate (≥ 1/110), so a weak model cannot bury the full-text answer.
 * 0.05 is the largest weight that does not lose to full text alone on the odd-numbered evaluation questions (0.1
 * lost one); on the even-numbered ones, held out, it ties full text. A stronger embedding model earns a larger
 * --vector-weight.
 */
export const DEFAULT_VECTOR_WEIGHT = 0.05;

export type SearchMode = 'hybrid' | 'vector' | 'lexical';

export interface SearchOptions {
  /** chunks returned (default 5) */
  k?: number;
  mode?: SearchMode;
  /** re-order the fused candidates by exact cosine similarity to the query */
  rerank?: boolean;
  /** candidates each ranking gives to the fusion (default max(50, 4k)) */
  candidates?: number;
  /** the vector ranking's weight in hybrid fusion against full text's 1 (default DEFAULT_VECTOR_WEIGHT) */
  vectorWeight?: number;
}

export interface Source {
  /** the citation's number, [n] */
  n: number;
  path: string;
  /** the chunk's number within its file, from 0 */
  chunk: number;
  /** character range [start, end) of the file (its decoded text; for HTML, the markup `text` was extracted from) */
  start: number;
  end: number;
  /** the chunk's text, as the prompt gave it: cut short at a word when the prompt had no room for all of it */
  text: string;
  score: number;
}

export interface Answer {
  answer: string;
  sources: Source[];
}

export interface AskOptions extends SearchOptions {
  /** the chat model's GGUF file, or a loaded model */
  model: string | Model;
  sampling?: SamplingParamsInit;
}

export class EmptyQueryError extends Error {
  constructor() {
    super('the query is empty');
    this.name = 'EmptyQueryError';
  }
}

/** Fuses rankings by weighted reciprocal rank: each chunk scores Σ weight / (RRF_K + its 1-based rank in each list). */
export function reciprocalRankFusion(rankings: readonly ChunkHit[][], weights: readonly number[] = rankings.map(() => 1)): ChunkHit[] {
  const fused = new Map<number, ChunkHit>();
  for (const [r, ranking] of rankings.entries()) {
    ranking.forEach((hit, i) => {
      const entry = fused.get(hit.id) ?? { ...hit, score: 0 };
      entry.score += weights[r] / (RRF_K + i + 1);
      fused.set(hit.id, entry);
    });
  }
  return [...fused.values()].sort((a, b) => b.score - a.score || a.id - b.id);
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export class Rag {
  private constructor(readonly store: RagStore, readonly embedder: Embedder) {}

  /**
   * Opens the store at `db` (a PGlite folder, default .kiln/rag, or a postgres:// URL) with the embedding model
   * at `embedModel`. Indexing binds an empty store to the model (`reindex` rebuilds one bound to another);
   * anything else done with another model's store is refused.
   */
  static async open({ db = DEFAULT_DB, embedModel, batchSize }: { db?: string; embedModel: string; batchSize?: number }): Promise<Rag> {
    const embedder = Embedder.load(embedModel, batchSize);
    try {
      return new Rag(await RagStore.open(db), embedder);
    } catch (e) {
      await embedder.close();
      throw e;
    }
  }

  async index(paths: readonly string[], { chunking = DEFAULT_CHUNKING, reindex = false, ...events }: IndexEvents & { chunking?: ChunkOptions; reindex?: boolean } = {}): Promise<IndexReport> {
    return indexPaths(this.store, this.embedder, paths, chunking, reindex, events);
  }

  async search(query: string, { k = 5, mode = 'hybrid', rerank = false, candidates = Math.max(50, 4 * k), vectorWeight = DEFAULT_VECTOR_WEIGHT }: SearchOptions = {}): Promise<ChunkHit[]> {
    if (query.trim() === '') throw new EmptyQueryError();
    if (!(vectorWeight >= 0 && vectorWeight < Infinity)) throw new RangeError(`the vector weight must be a number ≥ 0, not ${vectorWeight}`);
    this.store.checkModel(this.embedder.id);
    if (mode === 'lexical' && !rerank) return this.store.fullText(query, k);
    const [queryVector] = await this.embedder.embed([query]);
    if (mode === 'vector' && !rerank) return this.store.nearest(queryVector, k);
    const rankings = mode === 'lexical' ? [await this.store.fullText(query, candidates)]
      : mode === 'vector' ? [await this.store.nearest(queryVector, candidates)]
      : [await this.store.nearest(queryVector, candidates), await this.store.fullText(query, candidates)];
    const fused = reciprocalRankFusion(rankings, mode === 'hybrid' ? [vectorWeight, 1] : [1]);
    if (!rerank) return fused.slice(0, k);
    const top = fused.slice(0, candidates);
    const vectors = await this.store.embeddings(top.map((h) => h.id));
    return top.map((h) => ({ ...h, score: dot(queryVector, vectors.get(h.id)!) }))
      .sort((a, b) => b.score - a.score || a.id - b.id).slice(0, k);
  }

  /** Answers `question` from the top chunks through the chat model; the sources are numbered as the prompt cites them. */
  async ask(question: string, { model, sampling, ...search }: AskOptions): Promise<Answer> {
    const hits = await this.search(question, { k: 3, ...search });
    const llm = new LLM({ model: typeof model === 'string' ? Model.load(model) : model, maxNumSeqs: 1 });
    try {
      const params = new SamplingParams({ max_tokens: 64, temperature: 0.7, seed: 1, ...sampling });
      const budget = llm.engine.maxModelLength - params.max_tokens;
      const { prompt, sources } = answerPrompt(question, hits, (text) => llm.model.tokenizer.encode(text, { addSpecial: true, parseSpecial: false }).length, budget);
      const [output] = await llm.generate(prompt, params);
      return { answer: output.outputs[0].text.trim(), sources };
    } finally {
      await llm.close();
    }
  }

  async close(): Promise<void> {
    await this.store.close();
    await this.embedder.close();
  }
}

/**
 * The prompt: numbered sources, then the question. Sources go in best first while the prompt stays within
 * `budget` tokens; the last one that fits only in part is cut at a word (its range stays the chunk's: a cut text
 * of an HTML file has no range of its own).
 */
export function answerPrompt(question: string, hits: readonly ChunkHit[], countTokens: (text: string) => number, budget: number): { prompt: string; sources: Source[] } {
  const sources: Source[] = [];
  const render = (list: readonly Source[]): string =>
    `Answer the question from the sources, citing them as [1], [2].\n\n${list.map((s) => `[${s.n}] ${s.text}`).join('\n\n')}\n\nQuestion: ${question}\nAnswer:`;
  for (const hit of hits) {
    const source: Source = { n: sources.length + 1, path: hit.path, chunk: hit.ordinal, start: hit.start, end: hit.end, text: hit.text, score: hit.score };
    let words = hit.text.split(/(?<=\s)(?=\S)/);
    while (words.length > 0 && countTokens(render([...sources, source])) > budget) {
      words = words.slice(0, Math.floor(words.length * 0.8));
      source.text = words.join('').trimEnd();
    }
    if (words.length === 0) break;
    sources.push(source);
  }
  return { prompt: render(sources), sources };
}
