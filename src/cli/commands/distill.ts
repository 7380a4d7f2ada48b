// `kiln distill TEACHER.gguf --student-config cfg.json [--alpha A] [--temperature T] [--hidden-match
// [--hidden-weight W]]`: trains the student a `kiln train` configuration describes against a teacher GGUF
// (soft targets, optionally hidden-state hints) and writes it to the configuration's output (see src/train/distill.ts).

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { openModelForTraining } from '../../train/load-model.js';
import { distill } from '../../train/distill.js';
import { decimal, renamedOption } from '../options.js';
import { modelPath } from '../default-model.js';
import { showTrainingSteps, withProgress } from '../progress.js';
import { configWith, withConfigOverrides } from './train.js';

export function distillCommand(): CommandUnknownOpts {
  const command = new Command('distill')
    .summary('train a student model from a teacher model (knowledge distillation) and export it as GGUF')
    .argument('<TEACHER>', 'the teacher model (llama GGUF with the same vocabulary)')
    .requiredOption('--student-config <file>', 'the student: a training configuration as for `kiln train`')
    .addOption(new Option('--alpha <a>', 'weight of the teacher (KL) term; 1 − alpha weighs the hard labels').argParser(decimal).default(0.5))
    .addOption(new Option('--temperature <t>', 'softmax temperature of the soft targets').argParser(decimal).default(2))
    .option('--hidden-match', 'also match the final hidden states through a learned projection (MSE)')
    .addOption(new Option('--hidden-weight <w>', 'weight of the hidden-state term (with --hidden-match)').argParser(decimal).default(1))
    .addOption(renamedOption('--teacher <file>', 'give the teacher as the first argument: kiln distill TEACHER.gguf --student-config cfg.json'));
  return withConfigOverrides(command).action(async (teacherArg, o) => {
    const cfg = configWith(o.studentConfig, o);
    const teacher = openModelForTraining(modelPath(teacherArg)).model;
    const result = await withProgress('step', cfg.steps, (progress) => distill(teacher, cfg, {
      alpha: o.alpha, temperature: o.temperature, hiddenWeight: o.hiddenMatch ? o.hiddenWeight : 0, onProgress: showTrainingSteps(progress),
    }));
    console.log(`wrote ${result.modelPath}: validation loss ${result.finalValLoss.toFixed(4)} over the whole split`);
  });
}
