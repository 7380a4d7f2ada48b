// `kiln estimate`: memory needed to run or train a model, term by term, from a GGUF file, a config.json or numbers.

import { openSync, readSync, closeSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { readGGUFHeader } from '../../gguf/reader.js';
import { checkIsModel } from '../../gguf/adapter-kind.js';
import { estimateMemory, MODES, OPTIMIZER_BYTES, RUNTIMES, type EstimateSpec, type Optimizer } from '../../estimate/estimate.js';
import { formatEstimate } from '../../estimate/format.js';
import {
  ModelSpecError, modelFromConfig, modelFromGGUF, modelFromParamCount, modelFromShape, modelFromTrainShape, parseParamCount,
  shapeFromFlags, type ModelDescription, type ShapeFlags,
} from '../../estimate/model.js';
import { parseTrainConfig, type TrainConfig } from '../../train/config.js';
import { readHFTokenizerJson } from '../../tokenizer/hf-tokenizer-json.js';
import { commaList, ctxOption, integer, UsageError } from '../options.js';
import { chooseContext, trainedContext } from '../context.js';

/** The context without --ctx when the model's is longer (or unknown): a common serving context. */
const ESTIMATE_CONTEXT_CAP = 4096;

/** What MODEL names: the model, and for a `kiln train` configuration the run it describes. */
interface ModelSource {
  model: ModelDescription;
  training?: TrainConfig;
}

function isGGUF(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString('latin1') === 'GGUF';
  } finally {
    closeSync(fd);
  }
}

/** A `kiln train` configuration names its shape under "model" (dim, layers, …); a Hugging Face config.json does not. */
function isTrainConfig(json: unknown): json is { model: object } {
  const model = (json as { model?: unknown } | null)?.model;
  return typeof model === 'object' && model !== null && 'dim' in model;
}

/** The model of a `kiln train` configuration; its vocabulary is its tokenizer's unless model.vocab says. */
function trainConfigSource(json: unknown, path: string): ModelSource {
  const training = parseTrainConfig(json, dirname(resolve(path)));
  const vocab = training.model.vocab ?? (training.tokenizer === 'bytes' ? 256 : readHFTokenizerJson(training.tokenizer).vocab.length);
  return { model: modelFromTrainShape({ ...training.model, vocab }, path), training };
}

