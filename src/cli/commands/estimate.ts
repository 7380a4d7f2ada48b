// `kiln estimate`: memory needed to run or train a model, term by term, from a GGUF file, a config.json or numbers.

import { openSync, readSync, closeSync, readFileSync } from 'node:fs';
import { optBool, optInt, optOneOf, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { readGGUFHeader } from '../../gguf/reader.js';
import { estimateMemory, MODES, OPTIMIZER_BYTES, RUNTIMES, type EstimateSpec, type Mode, type Optimizer, type Runtime } from '../../estimate/estimate.js';
import { formatEstimate } from '../../estimate/format.js';
import {
  ModelSpecError, modelFromConfig, modelFromGGUF, modelFromParamCount, modelFromShape, parseParamCount, shapeFromFlags,
  type ModelDescription, type ShapeFlags,
} from '../../estimate/model.js';

const SHAPE_OPTIONS = ['layers', 'dim', 'heads', 'kv-heads', 'ffn', 'vocab', 'experts', 'experts-used'] as const;

function isGGUF(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString('latin1') === 'GGUF';
  } finally {
    closeSync(fd);
  }
}

function shapeFlags(args: ParsedArgs): ShapeFlags | undefined {
  if (!SHAPE_OPTIONS.some((o) => args.options.has(o)) && !args.options.has('tied') && !args.options.has('norm')) return undefined;
  const norm = optString(args, 'norm');
  if (norm !== undefined && norm !== 'rms' && norm !== 'layer') throw new UsageError(`--norm must be rms or layer, got "${norm}"`);
  return {
    arch: optString(args, 'arch'),
    layers: optInt(args, 'layers'),
    dim: optInt(args, 'dim'),
    heads: optInt(args, 'heads'),
    kvHeads: optInt(args, 'kv-heads'),
    ffn: optInt(args, 'ffn'),
    vocab: optInt(args, 'vocab'),
    experts: optInt(args, 'experts'),
    expertsUsed: optInt(args, 'experts-used'),
    tied: optBool(args, 'tied') || undefined,
    norm,
  };
}

/** The model from MODEL (a GGUF file or a config.json), else from --params and/or the shape flags. */
function modelFromArgs(args: ParsedArgs): ModelDescription {
  const [path, ...extra] = args.positionals;
  if (extra.length) throw new UsageError(`expected one MODEL, got ${args.positionals.length}`);
  if (path !== undefined) {
    let gguf: boolean;
    try {
      gguf = isGGUF(path);
    } catch (e) {
      throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
    }
    if (gguf) return modelFromGGUF(readGGUFHeader(path), path);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new ModelSpecError(`${path} is neither a GGUF file nor a JSON config: ${(e as Error).message}`);
    }
    return modelFromConfig(json, path);
  }
  const params = optString(args, 'params');
  const flags = shapeFlags(args);
  if (params !== undefined) {
    const count = parseParamCount(params);
    return modelFromParamCount(count, flags && shapeFromFlags(flags), `${params} parameters`);
  }
  if (flags) return modelFromShape(shapeFromFlags(flags), 'model from shape flags');
  throw new UsageError('give a MODEL (GGUF file or config.json), --params N, or a shape (--dim …)');
}

export const estimateCommand: Command = {
  name: 'estimate',
  usage: 'MODEL|config.json | --params 7B [shape flags] [--ctx N] [--batch N] [--mode M] [--weight-type T] [--json]',
  summary: 'estimate the memory to run or train a model, term by term, and which devices it fits',
  options: [
    { name: 'params', description: 'parameter count (7B, 350M, 130e9); alone it implies a llama-shaped guess' },
    { name: 'arch', description: 'architecture name for a shape given by flags (default llama)' },
    { name: 'layers', description: 'number of transformer blocks' },
    { name: 'dim', description: 'hidden size' },
    { name: 'heads', description: 'attention heads (default dim/128)' },
    { name: 'kv-heads', description: 'key/value heads (default = heads)' },
    { name: 'ffn', description: 'feed-forward width (default llama rule 2/3·4·dim rounded up to 256)' },
    { name: 'vocab', description: 'vocabulary size (default 32000)' },
    { name: 'experts', description: 'experts per MoE layer (default 0: dense)' },
    { name: 'experts-used', description: 'experts used per token (default 2)' },
    { name: 'tied', boolean: true, description: 'output matrix shared with the token embeddings' },
    { name: 'norm', description: 'rms (weight only, default) or layer (weight and bias)' },
    { name: 'ctx', description: 'context length / sequence length (default 4096)' },
    { name: 'batch', description: 'sequences (inference) or micro-batch (training), default 1' },
    { name: 'ubatch', description: 'tokens per prompt-processing step (default 512)' },
    { name: 'mode', description: `${MODES.join(' | ')} (default inference)` },
    { name: 'weight-type', description: 'F16, BF16, Q8_0, Q4_K_M, … (default: the file\'s own / torch_dtype)' },
    { name: 'kv-type', description: 'KV cache type: f16 (default), q8_0, f32, …' },
    { name: 'optimizer', description: `${Object.keys(OPTIMIZER_BYTES).join(' | ')} (default adamw)` },
    { name: 'mixed-precision', boolean: true, description: '16-bit weights and gradients with an fp32 master copy' },
    { name: 'grad-checkpointing', boolean: true, description: 'keep only each layer\'s input, recompute the rest' },
    { name: 'lora-rank', description: 'LoRA rank r (default 16)' },
    { name: 'lora-targets', description: 'comma list of q,k,v,o,qkv,gate,up,down (default all)' },
    { name: 'tp', description: 'tensor-parallel degree' },
    { name: 'pp', description: 'pipeline-parallel degree' },
    { name: 'dp', description: 'data-parallel degree' },
    { name: 'zero', description: 'ZeRO stage 0-3 across the data-parallel devices' },
    { name: 'runtime', description: `${RUNTIMES.join(' | ')}: whose inference buffers, or kiln's own trainer for full/pretrain (default llama.cpp)` },
    { name: 'json', boolean: true, description: 'print the estimate as JSON' },
  ],
  run(args) {
    const zero = optInt(args, 'zero');
    const targets = optString(args, 'lora-targets');
    const spec: EstimateSpec = {
      model: modelFromArgs(args),
      mode: optOneOf<Mode>(args, 'mode', MODES),
      ctx: optInt(args, 'ctx'),
      batch: optInt(args, 'batch'),
      ubatch: optInt(args, 'ubatch'),
      weightType: optString(args, 'weight-type'),
      kvType: optString(args, 'kv-type'),
      optimizer: optOneOf<Optimizer>(args, 'optimizer', Object.keys(OPTIMIZER_BYTES) as Optimizer[]),
      mixedPrecision: optBool(args, 'mixed-precision'),
      gradCheckpointing: optBool(args, 'grad-checkpointing'),
      loraRank: optInt(args, 'lora-rank'),
      loraTargets: targets?.split(',').map((t) => t.trim()),
      tp: optInt(args, 'tp'),
      pp: optInt(args, 'pp'),
      dp: optInt(args, 'dp'),
      zero: zero as EstimateSpec['zero'],
      runtime: optOneOf<Runtime>(args, 'runtime', RUNTIMES),
    };
    const estimate = estimateMemory(spec);
    console.log(optBool(args, 'json') ? JSON.stringify(estimate, null, 2) : formatEstimate(estimate));
  },
};
