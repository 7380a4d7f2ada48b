// A whole GGUF model quantized as llama.cpp's llama-quantize does it: tensors in llama.cpp's order (by layer,
// then by name), each one's type chosen by ./mix.ts, its float32 values quantized row by row with the matching
// imatrix entry, and the metadata copied in order with general.quantization_version and general.file_type
// (and the quantize.imatrix.* keys) set last.

import type { GGUFModelFile } from '../gguf/model-file.js';
import { getArray, getNumber, getString } from '../gguf/metadata.js';
import type { GGUFValue } from '../gguf/types.js';
import { metaI32, metaString, metaU32, type GGUFTensorInput, type GGUFWriteInput } from '../gguf/writer.js';
import { dequantizeTensor } from '../tensor/codec.js';
import { GGMLType, rowBytes, typeInfo, typeName } from '../tensor/ggml-type.js';
import { canQuantizeTo, quantizeRows, UnsupportedQuantTypeError } from './ggml-quantize.js';
import type { Imatrix } from './imatrix.js';
import { chooseTensorTypes, quantizationOrder, type MixOptions, type ModelShape } from './mix.js';

/** ggml's GGML_QNT_VERSION */
const QUANTIZATION_VERSION = 2;

export class QuantizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantizeError';
  }
}

export interface TensorProgress {
  /** 1-based position and count */
  index: number;
  count: number;
  name: string;
  dims: readonly number[];
  from: GGMLType;
  to: GGMLType;
  fromBytes: number;
  toBytes: number;
  /** false when copied unchanged */
  converted: boolean;
  /** imatrix entry used */
  usedImatrix: boolean;
}

export interface QuantizeModelOptions extends Omit<MixOptions, 'hasImatrix'> {
  /** allow converting tensors that are already quantized (llama-quantize --allow-requantize) */
  allowRequantize?: boolean;
  imatrix?: Imatrix;
  /** recorded as quantize.imatrix.file */
  imatrixPath?: string;
  onTensor?: (progress: TensorProgress) => void;
  /** explicit types by tensor name, over the mix rules (e.g. from a sensitivity search) */
  tensorTypes?: ReadonlyMap<string, GGMLType>;
}

/** What the mix rules need to know about the model, from its metadata. */
export function modelShapeOf(file: GGUFModelFile): ModelShape {
  const meta = file.metadata;
  const arch = getString(meta, 'general.architecture') ?? '';
  // head counts may be per-layer arrays; llama.cpp's n_gqa() looks at layer 0
  const perLayer = (key: string): number | undefined => {
    const v = meta.get(key);
    if (v === undefined) return undefined;
    return Array.isArray(v.value) ? Number(getArray(meta, key)?.[0] ?? 0) : getNumber(meta, key);
  };
  const nHead = perLayer(`${arch}.attention.head_count`) ?? 0;
  return {
    arch,
    nLayer: getNumber(meta, `${arch}.block_count`) ?? 0,
    nHead,
    nHeadKv: perLayer(`${arch}.attention.head_count_kv`) ?? nHead,
    nExpert: getNumber(meta, `${arch}.expert_count`) ?? 0,
  };
}

function isQuantizedType(type: GGMLType): boolean {
  return typeInfo(type).blockSize > 1;
}

/** The output file's metadata: the input's, in order, with the quantization keys set (appended) last. */
function outputMetadata(file: GGUFModelFile, options: QuantizeModelOptions): Map<string, GGUFValue> {
  const meta = new Map(file.metadata);
  // gguf_set_val removes a key and appends it
  const set = (key: string, value: GGUFValue) => { meta.delete(key); meta.set(key, value); };
  set('general.quantization_version', metaU32(QUANTIZATION_VERSION));
  set('general.file_type', metaU32(options.ftype));
  for (const key of ['split.no', 'split.count', 'split.tensors.count']) meta.delete(key);
  const imatrix = options.imatrix;
  if (imatrix) {
    set('quantize.imatrix.file', metaString((options.imatrixPath ?? '').slice(0, 127)));
    if (imatrix.dataset) set('quantize.imatrix.dataset', metaString(imatrix.dataset.slice(0, 127)));
    set('quantize.imatrix.entries_count', metaI32(imatrix.entries.size));
    if (imatrix.chunkCount > 0) set('quantize.imatrix.chunks_count', metaI32(imatrix.chunkCount));
  }
  return meta;
}

