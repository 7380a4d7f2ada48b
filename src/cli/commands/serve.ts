// `kiln serve [MODEL]`: an OpenAI-compatible HTTP server (with a web chat at /) over the serving engine.

import { basename } from 'node:path';
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { readGGUFHeader } from '../../gguf/reader.js';
import { EngineClient } from '../../engine/engine-client.js';
import { KilnServer } from '../../server/server.js';
import { servedModel } from '../../server/openai-api.js';
import { modelPath } from '../default-model.js';
import { collect, ctxOption, DEFAULT_MODEL_DESCRIPTION, integer } from '../options.js';
import { trainedContext, warnBeyondTrained } from '../context.js';
import { withModelLoading, withPromptAdapter } from './model-options.js';

/** Contexts beyond this are asked for with -c: the KV cache holds --max-seqs of them (the engine's defaultMaxModelLength). */
const SERVE_CONTEXT_CAP = 2048;

export function serveCommand(): CommandUnknownOpts {
  const command = new Command('serve')
    .summary('serve a model over an OpenAI-compatible HTTP API, with a web chat')
    .description('Serve a model over an OpenAI-compatible HTTP API (/v1), with a web chat at /.')
    .argument('[MODEL]', DEFAULT_MODEL_DESCRIPTION)
    .option('--host <address>', 'address to bind (0.0.0.0 exposes the server to the network)', '127.0.0.1')
    .addOption(new Option('--port <port>', 'port to listen on (0 picks a free one)').argParser(integer(0, 65535)).default(8080))
    .option('--api-key <key>', 'require "Authorization: Bearer KEY" on every request')
    .option('--open-health', 'answer /health without the API key (for probes)')
    .addOption(new Option('--cors <origin>', 'allow cross-site requests from this origin (repeatable; default: none)').argParser(collect))
    .addOption(new Option('--allowed-hosts <host>', 'accept this Host header besides the bound address (repeatable; against DNS rebinding)').argParser(collect))
    .addOption(ctxOption(`context length per sequence (default: the model's trained context, at most ${SERVE_CONTEXT_CAP})`))
    .addOption(new Option('--max-seqs <n>', 'sequences generated together at most').argParser(integer(1)).default(16))
    .addOption(new Option('--max-waiting <n>', 'sequences (prompts × n) waiting for a slot before new requests get 429').argParser(integer(1)).default(64))
    .addOption(new Option('--max-request-seqs <n>', 'sequences (prompts × n) one request may ask for').argParser(integer(1)).default(64));
  return withPromptAdapter(withModelLoading(command)).action(async (modelArg, o) => {
    const path = modelPath(modelArg);
    const header = readGGUFHeader(path);
    // the model loads in the engine's worker thread; this thread only tokenizes, validates and streams
    const engine = await EngineClient.start({
      path, threads: o.threads, lora: (o.lora ?? []).map((lora) => ({ path: lora, scale: o.loraScale })), promptAdapter: o.promptAdapter,
      engine: { maxNumSeqs: o.maxSeqs, maxModelLength: o.ctx }, // without -c the engine's default: the trained context, at most 2048
    });
    const ctx = engine.maxModelLength;
    if (o.ctx !== undefined) warnBeyondTrained(trainedContext(path, engine.trainedContext), o.ctx, `-c ${o.ctx}`);
    const name = basename(path).replace(/\.gguf$/i, '');
    const server = new KilnServer({
      engine, model: servedModel(header, name), apiKey: o.apiKey, openHealth: o.openHealth, maxWaiting: o.maxWaiting,
      maxRequestSequences: o.maxRequestSeqs, corsOrigins: o.cors, allowedHosts: o.allowedHosts,
    });
    const address = await server.listen(o.port, o.host);
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const capped = o.ctx === undefined && ctx < engine.trainedContext ? `, of ${engine.trainedContext} trained: -c raises it` : '';
    console.error(`kiln serve: ${name} (context ${ctx}${capped}) at http://${host}:${address.port}/ — API at /v1, Ctrl-C stops`);
    const reason = await stopRequested();
    console.error(`kiln serve: ${reason}; stopping (requests in flight are aborted)`);
    await server.close();
    await engine.close();
  });
}

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
