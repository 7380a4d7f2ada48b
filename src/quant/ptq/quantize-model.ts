// A model quantized by a PTQ scheme. Every tensor llama-quantize would quantize (./mix.ts isQuantizable) is
// either stored in the GGUF type that is the scheme's own block format (ggufTypeForScheme: Q8_0, Q4_0, Q4_1,
// via ../ggml-quantize.ts) or, for every other scheme, fake-quantized and stored as float32 holding the
// dequantized values: kiln runs such a file as any F32 model and its accuracy is the scheme's, but it is no
// smaller (simulation). A tensor whose rows do not split into the scheme's groups is left as it is.
// Metadata: kiln.quant.scheme (e.g. "int4 asym per-group 32; stored as dequantized F32 (simulated)") and, when
// activations were calibrated, kiln.quant.activation.{method,format,tensors,clip} (the clipping threshold per
// matrix product input), which kiln perplexity and quant-report apply (ptq/activations.ts
// withActivationQuantization); other commands run such a file with float activations.

import type { GGUFModelFile } from '../../gguf/model-file.js';
import { GGUFValueType, type GGUFValue } from '../../gguf/types.js';
import { metaArray, metaString, metaU32, type GGUFTensorInput, type GGUFWriteInput } from '../../gguf/writer.js';
import { dequantizeTensor } from '../../tensor/codec.js';
import { GGMLType, typeName } from '../../tensor/ggml-type.js';
import { quantizeRows } from '../ggml-quantize.js';
import { isQuantizable, LlamaFileType } from '../mix.js';
import type { ActivationRange } from './activations.js';
import type { CalibrationMethod } from './calibrate.js';
import { fakeQuantize } from './fake-quant.js';
import { describeScheme, ggufTypeForScheme, type NumberFormat, type QuantScheme } from './scheme.js';

export interface SchemeTensorResult {
  name: string;
  dims: readonly number[];
  /** the stored type (F32 for simulated schemes) */
  type: GGMLType;
  /** quantized (stored or simulated), or left as it was */
  quantized: boolean;
  /** why it was left as it was */
  skipped?: string;
  /** ‖x − x̂‖ / ‖x‖ of the quantized tensor */
  relativeError: number;
}

export interface SchemeQuantizeOptions {
  /** calibrated activation clipping ranges and the format activations are to be simulated in */
  activations?: { method: CalibrationMethod; format: NumberFormat; ranges: readonly ActivationRange[] };
  onTensor?: (result: SchemeTensorResult) => void;
}

const FILE_TYPE_OF = new Map([[GGMLType.Q8_0, LlamaFileType.MOSTLY_Q8_0], [GGMLType.Q4_0, LlamaFileType.MOSTLY_Q4_0], [GGMLType.Q4_1, LlamaFileType.MOSTLY_Q4_1]]);

function relativeError(x: Float32Array, y: Float32Array): number {
  let err = 0, norm = 0;
  for (let i = 0; i < x.length; i++) { err += (x[i] - y[i]) ** 2; norm += x[i] * x[i]; }
  return norm > 0 ? Math.sqrt(err / norm) : 0;
}

/** Why a scheme cannot cover a tensor's rows, or undefined when it can. */
function unfit(scheme: QuantScheme, nPerRow: number): string | undefined {
  if (scheme.granularity === 'group' && nPerRow % scheme.groupSize !== 0) return `rows of ${nPerRow} do not split into groups of ${scheme.groupSize}`;
  return undefined;
}

/** Quantizes every quantizable tensor of `file` by `scheme`; returns what writeGGUF needs. */
export function quantizeWithScheme(file: GGUFModelFile, scheme: QuantScheme, options: SchemeQuantizeOptions = {}): GGUFWriteInput {
  const gguf = ggufTypeForScheme(scheme);
  const tensors: GGUFTensorInput[] = file.tensorInfos.map((info) => {
    const source = file.tensor(info.name);
    const nPerRow = info.dims[0];
    const skipped = !isQuantizable(info) ? 'not quantized by llama-quantize either' : unfit(scheme, nPerRow);
    if (skipped) {
      options.onTensor?.({ name: info.name, dims: info.dims, type: info.type, quantized: false, skipped, relativeError: 0 });
      return { name: info.name, dims: info.dims, type: info.type, data: source.data };
    }
    const x = dequantizeTensor(source);
    let tensor: GGUFTensorInput, values: Float32Array;
    if (gguf !== undefined) {
      tensor = { name: info.name, dims: info.dims, type: gguf, data: quantizeRows(gguf, x, nPerRow, x.length / nPerRow) };
      values = dequantizeTensor(tensor);
    } else {
      values = fakeQuantize(x, nPerRow, scheme).values;
      tensor = { name: info.name, dims: info.dims, type: GGMLType.F32, data: new Uint8Array(values.buffer) };
    }
    options.onTensor?.({ name: info.name, dims: info.dims, type: tensor.type, quantized: true, relativeError: relativeError(x, values) });
    return tensor;
  });

  const metadata = new Map<string, GGUFValue>(file.metadata);
  const storage = gguf !== undefined ? `stored as ${typeName(gguf)}` : 'stored as dequantized F32 (simulated)';
  metadata.set('general.file_type', metaU32(gguf !== undefined ? FILE_TYPE_OF.get(gguf)! : LlamaFileType.ALL_F32));
  metadata.set('kiln.quant.scheme', metaString(`${describeScheme(scheme)}; ${storage}`));
  const activations = options.activations;
  if (activations) {
    metadata.set('kiln.quant.activation.method', metaString(activations.method));
    metadata.set('kiln.quant.activation.format', metaString(activations.format));
    metadata.set('kiln.quant.activation.tensors', metaArray(GGUFValueType.STRING, activations.ranges.map((r) => r.tensor)));
    metadata.set('kiln.quant.activation.clip', metaArray(GGUFValueType.FLOAT32, activations.ranges.map((r) => r.clip)));
  }
  return { metadata, tensors, alignment: file.header.alignment };
}
