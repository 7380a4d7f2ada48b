// `kiln dpo MODEL.gguf --data pairs.jsonl -o out.gguf [--reference R.gguf] [--beta 0.1] [--steps 100] [--batch 8]
// [--lr 1e-4] [--seed 1] [--eval held-out.jsonl]`: Direct Preference Optimization of a llama GGUF on
// {prompt, chosen, rejected} lines, the reference frozen (the starting model unless given); prints the preference
// margin and accuracy before and after (see src/train/dpo.ts).

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { openModelForTraining, writeLike } from '../../train/load-model.js';
import { preferenceStats, readPreferences, tokenizePairs, trainDpo, type TokenizedPair } from '../../train/dpo.js';
import type { TrainModel } from '../../train/llama-model.js';
import { MAX_TRAINING_THREADS, setTrainingThreads } from '../../train/backend.js';
import { decimal, integer, MODEL_DESCRIPTION, outputOption, renamedOption, threadsOption } from '../options.js';
import { modelPath } from '../default-model.js';
import { showTrainingSteps, withProgress } from '../progress.js';

export function dpoCommand(): CommandUnknownOpts {
  return new Command('dpo')
    .summary('preference-tune a model with DPO on {prompt, chosen, rejected} JSONL and export it as GGUF')
    .argument('<MODEL>', `${MODEL_DESCRIPTION} to tune (llama)`)
    .requiredOption('--data <file>', 'training pairs, one JSON object {prompt, chosen, rejected} per line')
    .addOption(outputOption('the tuned GGUF to write').makeOptionMandatory())
    .option('--reference <file>', 'the frozen reference model (default: the starting model)')
    .option('--eval <file>', 'held-out pairs to report margin and accuracy on (default: the training pairs)')
    .addOption(new Option('--beta <b>', 'DPO temperature β').argParser(decimal).default(0.1))
    .addOption(new Option('--steps <n>', 'optimizer steps').argParser(integer(1)).default(100))
    .addOption(new Option('--batch <n>', 'pairs per step').argParser(integer(1)).default(8))
    .addOption(new Option('--lr <lr>', 'AdamW learning rate').argParser(decimal).default(1e-4))
    .addOption(new Option('--seed <s>', 'seed of the batch order').argParser(integer()).default(1))
    .addOption(threadsOption(MAX_TRAINING_THREADS))
    .addOption(renamedOption('--model <file>', 'give the model as the first argument: kiln dpo MODEL.gguf --data pairs.jsonl -o out.gguf'))
    .action(async (modelArg, o) => {
      setTrainingThreads(o.threads);
      const path = modelPath(modelArg);
      const policy = openModelForTraining(path);
      const reference = openModelForTraining(o.reference === undefined ? path : modelPath(o.reference));
      const ctx = policy.model.shape.ctx;
      const pairs = tokenizePairs(readPreferences(o.data), policy.tokenizer, ctx);
      const heldOut = o.eval ? tokenizePairs(readPreferences(o.eval), policy.tokenizer, ctx) : pairs;
      const report = (when: string, model: TrainModel, set: TokenizedPair[]) => {
        const s = preferenceStats(model, reference.model, set, o.beta, o.batch);
        console.log(`${when}: margin ${s.margin.toFixed(4)} | accuracy ${(100 * s.accuracy).toFixed(1)}% | loss ${s.loss.toFixed(4)} (${set.length} pairs)`);
      };
      report('before', policy.model, heldOut);
      await withProgress('step', o.steps, (progress) => {
        const show = showTrainingSteps(progress);
        trainDpo(policy.model, reference.model, pairs, {
          beta: o.beta, steps: o.steps, batchSize: o.batch, lr: o.lr, seed: o.seed, gradClip: 1, onStep: (step, loss) => show({ step, loss }),
        });
      });
      report('after', policy.model, heldOut);
      await writeLike(o.output, policy.file, policy.model);
      console.log(`wrote ${o.output}`);
    });
}
