// The server that bench/serve.ts measures: `kiln serve`'s own engine (in its worker thread) and KilnServer in a process of their own,
// with the engine settings the CLI does not expose (prefix caching off, the batch token budget). Listens on
// 127.0.0.1 (a free port), prints one JSON line {"url", "pid", "vocab", "ctx"} on stdout once listening, and
// stops on SIGTERM or SIGINT.
//
//   node --import tsx bench/serve-server.ts MODEL [--max-seqs N] [--ctx N] [--max-batched-tokens N] [--no-prefix-caching] [--threads N]

import { basename } from 'node:path';
import { Command, Option } from '@commander-js/extra-typings';
import { integer } from '../src/cli/options.js';
import { readGGUFHeader } from '../src/gguf/reader.js';
import { EngineClient } from '../src/engine/engine-client.js';
import { KilnServer } from '../src/server/server.js';
import { servedModel } from '../src/server/openai-api.js';

const program = new Command('serve-server')
  .argument('<MODEL>', 'a GGUF model file')
  .addOption(new Option('--max-seqs <n>', 'sequences generated together at most').argParser(integer(1)))
  .addOption(new Option('--ctx <n>', 'context length per sequence').argParser(integer(1)))
  .addOption(new Option('--max-batched-tokens <n>', 'tokens in one step at most').argParser(integer(1)))
  .option('--no-prefix-caching', 'recompute every prompt')
  .addOption(new Option('--threads <n>', 'threads of the WASM backend').argParser(integer(1)))
  .parse();
const [path] = program.processedArgs;
const o = program.opts();
const engine = await EngineClient.start({
  path,
  threads: o.threads,
  engine: { maxNumSeqs: o.maxSeqs, maxModelLength: o.ctx, maxNumBatchedTokens: o.maxBatchedTokens, enablePrefixCaching: o.prefixCaching },
});
const server = new KilnServer({ engine, model: servedModel(readGGUFHeader(path), basename(path).replace(/\.gguf$/i, '')) });
const address = await server.listen(0, '127.0.0.1');
console.log(JSON.stringify({ url: `http://127.0.0.1:${address.port}`, pid: process.pid, vocab: engine.limits.vocabSize, ctx: engine.maxModelLength }));
await new Promise<void>((resolve) => {
  process.once('SIGINT', resolve);
  process.once('SIGTERM', resolve);
});
await server.close();
await engine.close();
