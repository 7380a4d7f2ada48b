// `kiln distill --teacher T.gguf --student-config cfg.json [--alpha A] [--temperature T] [--hidden-match
// [--hidden-weight W]]`: trains the student a `kiln train` configuration describes against a teacher GGUF
// (soft targets, optionally hidden-state hints) and writes it to the configuration's output (see src/train/distill.ts).

import type { Command } from '../command.js';
import { optBool, optNumber, optString, UsageError, type ParsedArgs } from '../args.js';
import { readTrainConfig } from '../../train/config.js';
import { openModelForTraining } from '../../train/load-model.js';
import { distill } from '../../train/distill.js';

export const distillCommand: Command = {
  name: 'distill',
  usage: '--teacher T.gguf --student-config cfg.json [--alpha 0.5] [--temperature 2] [--hidden-match [--hidden-weight 1]]',
  summary: 'train a student model from a teacher model (knowledge distillation) and export it as GGUF',
  options: [
    { name: 'teacher', description: 'the teacher model (llama GGUF with the same vocabulary)' },
    { name: 'student-config', description: 'the student: a training configuration as for `kiln train`' },
    { name: 'alpha', description: 'weight of the teacher (KL) term; 1 − alpha weighs the hard labels (default 0.5)' },
    { name: 'temperature', description: 'softmax temperature of the soft targets (default 2)' },
    { name: 'hidden-match', boolean: true, description: 'also match the final hidden states through a learned projection (MSE)' },
    { name: 'hidden-weight', description: 'weight of the hidden-state term (default 1)' },
  ],
  async run(args: ParsedArgs) {
    const teacherPath = optString(args, 'teacher'), configPath = optString(args, 'student-config');
    if (!teacherPath || !configPath) throw new UsageError('--teacher FILE and --student-config FILE are required');
    const cfg = readTrainConfig(configPath);
    const teacher = openModelForTraining(teacherPath).model;
    const result = await distill(teacher, cfg, {
      alpha: optNumber(args, 'alpha') ?? 0.5,
      temperature: optNumber(args, 'temperature') ?? 2,
      hiddenWeight: optBool(args, 'hidden-match') ? optNumber(args, 'hidden-weight') ?? 1 : 0,
      onProgress(p) {
        if (p.step % cfg.evalInterval === 0 || p.step === p.steps) {
          process.stderr.write(`step ${p.step}/${p.steps} | loss ${p.loss.toFixed(4)}${p.valLoss === undefined ? '' : ` | val ${p.valLoss.toFixed(4)}`}\n`);
        }
      },
    });
    console.log(`wrote ${result.modelPath}: validation loss ${result.finalValLoss.toFixed(4)} over the whole split`);
  },
};
