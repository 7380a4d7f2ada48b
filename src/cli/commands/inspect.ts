// `kiln inspect MODEL -p TEXT -o out.html`: runs the model on a prompt and writes a self-contained HTML page
// showing its tokenization, how sampling chose each token, attention per layer and head, and MoE routing.

import { writeFileSync } from 'node:fs';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import { ReferenceBackend } from '../../kernels/reference.js';
import { traceGeneration } from '../../inspect/trace.js';
import { inspectPageWithTrace } from '../../inspect/page.js';
import { samplingParams, withSampling } from './model-options.js';
import { integer, MODEL_DESCRIPTION, outputOption } from '../options.js';
import { modelPath } from '../default-model.js';

export function inspectCommand(): CommandUnknownOpts {
  const command = new Command('inspect')
    .summary('write an HTML page showing tokens, sampling, attention and expert routing of one run')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .requiredOption('-p, --prompt <text>', 'the prompt')
    .addOption(new Option('-n, --n-predict <n>', 'tokens to generate').argParser(integer(1)).default(16))
    .addOption(outputOption('HTML file to write').makeOptionMandatory())
    .addOption(new Option('--top <k>', 'candidates shown per sampling stage (default 10)').argParser(integer(1)));
  return withSampling(command).action((modelArg, o) => {
    // the reference backend reports attention weights; inspection runs are short
    const model = Model.load(modelPath(modelArg), { backend: new ReferenceBackend() });
    const trace = traceGeneration(model, o.prompt, { maxTokens: o.nPredict, sampling: samplingParams(o), topK: o.top });
    writeFileSync(o.output, inspectPageWithTrace(trace));
    console.error(`kiln inspect: ${trace.promptTokens} prompt tokens, ${trace.steps.length} generated → ${o.output}`);
  });
}