/** The imatrix entry for a tensor of `dims`, checked against its size (llama-quantize ignores a wrong-sized
 *  one only for token_embd). */
function importanceFor(name: string, dims: readonly number[], imatrix: Imatrix | undefined): Float32Array | undefined {
  const entry = imatrix?.entries.get(name);
  if (!entry) return undefined;
  const expected = dims[0] * (dims[2] ?? 1);
  if (entry.length === expected) return entry;
  if (name === 'token_embd.weight') return undefined;
  throw new QuantizeError(`imatrix size ${entry.length} is different from tensor size ${expected} for ${name}`);
}

/** Quantizes every tensor of `file` as llama-quantize would; returns what writeGGUF needs. */
export function quantizeModel(file: GGUFModelFile, options: QuantizeModelOptions): GGUFWriteInput {
  const infos = quantizationOrder(file.tensorInfos);
  const types = chooseTensorTypes(infos, modelShapeOf(file), { ...options, hasImatrix: options.imatrix !== undefined })
    .map((type, i) => options.tensorTypes?.get(infos[i].name) ?? type);

  infos.forEach((info, i) => {
    const to = types[i];
    if (to === info.type) return;
    if (!canQuantizeTo(to)) throw new UnsupportedQuantTypeError(to);
    if (isQuantizedType(info.type) && !options.allowRequantize) {
      throw new QuantizeError(`${info.name} is already ${typeName(info.type)}: requantizing is disabled (use --allow-requantize)`);
    }
    if ((info.dims[3] ?? 1) > 1) throw new QuantizeError(`${info.name}: 4-D tensors are not supported`);
    rowBytes(to, info.dims[0]); // throws when the rows do not split into blocks
  });

  const tensors: GGUFTensorInput[] = infos.map((info, i) => {
    const to = types[i];
    const source = file.tensor(info.name);
    let data = source.data;
    let usedImatrix = false;
    if (to !== info.type) {
      const x = info.type === GGMLType.F32 ? new Float32Array(new Uint8Array(source.data).buffer) : dequantizeTensor(source);
      // llama-quantize loads with check_tensors and refuses such data
      if (!x.every(Number.isFinite)) throw new QuantizeError(`tensor ${info.name} contains NaN or infinite values`);
      const nPerRow = info.dims[0];
      const nRows = info.dims[1] ?? 1;
      const nMatrices = info.nElements / (nPerRow * nRows);
      const importance = importanceFor(info.name, info.dims, options.imatrix);
      usedImatrix = importance !== undefined;
      // each matrix of a 3-D (expert) tensor has its own slice of the imatrix
      const matrixBytes = rowBytes(to, nPerRow) * nRows;
      data = new Uint8Array(matrixBytes * nMatrices);
      for (let m = 0; m < nMatrices; m++) {
        const values = x.subarray(m * nPerRow * nRows, (m + 1) * nPerRow * nRows);
        data.set(quantizeRows(to, values, nPerRow, nRows, importance?.subarray(m * nPerRow, (m + 1) * nPerRow)), m * matrixBytes);
      }
    }
    options.onTensor?.({
      index: i + 1, count: infos.length, name: info.name, dims: info.dims, from: info.type, to,
      fromBytes: info.nBytes, toBytes: data.length, converted: to !== info.type, usedImatrix,
    });
    return { name: info.name, dims: info.dims, type: to, data };
  });

  return { metadata: outputMetadata(file, options), tensors, alignment: file.header.alignment };
}
