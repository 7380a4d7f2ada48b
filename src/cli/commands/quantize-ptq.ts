// The options `kiln quantize` gains beyond llama-quantize (its TYPE argument is then not needed):
//   --scheme S [--calibrate minmax|percentile|kl -f CALIB [--percentile P] [--act-format F]]: a PTQ scheme
//       (src/quant/ptq), with the activation clipping ranges calibrated on CALIB, reported and recorded in the
//       metadata (kiln perplexity then simulates activations quantized to F within them);
//   --target-bpw X [-f CALIB]: a type per tensor chosen by sensitivity (src/quant/sensitivity.ts) within
//       X bits per weight, measured on CALIB (or seeded random tokens without -f).
// Calibration chunks: -c tokens each (default 128, or the model's context where shorter), at most --chunks of them.

import { readFileSync } from 'node:fs';
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import { ctxOption, decimal, integer, UsageError } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';
import { readBaseHParams } from '../../models/hparams.js';
import type { GGUFModelFile } from '../../gguf/model-file.js';
import { loadModelFile } from '../../hf/checkpoint.js';
import { metaF32, metaU32, writeGGUF, type GGUFWriteInput } from '../../gguf/writer.js';
import { typeName } from '../../tensor/ggml-type.js';
import { LlamaFileType } from '../../quant/mix.js';
import { quantizeModel } from '../../quant/quantize-model.js';
import { assignTypes, calibrationChunks, measureSensitivity } from '../../quant/sensitivity.js';
import { ACTIVATION_FORMATS, calibrateActivations } from '../../quant/ptq/activations.js';
import { CALIBRATION_METHODS, type CalibrationMethod } from '../../quant/ptq/calibrate.js';
import { quantizeWithScheme } from '../../quant/ptq/quantize-model.js';
import { describeScheme, parseScheme, SchemeError, type NumberFormat } from '../../quant/ptq/scheme.js';

/** Calibration tokens per chunk without -c (or the model's context where that is shorter). */
const CALIBRATION_CONTEXT_CAP = 128;

/** The PTQ flags as commander parses them. */
export type PtqFlags = {
  scheme?: string;
  calibrate?: CalibrationMethod;
  percentile?: number;
  actFormat: NumberFormat;
  targetBpw?: number;
  file?: string;
  ctx?: number;
  chunks: number;
};

export function withPtq<A extends unknown[], O extends OptionValues, G extends OptionValues>(command: Command<A, O, G>): Command<A, O & PtqFlags, G> {
  return command
    .optionsGroup('Post-training quantization (instead of TYPE):')
    .option('--scheme <scheme>', 'PTQ scheme: int8|int4|int2|fp8-e4m3|fp8-e5m2[-sym|-asym][-tensor|-channel|-gN]')
    .addOption(new Option('--calibrate <method>', 'with --scheme: calibrate activation ranges on -f').choices(CALIBRATION_METHODS))
    .addOption(new Option('--percentile <p>', 'share of |x| kept by --calibrate percentile (default 99.99)').argParser(decimal))
    .addOption(new Option('--act-format <format>', 'with --calibrate: activation format simulated by kiln perplexity').choices(ACTIVATION_FORMATS).default('int8' as const))
    .addOption(new Option('--target-bpw <bits>', 'a type per tensor by sensitivity, within this many bits per weight').argParser(decimal))
    .option('-f, --file <text>', 'calibration text for --calibrate and --target-bpw')
    .addOption(ctxOption(`calibration tokens per chunk (default: the model's trained context, at most ${CALIBRATION_CONTEXT_CAP})`))
    .addOption(new Option('--chunks <n>', 'calibration chunks').argParser(integer(1)).default(8))
    .optionsGroup('Options:') as unknown as Command<A, O & PtqFlags, G>; // restated: see GROUP_TYPES in model-options.ts
}

/** llama.cpp's LLAMA_FTYPE_GUESSED: a file whose tensors follow no single file type. */
const FILE_TYPE_GUESSED = 1024;

/** -c (at least 4) */
function calibrationContext(model: GGUFModelFile, flags: PtqFlags): number {
  if (flags.ctx !== undefined && flags.ctx < 4) throw new UsageError('calibration needs -c of at least 4');
  return chooseContext(trainedContext(model.path, readBaseHParams(model.metadata).hp.contextLength), flags.ctx, { cap: CALIBRATION_CONTEXT_CAP });
}

function calibrationText(flags: PtqFlags): string | undefined {
  return flags.file === undefined ? undefined : readFileSync(flags.file, 'utf8');
}

function schemeOutput(model: GGUFModelFile, flags: PtqFlags, schemeText: string): GGUFWriteInput {
  let scheme;
  try {
    scheme = parseScheme(schemeText);
  } catch (e) {
    throw e instanceof SchemeError ? new UsageError(e.message) : e;
  }
  const method = flags.calibrate;
  let activations;
  if (method !== undefined) {
    const format = flags.actFormat;
    const text = calibrationText(flags);
    if (text === undefined) throw new UsageError('--calibrate needs a calibration text (-f FILE)');
    const percentile = flags.percentile;
    if (percentile !== undefined && !(percentile > 0 && percentile <= 100)) throw new UsageError('--percentile must be in (0, 100]');
    const chunks = calibrationChunks(model, text, calibrationContext(model, flags), flags.chunks);
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

function targetBpwOutput(model: GGUFModelFile, flags: PtqFlags, targetBpw: number): GGUFWriteInput {
  const text = calibrationText(flags);
  const chunks = calibrationChunks(model, text, calibrationContext(model, flags), flags.chunks);
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
export async function runPtqQuantize(input: string, output: string, type: string | undefined, flags: PtqFlags): Promise<boolean> {
  const { scheme: schemeText, targetBpw } = flags;
  if (schemeText === undefined && targetBpw === undefined) return false;
  if (type !== undefined) throw new UsageError('with --scheme or --target-bpw: kiln quantize IN.gguf OUT.gguf (no TYPE)');
  if (schemeText !== undefined && targetBpw !== undefined) throw new UsageError('--scheme and --target-bpw do not go together');
  if (targetBpw !== undefined && !(targetBpw > 0)) throw new UsageError('--target-bpw must be positive');
  const model = loadModelFile(input);
  const result = schemeText !== undefined ? schemeOutput(model, flags, schemeText) : targetBpwOutput(model, flags, targetBpw!);
  await writeGGUF(output, result);
  const bytes = result.tensors.reduce((sum, t) => sum + t.data.length, 0);
  const nValues = model.tensorInfos.reduce((sum, t) => sum + t.nElements, 0);
  const scheme = result.metadata.get('kiln.quant.scheme')?.value;
  console.log(`${output}: tensors ${(bytes / 1048576).toFixed(2)} MiB (${((8 * bytes) / nValues).toFixed(2)} bits per weight)${scheme ? `, ${scheme}` : ''}`);
  return true;
}
