// The options `kiln quantize` gains beyond llama-quantize (its TYPE argument is then not needed):
//   --scheme S [--calibrate minmax|percentile|kl -f CALIB [--percentile P] [--act-format F]]: a PTQ scheme
//       (src/quant/ptq), with the activation clipping ranges calibrated on CALIB, reported and recorded in the
//       metadata (kiln perplexity then simulates activations quantized to F within them);
//   --target-bpw X [-f CALIB]: a type per tensor chosen by sensitivity (src/quant/sensitivity.ts) within
//       X bits per weight, measured on CALIB (or seeded random tokens without -f).
// Calibration chunks: -c tokens each (default 128), at most --chunks of them (default 8).

import { readFileSync } from 'node:fs';
import { optNumber, optInt, optString, UsageError, type OptionSpec, type ParsedArgs } from '../args.js';
import { loadGGUF, type GGUFModelFile } from '../../gguf/model-file.js';
import { metaF32, metaU32, writeGGUF, type GGUFWriteInput } from '../../gguf/writer.js';
import { typeName } from '../../tensor/ggml-type.js';
import { LlamaFileType } from '../../quant/mix.js';
import { quantizeModel } from '../../quant/quantize-model.js';
import { assignTypes, calibrationChunks, measureSensitivity } from '../../quant/sensitivity.js';
import { ACTIVATION_FORMATS, calibrateActivations } from '../../quant/ptq/activations.js';
import { CALIBRATION_METHODS, type CalibrationMethod } from '../../quant/ptq/calibrate.js';
import { quantizeWithScheme } from '../../quant/ptq/quantize-model.js';
import { describeScheme, parseScheme, SchemeError, type NumberFormat } from '../../quant/ptq/scheme.js';

export const PTQ_OPTIONS: OptionSpec[] = [
  { name: 'scheme', description: 'PTQ scheme instead of TYPE: int8|int4|int2|fp8-e4m3|fp8-e5m2[-sym|-asym][-tensor|-channel|-gN]' },
  { name: 'calibrate', description: `with --scheme: calibrate activation ranges on -f by ${CALIBRATION_METHODS.join('|')}` },
  { name: 'percentile', description: 'share of |x| kept by --calibrate percentile (default 99.99)' },
  { name: 'act-format', description: `with --calibrate: activation format simulated by kiln perplexity, ${ACTIVATION_FORMATS.join('|')} (default int8)` },
  { name: 'target-bpw', description: 'instead of TYPE: a type per tensor by sensitivity, within this many bits per weight' },
  { name: 'file', short: 'f', description: 'calibration text for --calibrate and --target-bpw' },
  { name: 'ctx', short: 'c', description: 'calibration tokens per chunk (default 128)' },
  { name: 'chunks', description: 'calibration chunks (default 8)' },
];

/** llama.cpp's LLAMA_FTYPE_GUESSED: a file whose tensors follow no single file type. */
const FILE_TYPE_GUESSED = 1024;

/** -c and --chunks, checked. */
function calibrationShape(args: ParsedArgs): { ctx: number; chunks: number } {
  const ctx = optInt(args, 'ctx') ?? 128, chunks = optInt(args, 'chunks') ?? 8;
  if (ctx < 4 || chunks < 1) throw new UsageError('calibration needs -c of at least 4 and --chunks of at least 1');
  return { ctx, chunks };
}

function calibrationText(args: ParsedArgs): string | undefined {
  const path = optString(args, 'file');
  return path === undefined ? undefined : readFileSync(path, 'utf8');
}

