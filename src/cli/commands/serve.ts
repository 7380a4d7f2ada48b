// `kiln serve [MODEL]`: an OpenAI-compatible HTTP server (with a web chat at /) over the serving engine.

import { basename } from 'node:path';
import { optInt, optString, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { Model } from '../../generate/model.js';
import { LLMEngine } from '../../engine/engine.js';
import { KilnServer } from '../../server/server.js';
import { servedModel } from '../../server/openai-api.js';
import { modelArgument } from '../default-model.js';
import { MODEL_LOAD_OPTIONS, modelLoadOptions } from './model-options.js';

export const serveCommand: Command = {
  name: 'serve',
  usage: '[MODEL] [--host H] [--port P] [--api-key K] [--ctx N] [--max-seqs N] [--max-waiting N] [--lora FILE --lora-scale S]',
  summary: 'serve a model over an OpenAI-compatible HTTP API, with a web chat (MODEL defaults to models/kiln-brown.gguf)',
  options: [
    { name: 'host', description: 'address to bind (default 127.0.0.1; 0.0.0.0 exposes the server to the network)' },
    { name: 'port', description: 'port to listen on (default 8080; 0 picks a free one)' },
    { name: 'api-key', description: 'require "Authorization: Bearer K" on /v1/* requests' },
    { name: 'ctx', short: 'c', description: 'context length per sequence (default: the model\'s, at most 2048)' },
    { name: 'max-seqs', description: 'sequences generated together at most (default 16)' },
    { name: 'max-waiting', description: 'requests waiting for a slot before new ones get 429 (default 64)' },
    ...MODEL_LOAD_OPTIONS,
  ],
  async run(args: ParsedArgs) {
    const path = modelArgument(args);
    const port = optInt(args, 'port') ?? 8080;
    if (port < 0 || port > 65535) throw new UsageError(`--port must be from 0 to 65535, got ${port}`);
    const maxWaiting = optInt(args, 'max-waiting') ?? 64;
    if (maxWaiting < 1) throw new UsageError(`--max-waiting must be at least 1, got ${maxWaiting}`);
    const model = Model.load(path, modelLoadOptions(args));
    const engine = new LLMEngine(model, { maxNumSeqs: optInt(args, 'max-seqs'), maxModelLength: optInt(args, 'ctx') });
    const name = basename(path).replace(/\.gguf$/i, '');
    const server = new KilnServer({ engine, model: servedModel(model, name), apiKey: optString(args, 'api-key'), maxWaiting });
    const address = await server.listen(port, optString(args, 'host') ?? '127.0.0.1');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    console.error(`kiln serve: ${name} (context ${engine.maxModelLength}) at http://${host}:${address.port}/ — API at /v1, Ctrl-C stops`);
    const reason = await stopRequested();
    console.error(`kiln serve: ${reason}; stopping (requests in flight are aborted)`);
    await server.close();
    await engine.close();
  },
};

/**
 * Resolves, with the reason, at SIGINT or SIGTERM; a second signal ends the process at once. Started by npm (npx,
 * npm run), kiln runs under `sh -c`, and npm forwards a signal it gets to that shell only, which dies without
 * passing it on: the server would be left running, so then it also stops when its parent process goes away.
 */
function stopRequested(): Promise<string> {
  return new Promise((resolve) => {
    const parent = process.ppid;
    const watch = process.env.npm_lifecycle_event === undefined ? undefined : setInterval(() => {
      if (process.ppid !== parent) stop(`the process that started it (pid ${parent}) ended`);
    }, 200).unref();
    const stop = (reason: string) => {
      clearInterval(watch);
      process.off('SIGINT', stop).off('SIGTERM', stop);
      resolve(reason);
    };
    process.once('SIGINT', stop).once('SIGTERM', stop);
  });
}
