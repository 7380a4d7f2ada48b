// `kiln estimate` end to end: GGUF, config.json and --params inputs, table and JSON output, typed errors.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { estimateCommand } from '../../src/cli/commands/estimate.js';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import { ModelSpecError } from '../../src/estimate/model.js';
import type { Estimate } from '../../src/estimate/estimate.js';
import { sharedPath } from '../shared.js';

async function run(t: TestContext, argv: string[]): Promise<string> {
  const log = t.mock.method(console, 'log', () => {});
  try {
    await estimateCommand.run(parseArgs(argv, estimateCommand.options));
    return log.mock.calls.map((c) => String(c.arguments[0])).join('\n');
  } finally {
    log.mock.restore();
  }
}

test('--json on a GGUF file reports every term; weights are the file\'s tensor bytes', async (t) => {
  const path = sharedPath('conformance', 'models', 'kq-Q4_K_M.gguf');
  const e = JSON.parse(await run(t, [path, '--ctx', '512', '--json'])) as Estimate;
  const header = readGGUFHeader(path);
  assert.equal(e.terms.find((x) => x.id === 'weights')!.bytes, header.tensors.reduce((n, x) => n + x.nBytes, 0));
  assert.deepEqual(e.terms.map((x) => x.id), ['weights', 'kv_cache', 'activations', 'overhead']);
  assert.equal(e.terms.find((x) => x.id === 'kv_cache')!.bytes, 2 * 2 * 2 * 64 * 512 * 2);
  assert.equal(e.total, e.terms.reduce((n, x) => n + x.bytes, 0));
  for (const term of e.terms) assert.ok(term.formula.length > 0, term.id);
});

test('the table shows GB and GiB and the formulas; --params 130e9 in F32 is 520 GB = 484.29 GiB', async (t) => {
  const out = await run(t, ['--params', '130e9', '--weight-type', 'F32']);
  assert.match(out, /^weights\s+520,000,000,000\s+520\.00\s+484\.29\s+Σ tensors params × bits\/8 \(F32\)/m);
  assert.match(out, /S = N×B\s+520\.00 GB = 484\.29 GiB/);
  assert.match(out, /fits \(per-device total/);
});

test('a config.json with training options', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-estimate-'));
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({
    hidden_size: 4096, intermediate_size: 14336, num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8,
    vocab_size: 32000, num_local_experts: 8, num_experts_per_tok: 2, torch_dtype: 'bfloat16', model_type: 'mixtral',
  }));
  const e = JSON.parse(await run(t, [config, '--mode', 'lora', '--lora-rank', '8', '--lora-targets', 'q,v', '--json'])) as Estimate;
  // Mixtral-8x7B: 46,702,792,704 parameters; LoRA r 8 on q (4096→4096) and v (4096→1024) of 32 layers
  assert.equal(e.model.paramCount, 46_702_792_704);
  assert.equal(e.trainableParams, 32 * 8 * ((4096 + 4096) + (4096 + 1024)));
  assert.equal(e.settings.weightType, 'BF16');
});

test('bad input gets typed errors', async (t) => {
  await assert.rejects(run(t, []), UsageError);
  await assert.rejects(run(t, ['/nonexistent/model.gguf']), UsageError);
  await assert.rejects(run(t, ['--params', '7B', '--mode', 'serve']), UsageError);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-estimate-'));
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'not a model');
  await assert.rejects(run(t, [text]), ModelSpecError);
  await assert.rejects(run(t, ['--params', '7B', '--ctx', '0']), /ctx must be an integer/);
});
