// How far llama.cpp's own logits move when only its numerics change, next to how far kiln's are from its reference.
// For a conformance reference run (../shared/conformance/reference/NAME.json), each decode step's reference top-10
// is compared as logit differences to the top token, (z_i − z_top) − ref(z_i − z_top), maximum over the ten: the
// form `llama-server` can report (its log-probabilities) and kiln's logits give alike. llama-server runs once per
// configuration (f16 KV cache as the reference, flash attention, f32 KV cache); kiln with each backend.
//
//   npx tsx bench/reference-spread.ts [--ref gemma2-f32.s1.json,deepseek2-f32.s1.json]
//                                     [--llama ../shared/peers/llama.cpp/bin-native]

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Model } from '../src/generate/model.js';
import { ReferenceBackend } from '../src/kernels/reference.js';
import { replay, type ReferenceRun, type TopK } from '../test/models/reference.js';
import { sharedPath } from '../test/shared.js';

const { values: opts } = parseArgs({
  options: {
    ref: { type: 'string', default: 'gemma2-f32.s1.json,deepseek2-f32.s1.json' },
    llama: { type: 'string', default: sharedPath('peers', 'llama.cpp', 'bin-native') },
  },
});

const CONFIGS: Record<string, string[]> = {
  'llama.cpp f16 KV (as the reference)': [],
  'llama.cpp flash attention': ['-fa'],
  'llama.cpp f32 KV': ['-ctk', 'f32', '-ctv', 'f32'],
};

/** max over the reference's top-k of |(z_i − z_top) − ref(z_i − z_top)|; `z` gives this engine's value for a token */
function spread(top: TopK, z: (id: number) => number | undefined): number {
  const [topId, topRef] = top[0];
  let worst = 0;
  for (const [id, ref] of top) {
    const zi = z(id), z0 = z(topId);
    if (zi !== undefined && z0 !== undefined) worst = Math.max(worst, Math.abs(zi - z0 - (ref - topRef)));
  }
  return worst;
}

async function startServer(model: string, args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const port = 18000 + Math.floor(Math.random() * 1000);
  const child = spawn(join(opts.llama, 'llama-server'), ['-m', model, '-t', '2', '-c', '256', '--port', String(port), ...args], {
    env: { ...process.env, LD_LIBRARY_PATH: opts.llama }, stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (await fetch(`${url}/health`).then((r) => r.ok, () => false)) return { child, url };
    await sleep(100);
  }
  throw new Error(`llama-server ${args.join(' ')} did not start`);
}

/** per step: the spread of llama-server's log-probabilities (steps whose token is an incomplete UTF-8 piece give none) */
async function llamaSpread(url: string, ref: ReferenceRun): Promise<(number | undefined)[]> {
  const out: (number | undefined)[] = [];
  for (let j = 0; j < ref.greedy_topk.length; j++) {
    const body = { prompt: [...ref.prompt_tokens, ...ref.greedy.slice(0, j)], n_predict: 1, n_probs: 10, temperature: 0, post_sampling_probs: false, cache_prompt: false };
    const reply = await (await fetch(`${url}/completion`, { method: 'POST', body: JSON.stringify(body) })).json() as {
      completion_probabilities?: { top_logprobs: { id: number; logprob: number }[] }[];
    };
    const probs = reply.completion_probabilities?.[0]?.top_logprobs;
    out.push(probs && spread(ref.greedy_topk[j], (id) => probs.find((p) => p.id === id)?.logprob));
  }
  return out;
}

const show = (name: string, steps: (number | undefined)[]) => {
  const known = steps.filter((s): s is number => s !== undefined);
  console.log(`  ${name.padEnd(38)} max ${Math.max(...known).toExponential(2)}  steps ${steps.map((s) => (s === undefined ? '–' : s.toExponential(1))).join(' ')}`);
};

for (const refName of opts.ref.split(',')) {
  const ref = JSON.parse(readFileSync(sharedPath('conformance', 'reference', refName), 'utf8')) as ReferenceRun;
  const modelPath = resolve(sharedPath('conformance', 'models', `${refName.split('.')[0]}.gguf`));
  console.log(`${refName} (${ref.greedy_topk.length} decode steps; max over the reference's top-10 of the error in z_i − z_top)`);
  for (const [name, args] of Object.entries(CONFIGS)) {
    const server = await startServer(modelPath, args);
    try {
      show(name, await llamaSpread(server.url, ref));
    } finally {
      server.child.kill();
      await once(server.child, 'exit');
    }
  }
  for (const backend of ['reference', 'wasm'] as const) {
    const model = Model.load(modelPath, backend === 'reference' ? { backend: new ReferenceBackend() } : {});
    const { stepLogits } = replay(model, ref);
    show(`kiln ${backend} backend`, ref.greedy_topk.map((top, j) => spread(top, (id) => stepLogits[j][id])));
  }
}
