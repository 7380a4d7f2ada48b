// The server that bench/serve.ts measures: `kiln serve`'s own LLMEngine and KilnServer in a process of their own,
// with the engine settings the CLI does not expose (prefix caching off, the batch token budget). Listens on
// 127.0.0.1 (a free port), prints one JSON line {"url", "pid", "vocab", "ctx"} on stdout once listening, and
// stops on SIGTERM or SIGINT.
//
//   node --import tsx bench/serve-server.ts MODEL [--max-seqs N] [--ctx N] [--max-batched-tokens N] [--no-prefix-caching]

import { basename } from 'node:path';
import { optBool, optInt, parseArgs, UsageError } from '../src/cli/args.js';
import { Model } from '../src/generate/model.js';
import { LLMEngine } from '../src/engine/engine.js';
import { KilnServer } from '../src/server/server.js';
import { servedModel } from '../src/server/openai-api.js';

const args = parseArgs(process.argv.slice(2), [
  { name: 'max-seqs', description: 'sequences generated together at most' },
  { name: 'ctx', description: 'context length per sequence' },
  { name: 'max-batched-tokens', description: 'tokens in one step at most' },
  { name: 'no-prefix-caching', boolean: true, description: 'recompute every prompt' },
]);
const [path] = args.positionals;
if (!path) throw new UsageError('a model file is required');
const model = Model.load(path);
const engine = new LLMEngine(model, {
  maxNumSeqs: optInt(args, 'max-seqs'),
  maxModelLength: optInt(args, 'ctx'),
  maxNumBatchedTokens: optInt(args, 'max-batched-tokens'),
  enablePrefixCaching: !optBool(args, 'no-prefix-caching'),
});
const server = new KilnServer({ engine, model: servedModel(model, basename(path).replace(/\.gguf$/i, '')) });
const address = await server.listen(0, '127.0.0.1');
console.log(JSON.stringify({ url: `http://127.0.0.1:${address.port}`, pid: process.pid, vocab: model.vocabSize, ctx: engine.maxModelLength }));
await new Promise<void>((resolve) => {
  process.once('SIGINT', resolve);
  process.once('SIGTERM', resolve);
});
await server.close();
await engine.close();
