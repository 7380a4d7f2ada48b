// The `kiln` command line as a whole: --version, help for the program and every command, suggestions for misspelt
// commands and options, renamed options, and the flags that mean the same in every command.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { kilnProgram } from '../../src/cli/main.js';
import { MAX_TRAINING_THREADS } from '../../src/train/backend.js';
import { kiln } from '../helpers/cli.js';

const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

/** every command and subcommand, with its path ("tokenizer train") */
function allCommands(command: CommandUnknownOpts = kilnProgram(), path: string[] = []): [string[], CommandUnknownOpts][] {
  return command.commands.flatMap((sub) => [[[...path, sub.name()], sub] as [string[], CommandUnknownOpts], ...allCommands(sub, [...path, sub.name()])]);
}

test('kiln --version and -V print the package version', async () => {
  for (const flag of ['--version', '-V']) {
    const { stdout, status } = await kiln(flag);
    assert.equal(status, 0);
    assert.equal(stdout, `${VERSION}\n`);
  }
});

test('kiln alone and kiln help list every command; every command has its --help', async () => {
  const listed = await kiln();
  assert.equal(listed.status, 0);
  assert.deepEqual((await kiln('help')).stdout, listed.stdout);
  const commands = allCommands();
  assert.ok(commands.length >= 20);
  for (const [path, command] of commands) {
    if (path.length === 1) assert.match(listed.stdout, new RegExp(`^  ${path[0]} `, 'm'), path[0]);
    const help = await kiln(...path, '--help');
    assert.equal(help.status, 0, path.join(' '));
    assert.match(help.stdout, new RegExp(`^Usage: kiln ${path.join(' ')} `), path.join(' '));
    for (const option of command.options) assert.ok(option.hidden || help.stdout.includes(option.flags), `${path.join(' ')}: ${option.flags}`);
  }
  assert.equal((await kiln('help', 'perplexity')).stdout, (await kiln('perplexity', '--help')).stdout);
});

test('misspelt commands and options get a suggestion and status 2', async () => {
  const command = await kiln('rnu', '-p', 'x');
  assert.equal(command.status, 2);
  assert.match(command.stderr, /^error: unknown command 'rnu'\n\(Did you mean run\?\)/);
  const option = await kiln('run', '--tmep', '0');
  assert.equal(option.status, 2);
  assert.match(option.stderr, /^error: unknown option '--tmep'\n\(Did you mean --temp\?\)/);
  const value = await kiln('run', '-n', 'ten');
  assert.equal(value.status, 2);
  assert.match(value.stderr, /^error: option '-n, --n-predict <n>' argument 'ten' is invalid. expected an integer/);
});

test('renamed options say what to write instead', async () => {
  for (const [argv, instead] of [
    [['dpo', '--model', 'm.gguf', '--data', 'd.jsonl', '-o', 'o.gguf'], /--model was renamed: give the model as the first argument: kiln dpo MODEL\.gguf/],
    [['qat', '--model', 'm.gguf', '--corpus', 'c.txt', '--type', 'Q4_0', '-o', 'o.gguf'], /--model was renamed: give the model as the first argument: kiln qat MODEL\.gguf/],
    [['distill', '--teacher', 't.gguf', '--student-config', 'c.json'], /--teacher was renamed: give the teacher as the first argument: kiln distill TEACHER\.gguf/],
  ] as const) {
    const { status, stderr } = await kiln(...argv);
    assert.equal(status, 2, argv[0]);
    assert.match(stderr, instead);
  }
});

test('-o/--output, -t/--threads and -c/--ctx mean the same in every command; threads default to every core', () => {
  const threads = new Map<string, unknown>();
  for (const [path, command] of allCommands()) {
    for (const option of command.options) {
      if (option.short === '-o') assert.match(option.flags, /^-o, --output </, path.join(' '));
      if (option.short === '-t') assert.equal(option.flags, '-t, --threads <n>', path.join(' '));
      if (option.short === '-c') assert.equal(option.flags, '-c, --ctx <n>', path.join(' '));
      if (option.long === '--threads') threads.set(path.join(' '), option.defaultValue);
    }
  }
  const cores = availableParallelism();
  for (const name of ['run', 'chat', 'serve', 'eval', 'perplexity', 'bench']) assert.equal(threads.get(name), cores, name);
  for (const name of ['finetune', 'dpo', 'qat']) assert.equal(threads.get(name), Math.min(cores, MAX_TRAINING_THREADS), name);
  // train and distill: the configuration's threads, which default to every core (src/train/config.ts)
  for (const name of ['train', 'distill']) assert.ok(threads.has(name) && threads.get(name) === undefined, name);
});