function schemeOutput(model: GGUFModelFile, args: ParsedArgs, schemeText: string): GGUFWriteInput {
  let scheme;
  try {
    scheme = parseScheme(schemeText);
  } catch (e) {
    throw e instanceof SchemeError ? new UsageError(e.message) : e;
  }
  const method = optString(args, 'calibrate') as CalibrationMethod | undefined;
  let activations;
  if (method !== undefined) {
    if (!CALIBRATION_METHODS.includes(method)) throw new UsageError(`--calibrate: one of ${CALIBRATION_METHODS.join(', ')}`);
    const format = (optString(args, 'act-format') ?? 'int8') as NumberFormat;
    if (!ACTIVATION_FORMATS.includes(format)) throw new UsageError(`--act-format: one of ${ACTIVATION_FORMATS.join(', ')}`);
    const text = calibrationText(args);
    if (text === undefined) throw new UsageError('--calibrate needs a calibration text (-f FILE)');
    const percentile = optNumber(args, 'percentile');
    if (percentile !== undefined && !(percentile > 0 && percentile <= 100)) throw new UsageError('--percentile must be in (0, 100]');
    const { ctx, chunks: maxChunks } = calibrationShape(args);
    const chunks = calibrationChunks(model, text, ctx, maxChunks);
    const ranges = calibrateActivations(model, chunks, { method, percentile });
    console.error(`activation clipping ranges (${method}, ${chunks.length} chunks):`);
    const width = Math.max(...ranges.map((r) => r.tensor.length));
    for (const r of ranges) {
      console.error(`  ${r.tensor.padEnd(width)}  amax ${r.amax.toPrecision(5).padStart(10)}  clip ${r.clip.toPrecision(5).padStart(10)}  (${((100 * r.clip) / r.amax).toFixed(1)}% of amax)`);
    }
    activations = { method, format, ranges };
  }
  console.error(`scheme: ${describeScheme(scheme)}`);
  const width = Math.max(...model.tensorInfos.map((t) => t.name.length));
  return quantizeWithScheme(model, scheme, {
    activations,
    onTensor: (t) => console.error(`  ${t.name.padEnd(width)}  [${t.dims.join(', ')}]  ${t.quantized
      ? `→ ${typeName(t.type)}  relative error ${t.relativeError.toExponential(3)}` : `kept ${typeName(t.type)}: ${t.skipped}`}`),
  });
}

function targetBpwOutput(model: GGUFModelFile, args: ParsedArgs, targetBpw: number): GGUFWriteInput {
  const text = calibrationText(args);
  const { ctx, chunks: maxChunks } = calibrationShape(args);
  const chunks = calibrationChunks(model, text, ctx, maxChunks);
  console.error(`sensitivity: mean KL divergence over ${chunks.length} chunks of ${chunks[0].length} ${text === undefined ? 'random tokens' : 'tokens'} with one tensor quantized`);
  const sensitivity = measureSensitivity(model, chunks, { log: (line) => console.error(`  ${line}`) });
  const assignment = assignTypes(model, sensitivity, targetBpw);
  console.error(`assignment (${assignment.bitsPerWeight.toFixed(3)} bits per weight, target ${targetBpw}; summed KLD ${assignment.predictedKld.toExponential(3)}):`);
  const width = Math.max(...sensitivity.map((s) => s.name.length));
  for (const s of sensitivity) {
    const type = assignment.types.get(s.name)!;
    console.error(`  ${s.name.padEnd(width)}  ${typeName(type).padEnd(5)}  KLD ${s.candidates.find((c) => c.type === type)!.kld.toExponential(3)}`);
  }
  const result = quantizeModel(model, { ftype: LlamaFileType.ALL_F32, tensorTypes: assignment.types });
  const metadata = new Map(result.metadata);
  metadata.set('general.file_type', metaU32(FILE_TYPE_GUESSED));
  metadata.set('kiln.quant.target_bpw', metaF32(targetBpw));
  return { ...result, metadata };
}

/** Runs `kiln quantize IN OUT` with --scheme or --target-bpw; false when neither is given. */
export async function runPtqQuantize(args: ParsedArgs): Promise<boolean> {
  const schemeText = optString(args, 'scheme');
  const targetBpw = optNumber(args, 'target-bpw');
  if (schemeText === undefined && targetBpw === undefined) return false;
  const [input, output, ...extra] = args.positionals;
  if (!output || extra.length > 0) throw new UsageError('with --scheme or --target-bpw: kiln quantize IN.gguf OUT.gguf (no TYPE)');
  if (schemeText !== undefined && targetBpw !== undefined) throw new UsageError('--scheme and --target-bpw do not go together');
  if (targetBpw !== undefined && !(targetBpw > 0)) throw new UsageError('--target-bpw must be positive');
  const model = loadGGUF(input);
  const result = schemeText !== undefined ? schemeOutput(model, args, schemeText) : targetBpwOutput(model, args, targetBpw!);
  await writeGGUF(output, result);
  const bytes = result.tensors.reduce((sum, t) => sum + t.data.length, 0);
  const nValues = model.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
  const scheme = result.metadata.get('kiln.quant.scheme')?.value;
  console.log(`${output}: tensors ${(bytes / 1048576).toFixed(2)} MiB (${((8 * bytes) / nValues).toFixed(2)} bits per weight)${scheme ? `, ${scheme}` : ''}`);
  return true;
}
