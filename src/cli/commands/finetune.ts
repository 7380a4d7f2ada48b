// `kiln finetune MODEL.gguf --data train.jsonl -o OUT`: supervised fine-tuning (loss on response tokens only) of
// the whole model, of LoRA adapters (--lora; written as a llama.cpp GGUF adapter that `kiln run MODEL --lora OUT`
// applies, or merged with --merge), or of prompt-tuning virtual tokens (--prompt-tokens K; an adapter that
// `kiln run MODEL --prompt-adapter OUT` applies). See src/train/sft.ts.

import { writeGGUF } from '../../gguf/writer.js';
import { loadModelFile } from '../../hf/checkpoint.js';
import { MODEL_FORMATS, writeModel, type ModelFormat } from '../../hf/export.js';
import { Tokenizer } from '../../tokenizer/index.js';
import { ChatTemplate } from '../../generate/chat-template.js';
import { Rng } from '../../generate/rng.js';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { loadTrainModel, ggufWithTensors } from '../../train/load-gguf-params.js';
import { createLora, DEFAULT_LORA, loraAdapterGGUF, loraParamCount, mergedWeights } from '../../train/lora.js';
import { createPromptTuning, promptTuningGGUF } from '../../train/prompt-tuning.js';
import { evaluateSft, fullTuning, loraTuning, promptTuning, readSftExamples, sft, type Tuning } from '../../train/sft.js';
import { MAX_TRAINING_THREADS, setTrainingThreads } from '../../train/backend.js';
import { commaList, decimal, integer, MODEL_DESCRIPTION, outputOption, threadsOption, UsageError } from '../options.js';
import { modelPath } from '../default-model.js';
import { showTrainingSteps, withProgress } from '../progress.js';

export function finetuneCommand(): CommandUnknownOpts {
  return new Command('finetune')
    .summary('supervised fine-tuning on {prompt,response} / {messages} JSONL: full, LoRA adapter, or prompt tuning')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .requiredOption('--data <file>', 'training examples (JSONL)')
    .addOption(outputOption('output GGUF: the model, the LoRA adapter (with --lora) or the prompt-tuning adapter (with --prompt-tokens)').makeOptionMandatory())
    .option('--eval <file>', 'held-out examples (JSONL): loss and exact-match accuracy before and after')
    .optionsGroup('Method (default: the whole model):')
    .option('--lora', 'train LoRA adapters only (base frozen)')
    .addOption(new Option('--rank <r>', 'LoRA rank r').argParser(integer(1)).default(DEFAULT_LORA.rank))
    .addOption(new Option('--alpha <a>', 'LoRA alpha: the update is scaled by alpha/r').argParser(decimal).default(DEFAULT_LORA.alpha))
    .addOption(new Option('--dropout <p>', 'dropout on the adapters\' input').argParser(decimal).default(DEFAULT_LORA.dropout))
    .addOption(new Option('--targets <list>', 'adapted projections, of q,k,v,o,gate,up,down,output').argParser(commaList).default(DEFAULT_LORA.targets, DEFAULT_LORA.targets.join(',')))
    .option('--merge', 'with --lora: write the model with the adapters folded into its weights')
    .addOption(new Option('--format <format>', 'how the model is written (full or --merge): a GGUF file, or a Hugging Face folder (hf)').choices(MODEL_FORMATS).default('gguf'))
    .addOption(new Option('--prompt-tokens <k>', 'prompt tuning: train K virtual token embeddings (base frozen)').argParser(integer(1, 4096)))
    .optionsGroup('Training:')
    .addOption(new Option('--steps <n>', 'optimizer steps').argParser(integer(0)).default(200))
    .addOption(new Option('--lr <lr>', 'peak learning rate (default 1e-4 full, 1e-3 LoRA, 1e-2 prompt tuning)').argParser(decimal))
    .addOption(new Option('--batch <n>', 'examples per step').argParser(integer(1)).default(8))
    .addOption(new Option('--max-tokens <n>', 'cut examples to this many tokens (default: the model context)').argParser(integer(2)))
    .addOption(new Option('--seed <s>', 'random seed').argParser(integer()).default(1))
    .addOption(threadsOption(MAX_TRAINING_THREADS))
    .action(async (modelArg, o) => {
      const lora = o.lora ?? false, promptTokens = o.promptTokens;
      if (lora && promptTokens !== undefined) throw new UsageError('--lora and --prompt-tokens are separate methods; choose one');
      if (o.merge && !lora) throw new UsageError('--merge needs --lora');
      const format = o.format as ModelFormat;
      if (format === 'hf' && (promptTokens !== undefined || (lora && !o.merge))) throw new UsageError('--format hf writes a whole model: full fine-tuning or --lora --merge');
      const { steps, batch: batchSize, seed, output } = o;
      setTrainingThreads(o.threads);

      const file = loadModelFile(modelPath(modelArg));
      const model = loadTrainModel(file);
      const tokenizer = Tokenizer.fromMetadata(file.metadata);
      const template = ChatTemplate.forModel(file.metadata, tokenizer);
      const maxTokens = o.maxTokens ?? model.hparams.contextLength;
      const train = readSftExamples(o.data, tokenizer, template, maxTokens);
      const held = o.eval ? readSftExamples(o.eval, tokenizer, template, maxTokens) : undefined;

      const rng = new Rng(seed);
      const total = model.params.reduce((n, p) => n + p.value.length, 0);
      let tuning: Tuning, write: () => Promise<void>, lr: number;
      const name = output.split('/').pop()!.replace(/\.gguf$/i, '');
      if (lora) {
        const adapter = createLora(model, { rank: o.rank, alpha: o.alpha, dropout: o.dropout, targets: [...o.targets] }, rng);
        tuning = loraTuning(model, adapter);
        lr = 1e-3;
        write = () => (o.merge ? writeModel(output, ggufWithTensors(file, mergedWeights(model, adapter)), format) : writeGGUF(output, loraAdapterGGUF(adapter, model.hparams.arch, name)));
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
        write = () => writeModel(output, ggufWithTensors(file, new Map(model.params.map((p) => [p.name, p.value]))), format);
        console.error(`full fine-tuning: ${total} trainable parameters`);
      }

      const report = (when: string) => {
        if (!held) return;
        const e = evaluateSft(tuning, held, batchSize);
        console.log(`${when}: eval loss ${e.loss.toFixed(4)}, exact-match accuracy ${(100 * e.accuracy).toFixed(1)}% of ${held.length}`);
      };
      report('before');
      const started = performance.now();
      await withProgress('step', steps, (progress) => {
        const show = showTrainingSteps(progress);
        sft(tuning, train, {
          steps, lr: o.lr ?? lr, batchSize, warmup: Math.min(20, Math.ceil(steps / 10)), weightDecay: 0, gradClip: 1, seed,
          onStep: (step, loss) => show({ step, loss }),
        });
      });
      report('after');
      await write();
      console.log(`wrote ${output} (${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s)`);
    });
}
