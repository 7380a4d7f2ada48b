// A model ready to run: the GGUF file (or Hugging Face folder read as one), its hyper-parameters, tokenizer and
// architecture bound to its weights, and a backend to compute with. `forward` runs one batch against a KV cache and returns its logits.

import { loadGGUF, placeInMemory, type GGUFModelFile } from '../gguf/model-file.js';
import { loadModelFile } from '../hf/checkpoint.js';
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
import { PromptTunedOps, readPromptAdapter, type PromptAdapter } from './prompt-adapter.js';
import { checkIsModel } from '../gguf/adapter-kind.js';
import type { FileSource } from '../platform/index.js';

export interface LoadOptions {
  backend?: Backend;
  /** LoRA adapters to apply to the weights (llama.cpp's --lora) */
  lora?: LoraSpec[];
  /** a prompt-tuning adapter (`kiln finetune --prompt-tokens`) whose virtual tokens stand before every prompt */
  promptAdapter?: string;
}

/** Asked for logits of a model that has no language-model head (an encoder: use its hidden states). */
export class NoLanguageModelHeadError extends Error {
  constructor(readonly arch: string) {
    super(`a ${arch} model has no language-model head: it embeds text (kiln embed) but does not generate`);
    this.name = 'NoLanguageModelHeadError';
  }
}

/** The token id the engine puts where a prompt adapter's virtual tokens go (their embeddings replace its own). */
const VIRTUAL_TOKEN_ID = 0;

export class Model {
  readonly architecture: Architecture;
  readonly hparams: HParams;
  readonly tokenizer: Tokenizer;
  private readonly bound: BoundModel<WeightTensor>;
  /** LoRA deltas by adapted weight name (empty: the plain model) */
  lora = new Map<string, LoraDelta[]>();
  /** virtual tokens before every prompt (none: the plain model) */
  promptAdapter: PromptAdapter | undefined;

  /** Binds the file's tensors to its architecture, checking each tensor's shape (TensorShapeError). */
  constructor(readonly file: GGUFModelFile, readonly backend: Backend) {
    checkIsModel(file.metadata, file.path);
    const arch = getString(file.metadata, 'general.architecture');
    if (arch === undefined) throw new MetadataError('metadata "general.architecture" is missing');
    this.architecture = findArchitecture(arch);
    this.hparams = this.architecture.hparams(file.metadata);
    this.tokenizer = Tokenizer.fromMetadata(file.metadata);
    this.bound = this.architecture.bind<WeightTensor>(this.hparams, checkedSource(arch, (name) => file.optionalTensor(name), dequantizeTensor));
  }

  /** Loads a GGUF file (a path, or a Blob in a page), or a Hugging Face folder (read as the GGUF llama.cpp's converter would make of it). */
  static load(source: FileSource, options: LoadOptions = {}): Model {
    const backend: Backend = options.backend ?? createBackend();
    // a backend may place the weights where it computes on them (the WASM backend reads them into its memories)
    const place = backend.placeTensors?.bind(backend) ?? placeInMemory;
    const model = new Model(loadModelFile(source, place), backend);
    if (options.lora?.length) model.lora = loadLoraAdapters(options.lora, model.file);
    if (options.promptAdapter) model.promptAdapter = readPromptAdapter(loadGGUF(options.promptAdapter), model.hparams.arch, model.hparams.embeddingLength);
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

  /** The tokens the engine puts before every prompt: one placeholder per virtual token of the prompt adapter. */
  get promptPrefix(): number[] {
    return new Array<number>(this.promptAdapter?.tokens ?? 0).fill(VIRTUAL_TOKEN_ID);
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
    const ops = this.promptAdapter
      ? new PromptTunedOps(this.backend, cache, batch, observer, this.lora, this.promptAdapter)
      : new InferenceOps(this.backend, cache, batch, observer, this.lora);
    return this.bound.forward(ops);
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
