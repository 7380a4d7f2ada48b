// Embeddings of chunks and queries through kiln's engine (LLM.embed), batched, each text cut to the model's
// context; and the identity a store records for the model (its name and a hash of its file), so a store is never
// searched or extended with vectors from another model.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { LLM } from '../engine/llm.js';
import { Model } from '../generate/model.js';
import { getString } from '../gguf/metadata.js';
import type { EmbedModelId } from './store.js';

export class Embedder {
  readonly id: EmbedModelId;
  private readonly llm: LLM;
  private readonly wordTokens = new Map<string, number>();

  constructor(readonly model: Model, path: string, readonly batchSize = 16) {
    const name = getString(model.file.metadata, 'general.name') ?? basename(path);
    const hash = createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 12);
    this.id = { name: `${name} (sha256 ${hash})`, dim: model.hparams.embeddingLength };
    this.llm = new LLM({ model, maxNumSeqs: batchSize });
  }

  static load(path: string, batchSize?: number): Embedder {
    return new Embedder(Model.load(path), path, batchSize);
  }

  /** the most tokens one text may have */
  get contextLength(): number {
    return this.llm.engine.maxModelLength;
  }

  /** tokens of one word as it appears after a space inside a text (cached: chunking counts every word) */
  countTokens(word: string): number {
    let n = this.wordTokens.get(word);
    if (n === undefined) {
      n = this.model.tokenizer.encode(` ${word}`, { addSpecial: false, parseSpecial: false }).length;
      this.wordTokens.set(word, n);
    }
    return n;
  }

  /** L2-normalized embeddings of `texts`, `batchSize` at a time through the engine; a text longer than the context is cut to it */
  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += this.batchSize) {
      const batch = texts.slice(i, i + this.batchSize).map((text) => {
        const tokens = this.model.tokenizer.encode(text, { addSpecial: true, parseSpecial: false });
        return tokens.slice(0, this.contextLength);
      });
      const outputs = await this.llm.embed(batch);
      out.push(...outputs.map((o) => o.outputs.embedding));
    }
    return out;
  }

  close(): Promise<void> {
    return this.llm.close();
  }
}
