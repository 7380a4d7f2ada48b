// `kiln train --config cfg.json [--resume] [--stop-at STEP]`: pretrains a llama-style model on a text corpus
// and writes a GGUF, a checkpoint and an SVG loss curve (see src/train/trainer.ts and src/train/config.ts).

import type { Command } from '../command.js';
import { optBool, optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import { readTrainConfig } from '../../train/config.js';
import { train, type TrainProgress } from '../../train/trainer.js';

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** One line per step, redrawn in place on a TTY; elsewhere printed at each validation. */
function progressLine(p: TrainProgress): string {
  const val = p.valLoss === undefined ? '' : ` | val ${p.valLoss.toFixed(4)}`;
  return `step ${p.step}/${p.steps} | loss ${p.loss.toFixed(4)}${val} | ${Math.round(p.tokensPerSecond)} tok/s | ETA ${duration(p.etaSeconds)}`;
}

export const trainCommand: Command = {
  name: 'train',
  usage: '--config cfg.json [--resume] [--stop-at STEP]',
  summary: 'pretrain a llama-style model on a text corpus and export it as GGUF',
  options: [
    { name: 'config', description: 'training configuration (JSON; see configs/shakespeare-char.json)' },
    { name: 'resume', boolean: true, description: 'continue from the checkpoint next to the output' },
    { name: 'stop-at', description: 'stop (with a checkpoint) after this many steps; resume later' },
  ],
  async run(args: ParsedArgs) {
    const path = optString(args, 'config');
    if (!path) throw new UsageError('--config FILE is required');
    const cfg = readTrainConfig(path);
    const tty = process.stderr.isTTY === true;
    let lastVal: number | undefined;
    const result = await train(cfg, {
      resume: optBool(args, 'resume'),
      stopAt: optInt(args, 'stop-at'),
      onProgress(p) {
        if (tty) process.stderr.write(`\r${progressLine(p)}\x1b[K`);
        else if (p.valLoss !== lastVal || p.step === p.steps) process.stderr.write(`${progressLine(p)}\n`);
        lastVal = p.valLoss;
      },
    });
    if (tty) process.stderr.write('\n');
    const rate = `${Math.round(result.tokensPerSecond)} tok/s`;
    if (result.modelPath) {
      console.log(`wrote ${result.modelPath}: ${result.step} steps in ${duration(result.seconds)} (${rate}), validation loss ${result.finalValLoss!.toFixed(4)} over the whole split`);
    } else {
      console.log(`stopped at step ${result.step} in ${duration(result.seconds)} (${rate}); resume with --resume`);
    }
    console.log(`checkpoint ${result.checkpointPath}, loss curve ${result.curvePath}`);
  },
};
