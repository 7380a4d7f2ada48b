// `kiln train --config cfg.json [--resume] [--stop-at STEP]`: pretrains a llama-style model on a text corpus
// and writes a GGUF, a checkpoint and an SVG loss curve (see src/train/trainer.ts and src/train/config.ts).

import { Command, Option, type OptionValues, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { readTrainConfig, type TrainConfig } from '../../train/config.js';
import { train } from '../../train/trainer.js';
import { MAX_TRAINING_THREADS } from '../../train/backend.js';
import { integer, outputOption, threadsOption } from '../options.js';
import { MODEL_FORMATS, type ModelFormat } from '../../hf/export.js';
import { duration, showTrainingSteps, withProgress } from '../progress.js';

/** -t and -o as commander parses them */
export type ConfigOverrides = {
  threads?: number;
  output?: string;
};

/** The options of every command that runs a training configuration (train, distill): -t and -o override its threads and output. */
export function withConfigOverrides<A extends unknown[], O extends OptionValues, G extends OptionValues>(command: Command<A, O, G>): Command<A, O & ConfigOverrides, G> {
  return command
    .addOption(threadsOption(MAX_TRAINING_THREADS).default(undefined, 'the configuration\'s threads, else every core'))
    .addOption(outputOption('the GGUF to write (default: the configuration\'s output)')) as unknown as Command<A, O & ConfigOverrides, G>; // restated: see GROUP_TYPES in model-options.ts
}

/** The configuration at `path` with the -t and -o given. */
export function configWith(path: string, overrides: ConfigOverrides): TrainConfig {
  const cfg = readTrainConfig(path);
  return { ...cfg, threads: overrides.threads ?? cfg.threads, output: overrides.output ?? cfg.output };
}

export function trainCommand(): CommandUnknownOpts {
  const command = new Command('train')
    .summary('pretrain a llama-style model on a text corpus and export it as GGUF')
    .requiredOption('--config <file>', 'training configuration (JSON; see configs/shakespeare-char.json)')
    .option('--resume', 'continue from the checkpoint next to the output')
    .addOption(new Option('--stop-at <step>', 'stop (with a checkpoint) after this many steps; resume later').argParser(integer(1)))
    .addOption(new Option('--format <format>', 'write the model as a GGUF file or a Hugging Face folder (hf)').choices(MODEL_FORMATS).default('gguf'));
  return withConfigOverrides(command).action(async (o) => {
    const cfg = configWith(o.config, o);
    const result = await withProgress('step', cfg.steps, (progress) =>
      train(cfg, { resume: o.resume, stopAt: o.stopAt, onProgress: showTrainingSteps(progress), format: o.format as ModelFormat }));
    const rate = `${Math.round(result.tokensPerSecond)} tok/s`;
    if (result.modelPath) {
      console.log(`wrote ${result.modelPath}: ${result.step} steps in ${duration(result.seconds)} (${rate}), validation loss ${result.finalValLoss!.toFixed(4)} over the whole split`);
    } else {
      console.log(`stopped at step ${result.step} in ${duration(result.seconds)} (${rate}); resume with --resume`);
    }
    console.log(`checkpoint ${result.checkpointPath}, loss curve ${result.curvePath}`);
  });
}
