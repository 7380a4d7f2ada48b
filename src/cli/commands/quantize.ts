// `kiln quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--pure] [--output-type T] [--token-embedding-type T]
// [--allow-requantize]`: llama-quantize's output, byte for byte (same tensor types, order, data and metadata).

import { optBool, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { loadGGUF } from '../../gguf/model-file.js';
import { writeGGUF } from '../../gguf/writer.js';
import { GGMLType, typeFromName, typeName } from '../../tensor/ggml-type.js';
import { canQuantizeTo } from '../../quant/ggml-quantize.js';
import { readImatrix } from '../../quant/imatrix.js';
import { FILE_TYPE_NAMES, fileTypeFromName, fileTypeName } from '../../quant/mix.js';
import { quantizeModel, type TensorProgress } from '../../quant/quantize-model.js';
import { PTQ_OPTIONS, runPtqQuantize } from './quantize-ptq.js';

/** ggml's spelling of a type name: f32, bf16, q4_K, q8_0. */
function ggmlName(type: GGMLType): string {
  return typeName(type).replace(/^[A-Z]+/, (prefix) => prefix.toLowerCase());
}

function tensorTypeOption(args: ParsedArgs, name: string): GGMLType | undefined {
  const value = optString(args, name);
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

function progressBar(done: number, total: number, width = 30): string {
  const filled = Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(2)} MiB`;
}

export const quantizeCommand: Command = {
  name: 'quantize',
  usage: `IN.gguf OUT.gguf TYPE [--imatrix FILE] [--pure] [--output-type T] [--token-embedding-type T] [--allow-requantize] | IN.gguf OUT.gguf (--scheme S | --target-bpw X) [-f CALIB]`,
  summary: `quantize a GGUF model exactly as llama.cpp's llama-quantize (TYPE: ${FILE_TYPE_NAMES.join(', ')})`,
  options: [
    { name: 'imatrix', description: 'importance matrix (llama-imatrix .dat or GGUF) for the weighted quantizers' },
    { name: 'pure', boolean: true, description: 'give every quantized tensor TYPE\'s default type (no mix rules)' },
    { name: 'output-type', description: 'tensor type for output.weight (e.g. q8_0, f16)' },
    { name: 'token-embedding-type', description: 'tensor type for token_embd.weight' },
    { name: 'allow-requantize', boolean: true, description: 'allow converting tensors that are already quantized' },
    ...PTQ_OPTIONS,
  ],
  async run(args: ParsedArgs) {
    if (await runPtqQuantize(args)) return;
    const [input, output, typeArg, ...extra] = args.positionals;
    if (typeArg === undefined || extra.length > 0) throw new UsageError(`usage: kiln quantize ${quantizeCommand.usage}`);
    let ftype;
    try {
      ftype = fileTypeFromName(typeArg);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const imatrixPath = optString(args, 'imatrix');
    const imatrix = imatrixPath !== undefined ? readImatrix(imatrixPath) : undefined;
    const model = loadGGUF(input);
    const nameWidth = Math.max(...model.tensorInfos.map((t) => t.name.length));
    const showBar = process.stderr.isTTY === true;
    if (imatrix) console.error(`imatrix: ${imatrix.entries.size} entries from ${imatrixPath}${imatrix.dataset ? ` (${imatrix.dataset})` : ''}`);

    const result = quantizeModel(model, {
      ftype,
      pure: optBool(args, 'pure'),
      outputType: tensorTypeOption(args, 'output-type'),
      tokenEmbeddingType: tensorTypeOption(args, 'token-embedding-type'),
      allowRequantize: optBool(args, 'allow-requantize'),
      imatrix,
      imatrixPath,
      onTensor(p) {
        if (showBar) process.stderr.write('\r\x1b[K');
        process.stderr.write(`${tensorLogLine(p, nameWidth)}\n`);
        if (showBar) process.stderr.write(progressBar(p.index, p.count));
      },
    });
    if (showBar) process.stderr.write('\r\x1b[K');
    await writeGGUF(output, result);

    const before = model.tensorInfos.reduce((sum, t) => sum + t.nBytes, 0);
    const after = result.tensors.reduce((sum, t) => sum + t.data.length, 0);
    const nValues = model.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
    console.log(`${output}: ${fileTypeName(ftype)}, tensors ${mib(before)} → ${mib(after)} (${((after * 8) / nValues).toFixed(2)} bits per weight)`);
  },
};
