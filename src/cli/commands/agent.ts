// `kiln agent [MODEL] -p TASK --tools calculator,read_file,fetch_kiln,rag_search`: the agent loop (src/agent) on a local model,
// every step on stderr with --verbose, the answer on stdout (or the whole run as JSON).

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { Model } from '../../generate/model.js';
import { Agent, type AgentStep, type AgentTool } from '../../agent/agent.js';
import { LocalChatModel } from '../../agent/local-model.js';
import { calculatorTool, fetchKilnTool, readFileTool } from '../../agent/builtin-tools.js';
import { ragSearchTool } from '../../agent/rag-tool.js';
import { DEFAULT_DB, Rag } from '../../rag/rag.js';
import { commaList, ctxOption, DEFAULT_MODEL_DESCRIPTION, integer, UsageError } from '../options.js';
import { defaultModelPath, modelPath } from '../default-model.js';
import { loadOptions, samplingParams, withModelLoading, withSampling } from './model-options.js';

const BUILTINS = ['calculator', 'read_file', 'fetch_kiln', 'rag_search'];

export function agentCommand(): CommandUnknownOpts {
  const command = new Command('agent')
    .summary('run a task with tools in an agent loop')
    .description('The model plans, calls tools, observes their results and answers; each step is bounded (steps, tokens, tool timeout).')
    .argument('[MODEL]', DEFAULT_MODEL_DESCRIPTION)
    .requiredOption('-p, --prompt <task>', 'the task')
    .addOption(new Option('--tools <list>', `built-in tools, comma-separated: ${BUILTINS.join(', ')}`).argParser(commaList).default(['calculator']))
    .option('--allow-dir <dir>', 'the folder read_file may read (default: the current folder)', '.')
    .option('--kiln-url <url>', 'the local kiln server fetch_kiln reaches', 'http://127.0.0.1:8080')
    .option('--db <folder|url>', 'the kiln rag store rag_search searches: a PGlite folder or a postgres:// URL', DEFAULT_DB)
    .option('--embed <model>', 'the store\'s embedding model, for rag_search (default: models/kiln-brown-embed.gguf)')
    .option('--system <text>', 'a system message before the task')
    .addOption(new Option('--max-steps <n>', 'model calls at most').argParser(integer(1)).default(8))
    .addOption(new Option('--max-tokens <n>', 'tokens per model call').argParser(integer(1)).default(256))
    .addOption(new Option('--max-total-tokens <n>', 'tokens over the whole run (default: steps × tokens)').argParser(integer(1)))
    .addOption(new Option('--tool-timeout <ms>', 'milliseconds a tool call may take').argParser(integer(1)).default(10_000))
    .addOption(new Option('--force-tools <n>', 'the first n steps must call a tool (for models without tool support)').argParser(integer(0)).default(0))
    .addOption(new Option('--self-consistency <n>', 'sample the final answer n times, keep the most common').argParser(integer(1)).default(1))
    .addOption(ctxOption('context per model call (default: the model\'s, at most 4096)'))
    .option('-v, --verbose', 'print every step to stderr')
    .option('--json', 'print the whole run as JSON');
  return withModelLoading(withSampling(command)).action(async (modelArg, o) => {
    const unknown = o.tools.find((t) => !BUILTINS.includes(t));
    if (unknown !== undefined) throw new UsageError(`unknown tool ${unknown}; the built-ins are ${BUILTINS.join(', ')}`);
    const model = new LocalChatModel(Model.load(modelPath(modelArg), loadOptions(o)), { contextLength: o.ctx, sampling: samplingParams(o) });
    let rag: Rag | undefined;
    try {
      if ((o.tools as string[]).includes('rag_search')) rag = await Rag.open({ db: o.db, embedModel: o.embed === undefined ? defaultModelPath('embed') : modelPath(o.embed) });
      const tools: AgentTool[] = o.tools.map((name: string) =>
        name === 'calculator' ? calculatorTool() : name === 'read_file' ? readFileTool(o.allowDir) : name === 'rag_search' ? ragSearchTool(rag!) : fetchKilnTool(o.kilnUrl));
      const agent = new Agent({
        model, tools, system: o.system, maxSteps: o.maxSteps, maxTokens: o.maxTokens, maxTotalTokens: o.maxTotalTokens, toolTimeoutMs: o.toolTimeout,
        forceToolSteps: o.forceTools, selfConsistency: o.selfConsistency, seed: o.seed, onStep: o.verbose ? printStep : undefined,
      });
      const result = await agent.run(o.prompt);
      if (o.json) console.log(JSON.stringify({ answer: result.answer, stop_reason: result.stopReason, steps: result.steps, votes: result.votes }));
      else console.log(result.answer);
      if (o.verbose) console.error(`stopped: ${result.stopReason} after ${result.steps.length} step(s)`);
    } finally {
      await model.close();
      await rag?.close();
    }
  });
}

function printStep(step: AgentStep): void {
  console.error(`step ${step.index} (${step.tokens} tokens)${step.content ? `: ${step.content}` : ''}`);
  for (const { call, result, ok, ms } of step.calls) console.error(`  ${call.name}(${call.arguments}) → ${ok ? '' : '[failed] '}${result} (${ms.toFixed(0)} ms)`);
}
