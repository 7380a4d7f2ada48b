// The one dispatch table from a ggml type to its block codec: decoding rows to float32, and for matrix-vector
// products as ggml's CPU backend does them: each weight type's vec_dot_type, the quantizer that turns a float32
// activation row into that type, and the dot product of a weight row with such an activation row.

import { GGMLType, UnknownTensorTypeError, typeInfo, typeName } from './ggml-type.js';
import type { WeightTensor } from './tensor.js';
import { TensorDataError } from './bytes.js';
import {
  BF16_FORMAT, F16_FORMAT, dequantizeF32, dequantizeHalf, dotF32, dotHalf, quantizeF32, quantizeHalf, type HalfFormat,
} from './quants/floats.js';
import {
  IQ4_NL_FORMAT, Q4_0_FORMAT, Q4_1_FORMAT, Q5_0_FORMAT, Q5_1_FORMAT, Q8_0_FORMAT, Q8_1_FORMAT,
  dequantizeBlocks32, dotBlocks32, quantizeBlocksQ8, type Block32Format,
} from './quants/block32.js';
import {
  IQ4_XS_FORMAT, Q2_K_FORMAT, Q3_K_FORMAT, Q4_K_FORMAT, Q5_K_FORMAT, Q6_K_FORMAT,
  dequantizeBlocksK, dequantizeBlocksQ8_K, dotBlocksK, quantizeBlocksQ8_K, type KQuantFormat,
} from './quants/kquants.js';
import { Q8_0, Q8_1 } from './quants/layout.js';

/** Decodes nBlocks blocks starting at src[at] to out[outAt…]. */
type DequantizeBlocks = (src: Uint8Array, at: number, nBlocks: number, out: Float32Array, outAt: number) => void;
/** Encodes nBlocks blocks of values x[xAt…] to out[outAt…]. */
type QuantizeBlocks = (x: Float32Array, xAt: number, nBlocks: number, out: Uint8Array, outAt: number) => void;
/** The dot product of nBlocks weight blocks at w[wAt] with nBlocks activation blocks at a[aAt]. */
type DotBlocks = (w: Uint8Array, wAt: number, a: Uint8Array, aAt: number, nBlocks: number) => number;

interface Codec {
  readonly dequantize: DequantizeBlocks;
  /** for the types activations are quantized to (the vec_dot_types) */
  readonly quantize?: QuantizeBlocks;
  /** for the weight types: their vec_dot_type and the dot product with it */
  readonly dot?: { readonly type: GGMLType; readonly blocks: DotBlocks };
}

function halfCodec(format: HalfFormat, type: GGMLType): Codec {
  return {
    dequantize: (src, at, n, out, outAt) => dequantizeHalf(format, src, at, n, out, outAt),
    quantize: (x, xAt, n, out, outAt) => quantizeHalf(format, x, xAt, n, out, outAt),
    dot: { type, blocks: (w, wAt, a, aAt, n) => dotHalf(format, w, wAt, a, aAt, n) },
  };
}

function block32Codec(format: Block32Format, dotType: GGMLType): Codec {
  return {
    dequantize: (src, at, n, out, outAt) => dequantizeBlocks32(format, src, at, n, out, outAt),
    dot: { type: dotType, blocks: (w, wAt, a, aAt, n) => dotBlocks32(format, w, wAt, a, aAt, n) },
  };
}

function kQuantCodec(format: KQuantFormat): Codec {
  return {
    dequantize: (src, at, n, out, outAt) => dequantizeBlocksK(format, src, at, n, out, outAt),
    dot: { type: GGMLType.Q8_K, blocks: (w, wAt, a, aAt, n) => dotBlocksK(format, w, wAt, a, aAt, n) },
  };
}

/** A codec together with its type's block geometry. */
interface TypeCodec extends Codec {
  readonly type: GGMLType;
  readonly name: string;
  readonly blockSize: number;
  readonly typeSize: number;
}

