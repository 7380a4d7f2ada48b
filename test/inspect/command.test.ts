// `kiln inspect` end to end: the written page holds the trace of the run asked for; usage errors are typed.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { inspectCommand } from '../../src/cli/commands/inspect.js';
import type { InspectTrace } from '../../src/inspect/trace.js';
import { sharedPath } from '../shared.js';

const MODEL = sharedPath('data', 'models', 'stories260K.gguf');

async function run(t: TestContext, argv: string[]): Promise<void> {
  const log = t.mock.method(console, 'error', () => {});
  try {
    await inspectCommand.run(parseArgs(argv, inspectCommand.options));
  } finally {
    log.mock.restore();
  }
}

function embeddedTrace(path: string): InspectTrace {
  const m = /<script id="inspect-data" type="application\/json">(.*?)<\/script>/s.exec(readFileSync(path, 'utf8'));
  assert.ok(m, 'the page has its data slot');
  return JSON.parse(m[1]);
}

test('kiln inspect writes the page with the run\'s trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-inspect-cmd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out.html');
  await run(t, [MODEL, '-p', 'Once upon a time', '-n', '6', '--temp', '0', '--top', '5', '-o', out]);
  const trace = embeddedTrace(out);
  assert.equal(trace.prompt, 'Once upon a time');
  assert.equal(trace.promptTokens, 5);
  assert.equal(trace.steps.length, 6);
  assert.equal(trace.sampling.temperature, 0);
  assert.ok(trace.steps.every((s) => s.stages.every((stage) => stage.top.length <= 5)));
  // greedy: the stories model continues with ", there was a little"
  assert.equal(trace.text.slice(0, 'Once upon a time, there was a little'.length), 'Once upon a time, there was a little');
});

test('kiln inspect: a prompt and an output file are required', async (t) => {
  await assert.rejects(run(t, [MODEL, '-o', '/tmp/x.html']), UsageError);
  await assert.rejects(run(t, [MODEL, '-p', 'hi']), UsageError);
  await assert.rejects(run(t, ['-p', 'hi', '-o', '/tmp/x.html']), UsageError);
});
