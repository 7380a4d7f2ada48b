// Where a Hugging Face tensor's bytes differ from the GGUF tensor they become, and the in-place rewrites between
// the two (the converter's modify_tensors): q/k rows in rotate-half order (llama), matrices stored [in, out]
// (GPT-2's Conv1D), norm weights stored minus one (gemma).

import type { HFNames } from '../models/architecture.js';
import { GGMLType, typeInfo } from '../tensor/ggml-type.js';
import { bf16ToFp32, fp16ToFp32, fp32ToBf16, fp32ToFp16 } from '../tensor/float16.js';
import { mapName } from './names.js';

export interface LayoutChange {
  /** rows are rotate-half ordered in groups of this many heads */
  rotateHeads?: number;
  /** stored [in, out] row-major: the transpose of a torch Linear weight */
  transposed?: boolean;
  /** stored as weight − 1 */
  plusOne?: boolean;
}

/** How the tensor `ggufName` is stored in a checkpoint of `hf` (undefined: as GGUF stores it). */
export function layoutChange(hf: HFNames, ggufName: string, heads: { q: number; k: number }): LayoutChange | undefined {
  const rotate = hf.rotateHalf && (mapName(hf.rotateHalf, ggufName) as 'q' | 'k' | undefined);
  const change: LayoutChange = {
    rotateHeads: rotate ? heads[rotate] : undefined,
    transposed: hf.transposed?.test(ggufName) || undefined,
    plusOne: hf.plusOne?.test(ggufName) || undefined,
  };
  return change.rotateHeads ?? change.transposed ?? change.plusOne ? change : undefined;
}

/**
 * Reorders a q/k weight's rows in place from Hugging Face's rotate-half order to GGUF's interleaved pairs (the
 * converter's LlamaModel.permute), or back (`inverse`): per head of d rows, HF row s·d/2 + i (s = 0, 1) is GGUF row 2i + s.
 */
function interleaveRotaryRows(bytes: Uint8Array, rows: number, rowBytes: number, heads: number, inverse: boolean): void {
  const d = rows / heads, half = d / 2;
  for (let h = 0; h < heads; h++) {
    const base = h * d * rowBytes;
    const head = bytes.slice(base, base + d * rowBytes); // one head's rows as they were
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const [hfRow, ggufRow] = [s * half + i, 2 * i + s];
        const [from, to] = inverse ? [ggufRow, hfRow] : [hfRow, ggufRow];
        bytes.set(head.subarray(from * rowBytes, (from + 1) * rowBytes), base + to * rowBytes);
      }
    }
  }
}

/** Transposes a row-major [rows, cols] matrix of `size`-byte values in place. */
function transpose(bytes: Uint8Array, rows: number, cols: number, size: number): void {
  const source = bytes.slice();
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) bytes.set(source.subarray((r * cols + c) * size, (r * cols + c + 1) * size), (c * rows + r) * size);
  }
}

/** value i of a stored F32/F16/BF16 array, read and written as a number */
const CODECS: Record<number, { get(v: DataView, i: number): number; set(v: DataView, i: number, x: number): void }> = {
  [GGMLType.F32]: { get: (v, i) => v.getFloat32(4 * i, true), set: (v, i, x) => v.setFloat32(4 * i, x, true) },
  [GGMLType.F16]: { get: (v, i) => fp16ToFp32(v.getUint16(2 * i, true)), set: (v, i, x) => v.setUint16(2 * i, fp32ToFp16(x), true) },
  [GGMLType.BF16]: { get: (v, i) => bf16ToFp32(v.getUint16(2 * i, true)), set: (v, i, x) => v.setUint16(2 * i, fp32ToBf16(x), true) },
};

/** Adds `delta` to every value, rounded back to the stored type (as torch adds in that dtype). */
function addToValues(bytes: Uint8Array, type: GGMLType, delta: number): void {
  const codec = CODECS[type], view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < bytes.length / typeInfo(type).typeSize; i++) codec.set(view, i, codec.get(view, i) + delta);
}

/** Rewrites a tensor's bytes (HF `shape`, outermost first) in place from Hugging Face's layout to GGUF's, or back. */
export function changeLayout(bytes: Uint8Array, type: GGMLType, shape: readonly number[], change: LayoutChange, toHF = false): void {
  const size = typeInfo(type).typeSize;
  if (change.rotateHeads !== undefined) interleaveRotaryRows(bytes, shape[0], bytes.length / shape[0], change.rotateHeads, toHF);
  if (change.transposed) transpose(bytes, toHF ? shape[1] : shape[0], toHF ? shape[0] : shape[1], size);
  if (change.plusOne) addToValues(bytes, type, toHF ? -1 : 1);
}
