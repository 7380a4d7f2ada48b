// `kiln quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--pure] [--output-type T] [--token-embedding-type T]
// [--allow-requantize]`: llama-quantize's output, byte for byte (same tensor types, order, data and metadata).

import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { loadModelFile } from '../../hf/checkpoint.js';
import { writeGGUF } from '../../gguf/writer.js';
import { GGMLType, typeFromName, typeName } from '../../tensor/ggml-type.js';
import { canQuantizeTo } from '../../quant/ggml-quantize.js';
import { readImatrix } from '../../quant/imatrix.js';
import { FILE_TYPE_NAMES, fileTypeFromName, fileTypeName } from '../../quant/mix.js';
import { quantizeModel, type TensorProgress } from '../../quant/quantize-model.js';
import { runPtqQuantize, withPtq } from './quantize-ptq.js';
import { UsageError } from '../options.js';
import { modelPath } from '../default-model.js';
import { withProgress } from '../progress.js';

/** ggml's spelling of a type name: f32, bf16, q4_K, q8_0. */
function ggmlName(type: GGMLType): string {
  return typeName(type).replace(/^[A-Z]+/, (prefix) => prefix.toLowerCase());
}

/** A tensor type given to --NAME, checked to be one kiln quantizes to. */
function tensorTypeOption(name: string, value: string | undefined): GGMLType | undefined {
  if (value === undefined) return undefined;
  let type: GGMLType;
  try {
    type = typeFromName(value);
  } catch {
    throw new UsageError(`--${name}: unknown tensor type "${value}"`);
  }
  if (!canQuantizeTo(type)) throw new UsageError(`--${name}: kiln cannot quantize to ${typeName(type)}`);
  return type;
}

/** `[ 3/21] blk.0.attn_k.weight  f32 → q4_K  [256, 128]  131072 → 18432 bytes` */
export function tensorLogLine(p: TensorProgress, nameWidth: number): string {
  const index = `[${String(p.index).padStart(String(p.count).length)}/${p.count}]`;
  const types = p.converted ? `${ggmlName(p.from)} → ${ggmlName(p.to)}` : `${ggmlName(p.from)} (copied)`;
  const imatrix = p.usedImatrix ? '  imatrix' : '';
  return `${index} ${p.name.padEnd(nameWidth)}  ${types}  [${p.dims.join(', ')}]  ${p.fromBytes} → ${p.toBytes} bytes${imatrix}`;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(2)} MiB`;
}

export function quantizeCommand(): CommandUnknownOpts {
  const command = new Command('quantize')
    .summary('quantize a GGUF model exactly as llama.cpp\'s llama-quantize, or by a PTQ scheme')
    .description(`Quantize a GGUF model byte for byte as llama-quantize does (TYPE: ${FILE_TYPE_NAMES.join(', ')}); ` +
      'or, instead of TYPE, by a PTQ scheme (--scheme) or a type per tensor within a bit budget (--target-bpw).')
    .argument('<IN>', 'the model to quantize: a GGUF file or a Hugging Face folder')
    .argument('<OUT>', 'the GGUF file to write')
    .argument('[TYPE]', 'llama-quantize\'s file type, e.g. Q4_K_M (not with --scheme or --target-bpw)')
    .option('--imatrix <file>', 'importance matrix (llama-imatrix .dat or GGUF) for the weighted quantizers')
    .option('--pure', 'give every quantized tensor TYPE\'s default type (no mix rules)')
    .option('--output-type <type>', 'tensor type for output.weight (e.g. q8_0, f16)')
    .option('--token-embedding-type <type>', 'tensor type for token_embd.weight')
    .option('--allow-requantize', 'allow converting tensors that are already quantized');
  return withPtq(command).action(async (inputArg, output, typeArg, o) => {
    const input = modelPath(inputArg);
    if (await runPtqQuantize(input, output, typeArg, o)) return;
    if (typeArg === undefined) throw new UsageError('TYPE is required (or --scheme S, or --target-bpw X)');
    let ftype;
    try {
      ftype = fileTypeFromName(typeArg);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const outputType = tensorTypeOption('output-type', o.outputType);
    const tokenEmbeddingType = tensorTypeOption('token-embedding-type', o.tokenEmbeddingType);
    const imatrix = o.imatrix !== undefined ? readImatrix(o.imatrix) : undefined;
    const model = loadModelFile(input);
    const nameWidth = Math.max(...model.tensorInfos.map((t) => t.name.length));
    if (imatrix) console.error(`imatrix: ${imatrix.entries.size} entries from ${o.imatrix}${imatrix.dataset ? ` (${imatrix.dataset})` : ''}`);

    const result = await withProgress('tensor', model.tensorInfos.length, (progress) => quantizeModel(model, {
      ftype,
      pure: o.pure,
      outputType,
      tokenEmbeddingType,
      allowRequantize: o.allowRequantize,
      imatrix,
      imatrixPath: o.imatrix,
      onTensor(p) {
        progress.log(tensorLogLine(p, nameWidth));
        progress.update(p.index, '', p.count);
      },
    }));
    await writeGGUF(output, result);

    const before = model.tensorInfos.reduce((sum, t) => sum + t.nBytes, 0);
    const after = result.tensors.reduce((sum, t) => sum + t.data.length, 0);
    const nValues = model.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
    console.log(`${output}: ${fileTypeName(ftype)}, tensors ${mib(before)} → ${mib(after)} (${((after * 8) / nValues).toFixed(2)} bits per weight)`);
  });
}
