// `kiln dpo --model M.gguf --data pairs.jsonl --output out.gguf [--reference R.gguf] [--beta 0.1] [--steps 100]
// [--batch 8] [--lr 1e-4] [--seed 1] [--eval held-out.jsonl]`: Direct Preference Optimization of a llama GGUF on
// {prompt, chosen, rejected} lines, the reference frozen (the starting model unless given); prints the preference
// margin and accuracy before and after (see src/train/dpo.ts).

import type { Command } from '../command.js';
import { optInt, optNumber, optString, UsageError, type ParsedArgs } from '../args.js';
import { openModelForTraining, writeLike } from '../../train/load-model.js';
import { preferenceStats, readPreferences, tokenizePairs, trainDpo, type TokenizedPair } from '../../train/dpo.js';
import type { TrainModel } from '../../train/llama-model.js';

export const dpoCommand: Command = {
  name: 'dpo',
  usage: '--model M.gguf --data pairs.jsonl --output out.gguf [--reference R.gguf] [--beta 0.1] [--steps 100] [--batch 8] [--lr 1e-4] [--eval held-out.jsonl]',
  summary: 'preference-tune a model with DPO on {prompt, chosen, rejected} JSONL and export it as GGUF',
  options: [
    { name: 'model', description: 'the model to tune (llama GGUF)' },
    { name: 'reference', description: 'the frozen reference model (default: the starting model)' },
    { name: 'data', description: 'training pairs, one JSON object {prompt, chosen, rejected} per line' },
    { name: 'eval', description: 'held-out pairs to report margin and accuracy on (default: the training pairs)' },
    { name: 'output', description: 'the tuned GGUF to write' },
    { name: 'beta', description: 'DPO temperature β (default 0.1)' },
    { name: 'steps', description: 'optimizer steps (default 100)' },
    { name: 'batch', description: 'pairs per step (default 8)' },
    { name: 'lr', description: 'AdamW learning rate (default 1e-4)' },
    { name: 'seed', description: 'seed of the batch order (default 1)' },
  ],
  async run(args: ParsedArgs) {
    const modelPath = optString(args, 'model'), dataPath = optString(args, 'data'), output = optString(args, 'output');
    if (!modelPath || !dataPath || !output) throw new UsageError('--model FILE, --data FILE and --output FILE are required');
    const policy = openModelForTraining(modelPath);
    const reference = openModelForTraining(optString(args, 'reference') ?? modelPath);
    const ctx = policy.model.shape.ctx;
    const pairs = tokenizePairs(readPreferences(dataPath), policy.tokenizer, ctx);
    const evalPath = optString(args, 'eval');
    const heldOut = evalPath ? tokenizePairs(readPreferences(evalPath), policy.tokenizer, ctx) : pairs;
    const beta = optNumber(args, 'beta') ?? 0.1, batchSize = optInt(args, 'batch') ?? 8, steps = optInt(args, 'steps') ?? 100;
    const report = (when: string, model: TrainModel, set: TokenizedPair[]) => {
      const s = preferenceStats(model, reference.model, set, beta, batchSize);
      console.log(`${when}: margin ${s.margin.toFixed(4)} | accuracy ${(100 * s.accuracy).toFixed(1)}% | loss ${s.loss.toFixed(4)} (${set.length} pairs)`);
    };
    report('before', policy.model, heldOut);
    trainDpo(policy.model, reference.model, pairs, {
      beta, steps, batchSize, lr: optNumber(args, 'lr') ?? 1e-4, seed: optInt(args, 'seed') ?? 1, gradClip: 1,
      onStep: (step, loss) => { if (step % 10 === 0 || step === steps) process.stderr.write(`step ${step}/${steps} | loss ${loss.toFixed(4)}\n`); },
    });
    report('after', policy.model, heldOut);
    await writeLike(output, policy.file, policy.model);
    console.log(`wrote ${output}`);
  },
};
