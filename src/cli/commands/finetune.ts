// `kiln finetune MODEL.gguf --data train.jsonl -o OUT`: supervised fine-tuning (loss on response tokens only) of
// the whole model, of LoRA adapters (--lora; written as a llama.cpp GGUF adapter, or merged with --merge), or of
// prompt-tuning virtual tokens (--prompt-tokens K). See src/train/sft.ts.

import { writeGGUF } from '../../gguf/writer.js';
import { loadGGUF } from '../../gguf/model-file.js';
import { Tokenizer } from '../../tokenizer/index.js';
import { ChatTemplate } from '../../generate/chat-template.js';
import { Rng } from '../../generate/rng.js';
import { optBool, optInt, optNumber, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { loadTrainModel, ggufWithTensors } from '../../train/load-gguf-params.js';
import { createLora, DEFAULT_LORA, loraAdapterGGUF, loraParamCount, mergedWeights } from '../../train/lora.js';
import { createPromptTuning, promptTuningGGUF } from '../../train/prompt-tuning.js';
import { evaluateSft, fullTuning, loraTuning, promptTuning, readSftExamples, sft, type Tuning } from '../../train/sft.js';
import { setMatmulThreads } from '../../train/matmul.js';

export const finetuneCommand: Command = {
  name: 'finetune',
  usage: 'MODEL.gguf --data train.jsonl [--eval eval.jsonl] -o OUT.gguf [--lora [--rank R --alpha A --dropout P --targets q,v] [--merge] | --prompt-tokens K] [--steps N --lr LR --batch B]',
  summary: 'supervised fine-tuning on {prompt,response} / {messages} JSONL: full, LoRA adapter, or prompt tuning',
  options: [
    { name: 'data', description: 'training examples (JSONL)' },
    { name: 'eval', description: 'held-out examples (JSONL): loss and exact-match accuracy before and after' },
    { name: 'output', short: 'o', description: 'output GGUF: the model, the LoRA adapter, or the prompt-tuning tokens' },
    { name: 'lora', boolean: true, description: 'train LoRA adapters only (base frozen)' },
    { name: 'rank', description: `LoRA rank r (default ${DEFAULT_LORA.rank})` },
    { name: 'alpha', description: `LoRA alpha: the update is scaled by alpha/r (default ${DEFAULT_LORA.alpha})` },
    { name: 'dropout', description: `dropout on the adapters' input (default ${DEFAULT_LORA.dropout})` },
    { name: 'targets', description: `adapted projections, of q,k,v,o,gate,up,down,output (default ${DEFAULT_LORA.targets.join(',')})` },
    { name: 'merge', boolean: true, description: 'with --lora: write the model with the adapters folded into its weights' },
    { name: 'prompt-tokens', description: 'prompt tuning: train K virtual token embeddings (base frozen)' },
    { name: 'steps', description: 'optimizer steps (default 200)' },
    { name: 'lr', description: 'peak learning rate (default 1e-4 full, 1e-3 LoRA, 1e-2 prompt tuning)' },
    { name: 'batch', description: 'examples per step (default 8)' },
    { name: 'max-tokens', description: 'cut examples to this many tokens (default: the model context)' },
    { name: 'seed', description: 'random seed (default 1)' },
    { name: 'threads', description: 'matmul threads (default 1)' },
  ],
  async run(args: ParsedArgs) {
    const modelPath = args.positionals[0], data = optString(args, 'data'), output = optString(args, 'output');
    if (!modelPath || !data || !output) throw new UsageError('MODEL.gguf, --data FILE and -o OUT are required');
    const lora = optBool(args, 'lora'), promptTokens = optInt(args, 'prompt-tokens');
    if (lora && promptTokens !== undefined) throw new UsageError('--lora and --prompt-tokens are separate methods; choose one');
    if (optBool(args, 'merge') && !lora) throw new UsageError('--merge needs --lora');
    if (promptTokens !== undefined && (promptTokens < 1 || promptTokens > 4096)) throw new UsageError(`--prompt-tokens must be 1..4096, got ${promptTokens}`);
    const steps = optInt(args, 'steps') ?? 200, batchSize = optInt(args, 'batch') ?? 8, seed = optInt(args, 'seed') ?? 1;
    if (steps < 0 || batchSize < 1) throw new UsageError('--steps must be ≥ 0 and --batch ≥ 1');
    setMatmulThreads(optInt(args, 'threads') ?? 1);

    const file = loadGGUF(modelPath);
    const model = loadTrainModel(file);
    const tokenizer = Tokenizer.fromMetadata(file.metadata);
    const text = (id: number | null) => (id === null ? '' : tokenizer.tokenText(id));
    const template = ChatTemplate.fromMetadata(file.metadata, text(tokenizer.bosId), text(tokenizer.eosId));
    const maxTokens = optInt(args, 'max-tokens') ?? model.hparams.contextLength;
    const train = readSftExamples(data, tokenizer, template, maxTokens);
    const evalPath = optString(args, 'eval');
    const held = evalPath ? readSftExamples(evalPath, tokenizer, template, maxTokens) : undefined;

    const rng = new Rng(seed);
    const total = model.params.reduce((n, p) => n + p.value.length, 0);
    let tuning: Tuning, write: () => Promise<void>, lr: number;
    const name = output.split('/').pop()!.replace(/\.gguf$/i, '');
    if (lora) {
      const adapter = createLora(model, {
        rank: optInt(args, 'rank') ?? DEFAULT_LORA.rank,
        alpha: optNumber(args, 'alpha') ?? DEFAULT_LORA.alpha,
        dropout: optNumber(args, 'dropout') ?? DEFAULT_LORA.dropout,
        targets: (optString(args, 'targets') ?? DEFAULT_LORA.targets.join(',')).split(',').map((t) => t.trim()),
      }, rng);
      tuning = loraTuning(model, adapter);
      lr = 1e-3;
      write = () => writeGGUF(output, optBool(args, 'merge') ? ggufWithTensors(file, mergedWeights(model, adapter)) : loraAdapterGGUF(adapter, model.hparams.arch, name));
      console.error(`LoRA: ${loraParamCount(adapter)} trainable parameters (${((100 * loraParamCount(adapter)) / total).toFixed(3)}% of ${total})`);
    } else if (promptTokens !== undefined) {
      const tuned = createPromptTuning(model, promptTokens, rng);
      tuning = promptTuning(model, tuned);
      lr = 1e-2;
      const p = tuned.prompt;
      write = () => writeGGUF(output, promptTuningGGUF(tuned, model.hparams.arch, name));
      console.error(`prompt tuning: ${p.value.length} trainable parameters (${((100 * p.value.length) / total).toFixed(3)}% of ${total})`);
    } else {
      tuning = fullTuning(model);
      lr = 1e-4;
      write = () => writeGGUF(output, ggufWithTensors(file, new Map(model.params.map((p) => [p.name, p.value]))));
      console.error(`full fine-tuning: ${total} trainable parameters`);
    }

    const report = (when: string) => {
      if (!held) return;
      const e = evaluateSft(tuning, held, batchSize);
      console.log(`${when}: eval loss ${e.loss.toFixed(4)}, exact-match accuracy ${(100 * e.accuracy).toFixed(1)}% of ${held.length}`);
    };
    report('before');
    const started = performance.now();
    sft(tuning, train, {
      steps, lr: optNumber(args, 'lr') ?? lr, batchSize, warmup: Math.min(20, Math.ceil(steps / 10)), weightDecay: 0, gradClip: 1, seed,
      onStep: (step, loss) => { if (step % 10 === 0 || step === steps) process.stderr.write(`step ${step}/${steps} | loss ${loss.toFixed(4)}\n`); },
    });
    report('after');
    await write();
    console.log(`wrote ${output} (${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s)`);
  },
};
