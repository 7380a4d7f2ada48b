// A GGUF model as trainable Params (every tensor dequantized to f32), bound to its architecture's forward code,
// and the GGUF written back with some tensors replaced (fine-tuned or merged weights, stored as F32).

import type { GGUFModelFile } from '../gguf/model-file.js';
import type { GGUFWriteInput } from '../gguf/writer.js';
import { metaU32 } from '../gguf/writer.js';
import { findArchitecture } from '../models/registry.js';
import { checkedSource } from '../models/architecture.js';
import type { LlamaHParams } from '../models/llama.js';
import { requireString } from '../gguf/metadata.js';
import { GGMLType } from '../tensor/ggml-type.js';
import { dequantizeTensor } from '../tensor/index.js';
import { Param } from './autograd.js';
import { ModelShapeError, type ModelShape, type TrainModel } from './llama-model.js';

/** The model of `file` with every tensor a Param holding its f32 values. */
export function loadTrainModel(file: GGUFModelFile): TrainModel {
  const arch = findArchitecture(requireString(file.metadata, 'general.architecture'));
  if (!arch.names.some((name) => name === 'llama' || name === 'qwen2')) {
    throw new ModelShapeError(`kiln trains llama-family models; this one is ${arch.names[0]}`);
  }
  const hparams = arch.hparams(file.metadata) as LlamaHParams;
  const params = file.tensorInfos.map((info) => new Param(info.name, info.dims, dequantizeTensor(file.tensor(info.name))));
  const byName = new Map(params.map((p) => [p.name, p]));
  const bound = arch.bind<Param>(hparams, checkedSource(hparams.arch, (name) => byName.get(name), (p) => p.value));
  const shape: ModelShape = {
    dim: hparams.embeddingLength, layers: hparams.blockCount, heads: hparams.headCount, kvHeads: hparams.headCountKv,
    ffn: hparams.feedForwardLength, vocab: hparams.vocabSize, ctx: hparams.contextLength, ropeBase: hparams.rope.freqBase,
    rmsEps: hparams.rmsEps, tiedEmbeddings: !byName.has('output.weight'), experts: hparams.expertCount, expertsUsed: hparams.expertUsedCount,
  };
  return { shape, hparams, params, bound };
}

/**
 * `file` with the tensors named in `replaced` ([nOut rows of nIn] f32 values each) stored as F32 and every other
 * tensor as it was. general.file_type becomes 0 (all F32) when every tensor is.
 */
export function ggufWithTensors(file: GGUFModelFile, replaced: ReadonlyMap<string, Float32Array>): GGUFWriteInput {
  const tensors = file.tensorInfos.map((info) => {
    const values = replaced.get(info.name);
    if (!values) return { name: info.name, dims: info.dims, type: info.type, data: file.tensor(info.name).data };
    return { name: info.name, dims: info.dims, type: GGMLType.F32, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  });
  const metadata = new Map(file.metadata);
  if (tensors.every((t) => t.type === GGMLType.F32)) metadata.set('general.file_type', metaU32(0));
  return { metadata, tensors, alignment: file.header.alignment };
}