const CODECS: ReadonlyArray<[GGMLType, Codec]> = [
  [GGMLType.F32, { dequantize: dequantizeF32, quantize: quantizeF32, dot: { type: GGMLType.F32, blocks: dotF32 } }],
  [GGMLType.F16, halfCodec(F16_FORMAT, GGMLType.F16)],
  [GGMLType.BF16, halfCodec(BF16_FORMAT, GGMLType.BF16)],
  [GGMLType.Q4_0, block32Codec(Q4_0_FORMAT, GGMLType.Q8_0)],
  [GGMLType.Q4_1, block32Codec(Q4_1_FORMAT, GGMLType.Q8_1)],
  [GGMLType.Q5_0, block32Codec(Q5_0_FORMAT, GGMLType.Q8_0)],
  [GGMLType.Q5_1, block32Codec(Q5_1_FORMAT, GGMLType.Q8_1)],
  [GGMLType.Q8_0, {
    ...block32Codec(Q8_0_FORMAT, GGMLType.Q8_0),
    quantize: (x, xAt, n, out, outAt) => quantizeBlocksQ8(Q8_0, x, xAt, n, out, outAt),
  }],
  [GGMLType.Q8_1, {
    dequantize: (src, at, n, out, outAt) => dequantizeBlocks32(Q8_1_FORMAT, src, at, n, out, outAt),
    quantize: (x, xAt, n, out, outAt) => quantizeBlocksQ8(Q8_1, x, xAt, n, out, outAt),
  }],
  [GGMLType.Q2_K, kQuantCodec(Q2_K_FORMAT)],
  [GGMLType.Q3_K, kQuantCodec(Q3_K_FORMAT)],
  [GGMLType.Q4_K, kQuantCodec(Q4_K_FORMAT)],
  [GGMLType.Q5_K, kQuantCodec(Q5_K_FORMAT)],
  [GGMLType.Q6_K, kQuantCodec(Q6_K_FORMAT)],
  [GGMLType.IQ4_NL, block32Codec(IQ4_NL_FORMAT, GGMLType.Q8_0)],
  [GGMLType.IQ4_XS, kQuantCodec(IQ4_XS_FORMAT)],
  [GGMLType.Q8_K, { dequantize: dequantizeBlocksQ8_K, quantize: quantizeBlocksQ8_K }],
];

// indexed by type id, so that the per-row entry points cost an array read
const BY_TYPE: (TypeCodec | undefined)[] = [];
for (const [type, codec] of CODECS) {
  const { blockSize, typeSize } = typeInfo(type);
  BY_TYPE[type] = { ...codec, type, name: typeName(type), blockSize, typeSize };
}

function codecOf(type: GGMLType): TypeCodec {
  const codec = BY_TYPE[type];
  if (!codec) throw new UnknownTensorTypeError(type, 'no block codec');
  return codec;
}

/** The block count of a row of n values; throws unless n is a whole number of blocks. */
function blocksIn(codec: TypeCodec, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0 || n % codec.blockSize !== 0) {
    throw new TensorDataError(`a row of ${n} values is not a whole number of ${codec.name} blocks of ${codec.blockSize}`);
  }
  return n / codec.blockSize;
}

function checkRange(what: string, length: number, offset: number, needed: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + needed > length) {
    throw new TensorDataError(`${what}: ${needed} from offset ${offset} do not fit in ${length}`);
  }
}

/** The types that can be decoded to float32. */
export function canDequantize(type: GGMLType): boolean {
  return BY_TYPE[type] !== undefined;
}

/** Decodes the n values of a row of `type` whose bytes start at src[0] into out[outOffset…outOffset+n). */
export function dequantizeRow(type: GGMLType, src: Uint8Array, n: number, out: Float32Array, outOffset = 0): void {
  const codec = codecOf(type);
  const nBlocks = blocksIn(codec, n);
  checkRange(`${codec.name} row bytes`, src.length, 0, nBlocks * codec.typeSize);
  checkRange('output values', out.length, outOffset, n);
  codec.dequantize(src, 0, nBlocks, out, outOffset);
}

