// `kiln inspect` end to end: the written page holds the trace of the run asked for; usage errors are typed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InspectTrace } from '../../src/inspect/trace.js';
import { sharedPath } from '../shared.js';
import { kiln } from '../helpers/cli.js';

const MODEL = sharedPath('data', 'models', 'stories260K.gguf');

function embeddedTrace(path: string): InspectTrace {
  const m = /<script id="inspect-data" type="application\/json">(.*?)<\/script>/s.exec(readFileSync(path, 'utf8'));
  assert.ok(m, 'the page has its data slot');
  return JSON.parse(m[1]);
}

test('kiln inspect writes the page with the run\'s trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-inspect-cmd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out.html');
  assert.equal((await kiln('inspect', MODEL, '-p', 'Once upon a time', '-n', '6', '--temp', '0', '--top', '5', '-o', out)).status, 0);
  const trace = embeddedTrace(out);
  assert.equal(trace.prompt, 'Once upon a time');
  assert.equal(trace.promptTokens, 5);
  assert.equal(trace.steps.length, 6);
  assert.equal(trace.sampling.temperature, 0);
  assert.ok(trace.steps.every((s) => s.stages.every((stage) => stage.top.length <= 5)));
  // greedy: the stories model continues with ", there was a little"
  assert.equal(trace.text.slice(0, 'Once upon a time, there was a little'.length), 'Once upon a time, there was a little');
});

test('kiln inspect: MODEL, a prompt and an output file are required (status 2, saying which)', async () => {
  for (const [argv, missing] of [
    [[MODEL, '-o', '/tmp/x.html'], /required option '-p, --prompt <text>' not specified/],
    [[MODEL, '-p', 'hi'], /required option '-o, --output <file>' not specified/],
    [['-p', 'hi', '-o', '/tmp/x.html'], /missing required argument 'MODEL'/],
  ] as const) {
    const { status, stderr } = await kiln('inspect', ...argv);
    assert.equal(status, 2);
    assert.match(stderr, missing);
  }
});