/** MODEL: a GGUF file, a Hugging Face config.json or a `kiln train` configuration. */
function modelFromFile(path: string): ModelSource {
  let gguf: boolean;
  try {
    gguf = isGGUF(path);
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (gguf) {
    const header = readGGUFHeader(path);
    checkIsModel(header.metadata, path);
    return { model: modelFromGGUF(header, path) };
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelSpecError(`${path} is neither a GGUF file nor a JSON config: ${(e as Error).message}`);
  }
  return isTrainConfig(json) ? trainConfigSource(json, path) : { model: modelFromConfig(json, path) };
}

/** The model from --params and/or the shape flags. */
function modelFromFlags(params: string | undefined, flags: ShapeFlags | undefined): ModelDescription {
  if (params !== undefined) return modelFromParamCount(parseParamCount(params), flags && shapeFromFlags(flags), `${params} parameters`);
  if (flags) return modelFromShape(shapeFromFlags(flags), 'model from shape flags');
  throw new UsageError('give a MODEL (GGUF file, config.json or kiln train configuration), --params N, or a shape (--dim …)');
}

export function estimateCommand(): CommandUnknownOpts {
  return new Command('estimate')
    .summary('estimate the memory to run or train a model, term by term, and which devices it fits')
    .argument('[MODEL]', 'a GGUF file, a Hugging Face config.json or a kiln train configuration (configs/*.json: estimates that run)')
    .optionsGroup('A model without a file:')
    .option('--params <n>', 'parameter count (7B, 350M, 130e9); alone it implies a llama-shaped guess')
    .option('--arch <name>', 'architecture name for a shape given by flags (default llama)')
    .addOption(new Option('--layers <n>', 'number of transformer blocks').argParser(integer(1)))
    .addOption(new Option('--dim <n>', 'hidden size').argParser(integer(1)))
    .addOption(new Option('--heads <n>', 'attention heads (default dim/128)').argParser(integer(1)))
    .addOption(new Option('--kv-heads <n>', 'key/value heads (default = heads)').argParser(integer(1)))
    .addOption(new Option('--ffn <n>', 'feed-forward width (default llama rule 2/3·4·dim rounded up to 256)').argParser(integer(1)))
    .addOption(new Option('--vocab <n>', 'vocabulary size (default 32000)').argParser(integer(1)))
    .addOption(new Option('--experts <n>', 'experts per MoE layer (default 0: dense)').argParser(integer(0)))
    .addOption(new Option('--experts-used <n>', 'experts used per token (default 2)').argParser(integer(1)))
    .option('--tied', 'output matrix shared with the token embeddings')
    .addOption(new Option('--norm <kind>', 'rms (weight only, default) or layer (weight and bias)').choices(['rms', 'layer'] as const))
    .optionsGroup('What to estimate:')
    .addOption(ctxOption(`context length / sequence length (default: the model's trained context, at most ${ESTIMATE_CONTEXT_CAP}; a train configuration's seqLen)`))
    .addOption(new Option('--batch <n>', 'sequences (inference) or micro-batch (training), default 1 (a train configuration\'s batchSize)').argParser(integer(1)))
    .addOption(new Option('--ubatch <n>', 'tokens per prompt-processing step (default 512)').argParser(integer(1)))
    .addOption(new Option('--mode <mode>', 'default inference (pretrain for a train configuration)').choices(MODES))
    .option('--weight-type <type>', 'F16, BF16, Q8_0, Q4_K_M, … (default: the file\'s own / torch_dtype)')
    .option('--kv-type <type>', 'KV cache type: f16 (default), q8_0, f32, …')
    .addOption(new Option('--optimizer <name>', 'default adamw').choices(Object.keys(OPTIMIZER_BYTES) as Optimizer[]))
    .option('--mixed-precision', '16-bit weights and gradients with an fp32 master copy')
    .option('--grad-checkpointing', 'keep only each layer\'s input, recompute the rest')
    .addOption(new Option('--lora-rank <r>', 'LoRA rank r (default 16)').argParser(integer(1)))
    .addOption(new Option('--lora-targets <list>', 'comma list of q,k,v,o,qkv,gate,up,down (default all)').argParser(commaList))
    .addOption(new Option('--tp <n>', 'tensor-parallel degree').argParser(integer(1)))
    .addOption(new Option('--pp <n>', 'pipeline-parallel degree').argParser(integer(1)))
    .addOption(new Option('--dp <n>', 'data-parallel degree').argParser(integer(1)))
    .addOption(new Option('--zero <stage>', 'ZeRO stage 0-3 across the data-parallel devices').argParser(integer(0, 3)))
    .addOption(new Option('--runtime <name>', 'whose inference buffers, or kiln\'s own trainer for full/pretrain (default llama.cpp; kiln for a train configuration)').choices(RUNTIMES))
    .optionsGroup('Options:')
    .option('--json', 'print the estimate as JSON')
    .action((path, o) => {
      const shape = [o.layers, o.dim, o.heads, o.kvHeads, o.ffn, o.vocab, o.experts, o.expertsUsed, o.tied, o.norm].some((v) => v !== undefined);
      const flags: ShapeFlags | undefined = shape ? {
        arch: o.arch, layers: o.layers, dim: o.dim, heads: o.heads, kvHeads: o.kvHeads, ffn: o.ffn, vocab: o.vocab,
        experts: o.experts, expertsUsed: o.expertsUsed, tied: o.tied, norm: o.norm,
      } : undefined;
      const { model, training } = path !== undefined ? modelFromFile(path) : { model: modelFromFlags(o.params, flags), training: undefined };
      const ctx = o.ctx === undefined && training
        ? training.seqLen
        : chooseContext(trainedContext(model.name, model.shape.ctxTrain), o.ctx, { cap: ESTIMATE_CONTEXT_CAP });
      const spec: EstimateSpec = {
        model,
        mode: o.mode ?? (training ? 'pretrain' : undefined),
        ctx,
        batch: o.batch ?? training?.batchSize,
        ubatch: o.ubatch,
        weightType: o.weightType,
        kvType: o.kvType,
        optimizer: o.optimizer,
        mixedPrecision: o.mixedPrecision ?? false,
        gradCheckpointing: o.gradCheckpointing ?? false,
        loraRank: o.loraRank,
        loraTargets: o.loraTargets,
        tp: o.tp,
        pp: o.pp,
        dp: o.dp,
        zero: o.zero as EstimateSpec['zero'],
        runtime: o.runtime ?? (training ? 'kiln' : undefined),
      };
      const estimate = estimateMemory(spec);
      console.log(o.json ? JSON.stringify(estimate, null, 2) : formatEstimate(estimate));
    });
}