/** All values of a weight tensor as float32, in ggml order (row by row, ne[0] values per row). */
export function dequantizeTensor(t: WeightTensor): Float32Array {
  const codec = codecOf(t.type);
  let nElements = 1;
  for (const dim of t.dims) {
    if (!Number.isSafeInteger(dim) || dim < 0) throw new TensorDataError(`tensor "${t.name}" has a bad dimension ${dim}`);
    nElements *= dim;
  }
  if (!Number.isSafeInteger(nElements)) throw new TensorDataError(`tensor "${t.name}" is too large`);
  blocksIn(codec, t.dims[0] ?? 1); // every row is whole blocks
  const nBlocks = nElements / codec.blockSize;
  const nBytes = nBlocks * codec.typeSize;
  if (t.data.length < nBytes) {
    throw new TensorDataError(`tensor "${t.name}" needs ${nBytes} bytes of ${codec.name} data, has ${t.data.length}`);
  }
  const out = new Float32Array(nElements);
  codec.dequantize(t.data, 0, nBlocks, out, 0);
  return out;
}

function weightCodecOf(type: GGMLType): TypeCodec & Required<Pick<Codec, 'dot'>> {
  const codec = codecOf(type);
  if (!codec.dot) throw new UnknownTensorTypeError(type, 'not a weight type for matrix products');
  return codec as TypeCodec & Required<Pick<Codec, 'dot'>>;
}

function activationCodecOf(type: GGMLType): TypeCodec & Required<Pick<Codec, 'quantize'>> {
  const codec = codecOf(type);
  if (!codec.quantize) throw new UnknownTensorTypeError(type, 'not an activation type');
  return codec as TypeCodec & Required<Pick<Codec, 'quantize'>>;
}

/** The type ggml quantizes activations to before multiplying them with weights of `weightType` (its vec_dot_type). */
export function vecDotType(weightType: GGMLType): GGMLType {
  return weightCodecOf(weightType).dot.type;
}

/** Bytes of one activation row of n values quantized to `type` (a vec_dot_type). */
export function activationRowBytes(type: GGMLType, n: number): number {
  const codec = activationCodecOf(type);
  return blocksIn(codec, n) * codec.typeSize;
}

/** Quantizes x[xOffset…xOffset+n) to `type` (a vec_dot_type), writing activationRowBytes(type, n) bytes at out[outOffset]. */
export function quantizeRowForDot(type: GGMLType, x: Float32Array, xOffset: number, n: number, out: Uint8Array, outOffset: number): void {
  const codec = activationCodecOf(type);
  const nBlocks = blocksIn(codec, n);
  checkRange('input values', x.length, xOffset, n);
  checkRange(`${codec.name} output bytes`, out.length, outOffset, nBlocks * codec.typeSize);
  codec.quantize(x, xOffset, nBlocks, out, outOffset);
}

/**
 * The dot product of a weight row of n values of `weightType` (bytes at w[wOffset]) with an activation row
 * quantized by quantizeRowForDot(vecDotType(weightType), …) (bytes at a[aOffset]).
 */
export function vecDot(weightType: GGMLType, w: Uint8Array, wOffset: number, a: Uint8Array, aOffset: number, n: number): number {
  const codec = weightCodecOf(weightType);
  const activation = codecOf(codec.dot.type);
  const nBlocks = blocksIn(codec, n);
  checkRange(`${codec.name} weight bytes`, w.length, wOffset, nBlocks * codec.typeSize);
  checkRange(`${activation.name} activation bytes`, a.length, aOffset, blocksIn(activation, n) * activation.typeSize);
  return codec.dot.blocks(w, wOffset, a, aOffset, nBlocks);
}
