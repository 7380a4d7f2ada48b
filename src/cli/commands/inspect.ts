// `kiln inspect MODEL -p TEXT -o out.html`: runs the model on a prompt and writes a self-contained HTML page
// showing its tokenization, how sampling chose each token, attention per layer and head, and MoE routing.

import { writeFileSync } from 'node:fs';
import { optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { ReferenceBackend } from '../../kernels/reference.js';
import { traceGeneration } from '../../inspect/trace.js';
import { inspectPageWithTrace } from '../../inspect/page.js';
import { SAMPLING_OPTIONS, samplingFromArgs } from './model-options.js';

export const inspectCommand: Command = {
  name: 'inspect',
  usage: 'MODEL -p TEXT [-n N] [--temp T --top-k K --top-p P --min-p M --seed S] -o out.html',
  summary: 'write an HTML page showing tokens, sampling, attention and expert routing of one run',
  options: [
    { name: 'prompt', short: 'p', description: 'the prompt' },
    { name: 'n-predict', short: 'n', description: 'tokens to generate (default 16)' },
    { name: 'output', short: 'o', description: 'HTML file to write' },
    { name: 'top', description: 'candidates shown per sampling stage (default 10)' },
    ...SAMPLING_OPTIONS,
  ],
  run(args: ParsedArgs) {
    const [path, ...extra] = args.positionals;
    if (!path || extra.length) throw new UsageError('expected one MODEL file');
    const prompt = optString(args, 'prompt');
    if (!prompt) throw new UsageError('a prompt is required: -p TEXT');
    const output = optString(args, 'output');
    if (!output) throw new UsageError('an output file is required: -o out.html');
    // the reference backend reports attention weights; inspection runs are short
    const model = Model.load(path, { backend: new ReferenceBackend() });
    const trace = traceGeneration(model, prompt, {
      maxTokens: optInt(args, 'n-predict') ?? 16, sampling: samplingFromArgs(args), topK: optInt(args, 'top'),
    });
    writeFileSync(output, inspectPageWithTrace(trace));
    console.error(`kiln inspect: ${trace.promptTokens} prompt tokens, ${trace.steps.length} generated → ${output}`);
  },
};
