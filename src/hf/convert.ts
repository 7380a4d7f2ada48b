// `kiln convert DIR OUT.gguf --outtype T`: a Hugging Face folder written as the GGUF llama.cpp's convert_hf_to_gguf.py
// makes of it: same metadata (general.name from the folder's name, as the converter's heuristics do), same tensors
// in the same order and types (ModelBase.prepare_tensors: 1-D tensors, norms and a few others stay F32; Q8_0 falls
// back to F16 for rows that are not whole blocks).

import { GGMLType, rowBytes } from '../tensor/ggml-type.js';
import { dequantizeTensor } from '../tensor/index.js';
import { quantizeRows } from '../quant/ggml-quantize.js';
import type { GGUFTensorInput, GGUFWriteInput } from '../gguf/writer.js';
import { openHFCheckpoint, withTensorReader, type HFTensor } from './checkpoint.js';

/** --outtype values, with their tensor type and llama_ftype */
export const OUT_TYPES = {
  f32: { type: GGMLType.F32, fileType: 0 },
  f16: { type: GGMLType.F16, fileType: 1 },
  bf16: { type: GGMLType.BF16, fileType: 32 },
  q8_0: { type: GGMLType.Q8_0, fileType: 7 },
} as const;
export type OutType = keyof typeof OUT_TYPES;

/** tensors the converter always keeps in F32 (MoE routers, position and token-type embeddings) */
const ALWAYS_F32 = /(\.ffn_gate_inp\.weight|^position_embd\.weight|^token_types\.weight)$/;

/** The type the converter stores `t` as for `outType`. */
export function convertedType(t: HFTensor, outType: OutType): GGMLType {
  if (t.shape.length <= 1 || t.ggufName.endsWith('_norm.weight') || ALWAYS_F32.test(t.ggufName)) return GGMLType.F32;
  const type = OUT_TYPES[outType].type;
  // gguf-py quantizes whole blocks only; a row of another length falls back to F16
  return type === GGMLType.Q8_0 && t.dims[0] % 32 !== 0 ? GGMLType.F16 : type;
}

/** The GGUF of a Hugging Face folder. */
export function convertHF(dir: string, outType: OutType): GGUFWriteInput {
  const ckpt = openHFCheckpoint(dir);
  const tensors = withTensorReader((read) => ckpt.tensors.map((t): GGUFTensorInput => {
    const stored = new Uint8Array(t.nBytes);
    read(t, stored, 0);
    const type = convertedType(t, outType);
    if (type === t.type) return { name: t.ggufName, dims: t.dims, type, data: stored };
    const floats = dequantizeTensor({ name: t.ggufName, type: t.type, dims: t.dims, data: stored });
    const rows = floats.length / t.dims[0];
    const data = quantizeRows(type, floats, t.dims[0], rows);
    if (data.length !== rowBytes(type, t.dims[0]) * rows) throw new Error(`tensor ${t.ggufName}: converted to ${data.length} bytes`);
    return { name: t.ggufName, dims: t.dims, type, data };
  }));
  return { metadata: ckpt.metadata(OUT_TYPES[outType].fileType), tensors };
}
