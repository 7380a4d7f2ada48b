// `kiln qat --model M.gguf --corpus text.txt --type Q4_0 --output out.gguf [--steps 100] [--batch 16]
// [--seq-len 64] [--lr 1e-4] [--seed 1]`: quantization-aware fine-tuning of a llama GGUF on a text corpus with
// its matrices fake-quantized to the type's blocks, then export quantized to that type (see src/train/qat.ts).

import { readFileSync } from 'node:fs';
import type { Command } from '../command.js';
import { optInt, optNumber, optString, UsageError, type ParsedArgs } from '../args.js';
import { openModelForTraining, writeLike } from '../../train/load-model.js';
import { exportTypeOf, trainQat } from '../../train/qat.js';
import { defaultTypeOf, fileTypeFromName } from '../../quant/mix.js';

export const qatCommand: Command = {
  name: 'qat',
  usage: '--model M.gguf --corpus text.txt --type Q4_0 --output out.gguf [--steps 100] [--batch 16] [--seq-len 64] [--lr 1e-4]',
  summary: 'quantization-aware fine-tuning, exported to a quantized GGUF',
  options: [
    { name: 'model', description: 'the float model to fine-tune (llama GGUF)' },
    { name: 'corpus', description: 'UTF-8 text to fine-tune on' },
    { name: 'type', description: 'target quantization (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K)' },
    { name: 'output', description: 'the quantized GGUF to write' },
    { name: 'steps', description: 'optimizer steps (default 100)' },
    { name: 'batch', description: 'sequences per step (default 16)' },
    { name: 'seq-len', description: 'tokens per sequence (default: the model context, at most 64)' },
    { name: 'lr', description: 'peak learning rate, cosine to a tenth (default 1e-4)' },
    { name: 'seed', description: 'seed of the window sampler (default 1)' },
  ],
  async run(args: ParsedArgs) {
    const modelPath = optString(args, 'model'), corpusPath = optString(args, 'corpus'), typeName = optString(args, 'type'), output = optString(args, 'output');
    if (!modelPath || !corpusPath || !typeName || !output) throw new UsageError('--model, --corpus, --type and --output are required');
    const ftype = fileTypeFromName(typeName), type = defaultTypeOf(ftype);
    const loaded = openModelForTraining(modelPath);
    const seqLen = optInt(args, 'seq-len') ?? Math.min(64, loaded.model.shape.ctx);
    if (seqLen < 1 || seqLen > loaded.model.shape.ctx) throw new UsageError(`--seq-len must be in 1..${loaded.model.shape.ctx}`);
    const data = Int32Array.from(loaded.tokenizer.encode(readFileSync(corpusPath, 'utf8'), { addSpecial: false, parseSpecial: false }));
    if (data.length <= seqLen) throw new UsageError(`${corpusPath} has ${data.length} tokens, more than --seq-len ${seqLen} are needed`);
    const steps = optInt(args, 'steps') ?? 100, lr = optNumber(args, 'lr') ?? 1e-4;
    trainQat(loaded.model, data, {
      type, steps, batchSize: optInt(args, 'batch') ?? 16, seqLen, lr, minLr: lr / 10, seed: optInt(args, 'seed') ?? 1, gradClip: 1,
      onStep: (step, loss) => { if (step % 10 === 0 || step === steps) process.stderr.write(`step ${step}/${steps} | loss ${loss.toFixed(4)}\n`); },
    });
    await writeLike(output, loaded.file, loaded.model, exportTypeOf(type), ftype);
    console.log(`wrote ${output} (${typeName.toUpperCase()})`);
  },
};
