// A model ready to run: the GGUF file, its hyper-parameters, tokenizer and architecture bound to its weights,
// and a backend to compute with. `forward` runs one batch against a KV cache and returns its logits.

import { loadGGUF, type GGUFModelFile } from '../gguf/model-file.js';
import type { HParams } from '../models/hparams.js';
import { findArchitecture } from '../models/registry.js';
import { checkedSource, type Architecture, type BoundModel, type ModelOutput } from '../models/architecture.js';
import type { Backend } from '../kernels/backend.js';
import { createBackend } from '../kernels/select.js';
import type { WeightTensor } from '../tensor/tensor.js';
import { dequantizeTensor } from '../tensor/index.js';
import { Tokenizer } from '../tokenizer/index.js';
import { DEFAULT_BLOCK_SIZE, KVCache } from './kv-cache.js';
import { InferenceOps, selectRows, type Act, type ForwardBatch, type ForwardObserver } from './inference-ops.js';
import { getString, MetadataError } from '../gguf/metadata.js';
import { loadLoraAdapters, type LoraDelta, type LoraSpec } from './lora-adapter.js';

export interface LoadOptions {
  backend?: Backend;
  /** LoRA adapters to apply to the weights (llama.cpp's --lora) */
  lora?: LoraSpec[];
}

/** Asked for logits of a model that has no language-model head (an encoder: use its hidden states). */
export class NoLanguageModelHeadError extends Error {
  constructor(readonly arch: string) {
    super(`a ${arch} model has no language-model head: it embeds text (kiln embed) but does not generate`);
    this.name = 'NoLanguageModelHeadError';
  }
}

export class Model {
  readonly architecture: Architecture;
  readonly hparams: HParams;
  readonly tokenizer: Tokenizer;
  private readonly bound: BoundModel<WeightTensor>;
  /** LoRA deltas by adapted weight name (empty: the plain model) */
  lora = new Map<string, LoraDelta[]>();

  /** Binds the file's tensors to its architecture, checking each tensor's shape (TensorShapeError). */
  constructor(readonly file: GGUFModelFile, readonly backend: Backend) {
    const arch = getString(file.metadata, 'general.architecture');
    if (arch === undefined) throw new MetadataError('metadata "general.architecture" is missing');
    this.architecture = findArchitecture(arch);
    this.hparams = this.architecture.hparams(file.metadata);
    this.tokenizer = Tokenizer.fromMetadata(file.metadata);
    this.bound = this.architecture.bind<WeightTensor>(this.hparams, checkedSource(arch, (name) => file.optionalTensor(name), dequantizeTensor));
  }

  static load(path: string, options: LoadOptions = {}): Model {
    const backend: Backend = options.backend ?? createBackend();
    // a backend may place the weights where it computes on them (the WASM backend reads them into its memories)
    const model = new Model(backend.loadFile ? backend.loadFile(path) : loadGGUF(path), backend);
    if (options.lora?.length) model.lora = loadLoraAdapters(options.lora, model.file);
    return model;
  }

  /** whether the model generates text: a decoder; an encoder (bert) has no language-model head and only embeds */
  get generates(): boolean {
    return this.hparams.causal;
  }

  /** Refuses, before any work, to generate with a model that only embeds. */
  requireLanguageModelHead(): void {
    if (!this.generates) throw new NoLanguageModelHeadError(this.hparams.arch);
  }

  get vocabSize(): number {
    return this.hparams.vocabSize;
  }

  /** f16 values one position takes in the KV cache, over all layers */
  get cacheValuesPerPosition(): number {
    const row = this.architecture.cacheRow(this.hparams);
    return this.hparams.blockCount * (row.keys + row.values);
  }

  /** A KV cache able to hold `tokens` positions in total, in blocks of `blockSize`. */
  createCache(tokens: number, blockSize = DEFAULT_BLOCK_SIZE): KVCache {
    const row = this.architecture.cacheRow(this.hparams);
    return new KVCache({
      nLayers: this.hparams.blockCount,
      keyDim: row.keys,
      valueDim: row.values,
      nBlocks: Math.ceil(tokens / blockSize),
      blockSize,
    }, this.backend.allocateHalfs?.bind(this.backend));
  }

  private run(cache: KVCache, batch: ForwardBatch, observer?: ForwardObserver): ModelOutput<Act> {
    return this.bound.forward(new InferenceOps(this.backend, cache, batch, observer, this.lora));
  }

  /** Runs one batch; returns logits [batch.outputRows.length, vocab], row-major. */
  forward(cache: KVCache, batch: ForwardBatch, observer?: ForwardObserver): Float32Array {
    const { hidden, head } = this.run(cache, batch, observer);
    if (!head) throw new NoLanguageModelHeadError(this.hparams.arch);
    return head(hidden).data;
  }

  /**
   * Runs one batch whose output rows serve two purposes (the engine's mixed steps): returns the final hidden states
   * of every output row [batch.outputRows.length, dim] and the logits [logitRows.length, vocab] of the output rows
   * numbered in `logitRows` (indices into outputRows, ascending) — the rest only embed, so the head skips them.
   */
  forwardOutputs(cache: KVCache, batch: ForwardBatch, logitRows: readonly number[]): { hidden: Float32Array; logits: Float32Array } {
    const out = this.run(cache, batch);
    const hidden = out.hidden.data;
    if (logitRows.length === 0) return { hidden, logits: new Float32Array(0) };
    if (!out.head) throw new NoLanguageModelHeadError(this.hparams.arch);
    // only the rows that want logits go through the head
    const logits = out.head(logitRows.length < out.hidden.rows ? selectRows(out.hidden, logitRows) : out.hidden).data;
    return { hidden, logits };
  }

  /** Runs one batch; returns the final hidden states [batch.outputRows.length, dim] (what embeddings pool). */
  hiddenStates(cache: KVCache, batch: ForwardBatch, observer?: ForwardObserver): Float32Array {
    return this.run(cache, batch, observer).hidden.data;
  }
}
