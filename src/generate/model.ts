// A model ready to run: the GGUF file, its hyper-parameters, tokenizer and architecture bound to its weights,
// and a backend to compute with. `forward` runs one batch against a KV cache and returns its logits.

import { loadGGUF, type GGUFModelFile } from '../gguf/model-file.js';
import { readHParams, type HParams } from '../models/hparams.js';
import { findArchitecture } from '../models/registry.js';
import type { BoundModel } from '../models/architecture.js';
import type { Backend } from '../kernels/backend.js';
import { createBackend } from '../kernels/select.js';
import type { WeightTensor } from '../tensor/tensor.js';
import { dequantizeTensor } from '../tensor/index.js';
import { Tokenizer } from '../tokenizer/index.js';
import { DEFAULT_BLOCK_SIZE, KVCache } from './kv-cache.js';
import { InferenceOps, type ForwardBatch, type ForwardObserver } from './inference-ops.js';
import { loadLoraAdapters, type LoraDelta, type LoraSpec } from './lora-adapter.js';
import { PromptTunedOps, readPromptAdapter, type PromptAdapter } from './prompt-adapter.js';
import { checkIsModel } from '../gguf/adapter-kind.js';

export interface LoadOptions {
  backend?: Backend;
  /** LoRA adapters to apply to the weights (llama.cpp's --lora) */
  lora?: LoraSpec[];
  /** a prompt-tuning adapter (`kiln finetune --prompt-tokens`) whose virtual tokens stand before every prompt */
  promptAdapter?: string;
}

/** The token id the engine puts where a prompt adapter's virtual tokens go (their embeddings replace its own). */
const VIRTUAL_TOKEN_ID = 0;

export class Model {
  readonly hparams: HParams;
  readonly tokenizer: Tokenizer;
  private readonly bound: BoundModel<WeightTensor>;
  /** LoRA deltas by adapted weight name (empty: the plain model) */
  lora = new Map<string, LoraDelta[]>();
  /** virtual tokens before every prompt (none: the plain model) */
  promptAdapter: PromptAdapter | undefined;

  constructor(readonly file: GGUFModelFile, readonly backend: Backend) {
    checkIsModel(file.metadata, file.path);
    this.hparams = readHParams(file.metadata);
    this.tokenizer = Tokenizer.fromMetadata(file.metadata);
    this.bound = findArchitecture(this.hparams.arch).bind<WeightTensor>(this.hparams, {
      get: (name) => file.optionalTensor(name),
      floats: (name) => (file.has(name) ? dequantizeTensor(file.tensor(name)) : undefined),
    });
  }

  static load(path: string, options: LoadOptions = {}): Model {
    const backend: Backend = options.backend ?? createBackend();
    // a backend may place the weights where it computes on them (the WASM backend reads them into its memories)
    const model = new Model(backend.loadFile ? backend.loadFile(path) : loadGGUF(path), backend);
    if (options.lora?.length) model.lora = loadLoraAdapters(options.lora, model.file);
    if (options.promptAdapter) model.promptAdapter = readPromptAdapter(loadGGUF(options.promptAdapter), model.hparams.arch, model.hparams.embeddingLength);
    return model;
  }

  /** The tokens the engine puts before every prompt: one placeholder per virtual token of the prompt adapter. */
  get promptPrefix(): number[] {
    return new Array<number>(this.promptAdapter?.tokens ?? 0).fill(VIRTUAL_TOKEN_ID);
  }

  get vocabSize(): number {
    return this.hparams.vocabSize;
  }

  /** A KV cache able to hold `tokens` positions in total, in blocks of `blockSize`. */
  createCache(tokens: number, blockSize = DEFAULT_BLOCK_SIZE): KVCache {
    const hp = this.hparams;
    return new KVCache({
      nLayers: hp.blockCount,
      keyDim: hp.headCountKv * hp.keyLength,
      valueDim: hp.headCountKv * hp.valueLength,
      nBlocks: Math.ceil(tokens / blockSize),
      blockSize,
    }, this.backend.allocateHalfs?.bind(this.backend));
  }

  /** Runs one batch; returns logits [batch.outputRows.length, vocab], row-major. */
  forward(cache: KVCache, batch: ForwardBatch, observer?: ForwardObserver): Float32Array {
    const ops = this.promptAdapter
      ? new PromptTunedOps(this.backend, cache, batch, observer, this.lora, this.promptAdapter)
      : new InferenceOps(this.backend, cache, batch, observer, this.lora);
    const logits = this.bound.forward(ops);
    return logits.data;
  }
}
