// `kiln estimate` end to end: GGUF, config.json, kiln train configuration and --params inputs, table and JSON output,
// the context policy, typed errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGGUFHeader } from '../../src/gguf/reader.js';
import type { Estimate } from '../../src/estimate/estimate.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

/** what `kiln estimate ...argv` prints, which must succeed */
async function run(...argv: string[]): Promise<string> {
  const { stdout, stderr, status } = await kiln('estimate', ...argv);
  assert.equal(status, 0, stderr);
  return stdout;
}

test('--json on a GGUF file reports every term; weights are the file\'s tensor bytes', async () => {
  const path = sharedPath('conformance', 'models', 'kq-Q4_K_M.gguf');
  const e = JSON.parse(await run(path, '--ctx', '512', '--json')) as Estimate;
  const header = readGGUFHeader(path);
  assert.equal(e.terms.find((x) => x.id === 'weights')!.bytes, header.tensors.reduce((n, x) => n + x.nBytes, 0));
  assert.deepEqual(e.terms.map((x) => x.id), ['weights', 'kv_cache', 'activations', 'overhead']);
  assert.equal(e.terms.find((x) => x.id === 'kv_cache')!.bytes, 2 * 2 * 2 * 64 * 512 * 2);
  assert.equal(e.total, e.terms.reduce((n, x) => n + x.bytes, 0));
  for (const term of e.terms) assert.ok(term.formula.length > 0, term.id);
});

test('the table shows GB and GiB and the formulas; --params 130e9 in F32 is 520 GB = 484.29 GiB', async () => {
  const out = await run('--params', '130e9', '--weight-type', 'F32');
  assert.match(out, /^weights\s+520,000,000,000\s+520\.00\s+484\.29\s+Σ tensors params × bits\/8 \(F32\)/m);
  assert.match(out, /S = N×B\s+520\.00 GB = 484\.29 GiB/);
  assert.match(out, /fits \(per-device total/);
});

test('a config.json with training options', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-estimate-'));
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({
    hidden_size: 4096, intermediate_size: 14336, num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8,
    vocab_size: 32000, num_local_experts: 8, num_experts_per_tok: 2, torch_dtype: 'bfloat16', model_type: 'mixtral',
  }));
  const e = JSON.parse(await run(config, '--mode', 'lora', '--lora-rank', '8', '--lora-targets', 'q,v', '--json')) as Estimate;
  // Mixtral-8x7B: 46,702,792,704 parameters; LoRA r 8 on q (4096→4096) and v (4096→1024) of 32 layers
  assert.equal(e.model.paramCount, 46_702_792_704);
  assert.equal(e.trainableParams, 32 * 8 * ((4096 + 4096) + (4096 + 1024)));
  assert.equal(e.settings.weightType, 'BF16');
});

test('bad input: usage errors exit 2, unreadable models 1, each saying what is wrong', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-estimate-'));
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'not a model');
  for (const [argv, status, message] of [
    [[], 2, /give a MODEL/],
    [['/nonexistent/model.gguf'], 2, /cannot read \/nonexistent\/model\.gguf/],
    [['--params', '7B', '--mode', 'serve'], 2, /argument 'serve' is invalid. Allowed choices are inference, lora, qlora, full, pretrain/],
    [[text], 1, /^kiln estimate: .*notes\.txt is neither a GGUF file nor a JSON config/],
    [['--params', '7B', '--ctx', '0'], 2, /option '-c, --ctx <n>' argument '0' is invalid. expected an integer of at least 1/],
  ] as const) {
    const result = await kiln('estimate', ...argv);
    assert.equal(result.status, status, argv.join(' '));
    assert.match(result.stderr, message);
  }
});

test('a kiln train configuration: its model, sequence length, batch and kiln\'s trainer by default', async () => {
  const config = join(process.cwd(), 'configs', 'shakespeare-char.json');
  const e = JSON.parse(await run(config, '--json')) as Estimate;
  // dim 128, 4 layers, ffn 384, byte vocabulary 256, untied: 2·256·128 + 4·(4·128² + 3·128·384 + 2·128) + 128
  assert.equal(e.model.paramCount, 2 * 256 * 128 + 4 * (4 * 128 * 128 + 3 * 128 * 384 + 2 * 128) + 128);
  assert.deepEqual([e.settings.mode, e.settings.runtime, e.settings.ctx, e.settings.batch], ['pretrain', 'kiln', 64, 16]);
  const inference = JSON.parse(await run(config, '--mode', 'inference', '--runtime', 'llama.cpp', '--ctx', '32', '--json')) as Estimate;
  assert.deepEqual([inference.settings.mode, inference.settings.ctx], ['inference', 32]);
});

test('context policy: the model\'s trained context by default (at most 4096); more is estimated with a warning', async () => {
  const path = sharedPath('conformance', 'models', 'kq-Q4_K_M.gguf'); // trained for 512
  const byDefault = await kiln('estimate', path, '--json');
  assert.equal((JSON.parse(byDefault.stdout) as Estimate).settings.ctx, 512);
  assert.equal(byDefault.stderr, '');
  const longer = await kiln('estimate', path, '--ctx', '1024', '--json');
  assert.equal((JSON.parse(longer.stdout) as Estimate).settings.ctx, 1024);
  assert.match(longer.stderr, /^warning: -c 1024 goes past the 512 positions kq-Q4_K_M\.gguf was trained for/);
  assert.equal((JSON.parse(await run('--params', '7B', '--json')) as Estimate).settings.ctx, 4096); // unknown: 4096
});
