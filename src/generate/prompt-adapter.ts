// Prompt tuning at inference. A prompt-tuning adapter (`kiln finetune --prompt-tokens K`; general.type = adapter,
// adapter.type = prompt_tuning) holds K virtual token embeddings, `prompt_tuning.weight` (ggml dims [dim, K]), that
// training put at positions 0..K−1 before every sequence (src/train/prompt-tuning.ts). At inference the engine puts
// K placeholder tokens before every prompt, and PromptTunedOps embeds the rows at positions 0..K−1 as the virtual
// tokens instead: the model then sees what it saw in training.

import { getNumber, getString } from '../gguf/metadata.js';
import type { GGUFModelFile } from '../gguf/model-file.js';
import type { Backend } from '../kernels/backend.js';
import type { WeightTensor } from '../tensor/tensor.js';
import { dequantizeTensor } from '../tensor/index.js';
import type { KVCache } from './kv-cache.js';
import { InferenceOps, type Act, type ForwardBatch, type ForwardObserver } from './inference-ops.js';
import type { LoraDelta } from './lora-adapter.js';

export class PromptAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptAdapterError';
  }
}

export interface PromptAdapter {
  path: string;
  /** K, the virtual tokens */
  tokens: number;
  /** [K, dim] row i: the embedding of virtual token i */
  embeddings: Float32Array;
}

/** The virtual tokens of `adapter`, checked against the base model's architecture and embedding width. */
export function readPromptAdapter(adapter: GGUFModelFile, architecture: string, dim: number): PromptAdapter {
  const where = adapter.path;
  if (getString(adapter.metadata, 'general.type') !== 'adapter' || getString(adapter.metadata, 'adapter.type') !== 'prompt_tuning') {
    throw new PromptAdapterError(`${where} is not a prompt-tuning adapter (general.type = adapter, adapter.type = prompt_tuning)`);
  }
  const arch = getString(adapter.metadata, 'general.architecture');
  if (arch !== architecture) throw new PromptAdapterError(`${where} was trained for a ${arch} model, the model is ${architecture}`);
  const weight = adapter.optionalTensor('prompt_tuning.weight');
  if (!weight) throw new PromptAdapterError(`${where} has no prompt_tuning.weight tensor`);
  const [width, tokens] = weight.dims;
  if (weight.dims.length !== 2 || width !== dim || !(tokens >= 1)) {
    throw new PromptAdapterError(`${where}: prompt_tuning.weight is [${weight.dims}], expected [${dim}, K] for this model's embedding width`);
  }
  const declared = getNumber(adapter.metadata, 'adapter.prompt_tuning.tokens');
  if (declared !== undefined && declared !== tokens) throw new PromptAdapterError(`${where} declares ${declared} tokens but holds ${tokens}`);
  return { path: where, tokens, embeddings: dequantizeTensor(weight) };
}

/** Inference ops whose rows at positions 0..K−1 are the adapter's virtual tokens. */
export class PromptTunedOps extends InferenceOps {
  constructor(
    backend: Backend, cache: KVCache, private readonly rows: ForwardBatch, observer: ForwardObserver | undefined,
    lora: ReadonlyMap<string, LoraDelta[]> | undefined, private readonly adapter: PromptAdapter,
  ) {
    super(backend, cache, rows, observer, lora);
  }

  override embed(table: WeightTensor, rows: 'tokens' | 'positions' | number = 'tokens'): Act {
    const out = super.embed(table, rows); // [n, dim]
    if (rows !== 'tokens') return out; // position and token-type rows stay
    const { positions } = this.rows, dim = out.cols;
    for (let t = 0; t < positions.length; t++) {
      const p = positions[t];
      if (p < this.adapter.tokens) out.data.set(this.adapter.embeddings.subarray(p * dim, (p + 1) * dim), t * dim);
    }
    return out;
  }
}
