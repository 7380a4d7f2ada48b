// Fine-tuning starts from a GGUF: every tensor is dequantized into a trainable Param (F32, see load-gguf-params.ts),
// and the result is written back with the source's metadata (tokenizer included) and
// each tensor in the type `typeOf` picks (F32 by default; see qat.ts for quantized exports).

import type { GGUFModelFile } from '../gguf/model-file.js';
import { loadModelFile } from '../hf/checkpoint.js';
import { metaU32, writeGGUF } from '../gguf/writer.js';
import { GGMLType } from '../tensor/index.js';
import { quantizeRows } from '../quant/ggml-quantize.js';
import { Tokenizer } from '../tokenizer/index.js';
import type { Param } from './autograd.js';
import type { TrainModel } from './llama-model.js';
import { loadTrainModel } from './load-gguf-params.js';

export interface LoadedModel {
  model: TrainModel;
  file: GGUFModelFile;
  tokenizer: Tokenizer;
}

/** A GGUF or Hugging Face folder (any dequantizable tensor types) as a trainable model, with its file and tokenizer. */
export function openModelForTraining(path: string): LoadedModel {
  const file = loadModelFile(path);
  return { model: loadTrainModel(file), file, tokenizer: Tokenizer.fromMetadata(file.metadata) };
}

/** Writes `model`'s parameters under `source`'s metadata; `typeOf` chooses each tensor's type (F32 when absent). */
export async function writeLike(path: string, source: GGUFModelFile, model: TrainModel, typeOf: (p: Param) => GGMLType = () => GGMLType.F32,
  fileType = 0): Promise<void> {
  const metadata = new Map(source.metadata);
  metadata.set('general.file_type', metaU32(fileType)); // llama_ftype: 0 all F32, 2 mostly Q4_0, ...
  const tensors = model.params.map((p) => {
    const type = typeOf(p);
    const data = type === GGMLType.F32
      ? new Uint8Array(p.value.buffer, p.value.byteOffset, p.value.byteLength)
      : quantizeRows(type, p.value, p.cols, p.rows);
    return { name: p.name, dims: p.dims, type, data };
  });
  await writeGGUF(path, { metadata, tensors });
}
