// `kiln qat MODEL.gguf --corpus text.txt --type Q4_0 -o out.gguf [--steps 100] [--batch 16] [--seq-len 64]
// [--lr 1e-4] [--seed 1]`: quantization-aware fine-tuning of a llama GGUF on a text corpus with its matrices
// fake-quantized to the type's blocks, then export quantized to that type (see src/train/qat.ts).

import { readFileSync } from 'node:fs';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { openModelForTraining, writeLike } from '../../train/load-model.js';
import { exportTypeOf, trainQat } from '../../train/qat.js';
import { MAX_TRAINING_THREADS, setTrainingThreads } from '../../train/backend.js';
import { defaultTypeOf, fileTypeFromName } from '../../quant/mix.js';
import { decimal, integer, outputOption, renamedOption, threadsOption, UsageError } from '../options.js';
import { modelPath } from '../default-model.js';
import { showTrainingSteps, withProgress } from '../progress.js';

export function qatCommand(): CommandUnknownOpts {
  return new Command('qat')
    .summary('quantization-aware fine-tuning, exported to a quantized GGUF')
    .argument('<MODEL>', `the float model to fine-tune (llama GGUF)`)
    .requiredOption('--corpus <file>', 'UTF-8 text to fine-tune on')
    .requiredOption('--type <type>', 'target quantization (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K)')
    .addOption(outputOption('the quantized GGUF to write').makeOptionMandatory())
    .addOption(new Option('--steps <n>', 'optimizer steps').argParser(integer(1)).default(100))
    .addOption(new Option('--batch <n>', 'sequences per step').argParser(integer(1)).default(16))
    .addOption(new Option('--seq-len <n>', 'tokens per sequence (default: the model context, at most 64)').argParser(integer(1)))
    .addOption(new Option('--lr <lr>', 'peak learning rate, cosine to a tenth').argParser(decimal).default(1e-4))
    .addOption(new Option('--seed <s>', 'seed of the window sampler').argParser(integer()).default(1))
    .addOption(threadsOption(MAX_TRAINING_THREADS))
    .addOption(renamedOption('--model <file>', 'give the model as the first argument: kiln qat MODEL.gguf --corpus text.txt --type Q4_0 -o out.gguf'))
    .action(async (modelArg, o) => {
      setTrainingThreads(o.threads);
      const ftype = fileTypeFromName(o.type), type = defaultTypeOf(ftype);
      const loaded = openModelForTraining(modelPath(modelArg));
      const seqLen = o.seqLen ?? Math.min(64, loaded.model.shape.ctx);
      if (seqLen > loaded.model.shape.ctx) throw new UsageError(`--seq-len must be in 1..${loaded.model.shape.ctx}`);
      const data = Int32Array.from(loaded.tokenizer.encode(readFileSync(o.corpus, 'utf8'), { addSpecial: false, parseSpecial: false }));
      if (data.length <= seqLen) throw new UsageError(`${o.corpus} has ${data.length} tokens, more than --seq-len ${seqLen} are needed`);
      await withProgress('step', o.steps, (progress) => {
        const show = showTrainingSteps(progress);
        trainQat(loaded.model, data, {
          type, steps: o.steps, batchSize: o.batch, seqLen, lr: o.lr, minLr: o.lr / 10, seed: o.seed, gradClip: 1, onStep: (step, loss) => show({ step, loss }),
        });
      });
      await writeLike(o.output, loaded.file, loaded.model, exportTypeOf(type), ftype);
      console.log(`wrote ${o.output} (${o.type.toUpperCase()})`);
    });
}
