// The registry of `kiln` subcommands, in the order `kiln help` lists them: one line per command file.

import type { MakeCommand } from '../command.js';
import { runCommand } from './run.js';
import { evalCommand } from './eval.js';
import { perplexityCommand } from './perplexity.js';
import { chatCommand } from './chat.js';
import { serveCommand } from './serve.js';
import { tokenizerCommand } from './tokenizer.js';
import { tokenizeCommand } from './tokenize.js';
import { embedCommand } from './embed.js';
import { infoCommand } from './info.js';
import { estimateCommand } from './estimate.js';
import { trainCommand } from './train.js';
import { finetuneCommand } from './finetune.js';
import { quantizeCommand } from './quantize.js';
import { benchCommand } from './bench.js';
import { quantReportCommand } from './quant-report.js';
import { imatrixCommand } from './imatrix.js';
import { inspectCommand } from './inspect.js';
import { distillCommand } from './distill.js';
import { dpoCommand } from './dpo.js';
import { qatCommand } from './qat.js';
import { convertCommand } from './convert.js';
import { ragCommand } from './rag.js';
import { agentCommand } from './agent.js';

export const COMMANDS: MakeCommand[] = [runCommand, chatCommand, serveCommand, agentCommand, evalCommand, perplexityCommand, embedCommand, ragCommand, tokenizeCommand, tokenizerCommand, infoCommand, estimateCommand, trainCommand, finetuneCommand, distillCommand, dpoCommand, qatCommand, convertCommand, quantizeCommand, quantReportCommand, imatrixCommand, benchCommand, inspectCommand];
