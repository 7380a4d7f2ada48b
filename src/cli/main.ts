// Entry point of the `kiln` command line: the commands of ./commands/index.ts under one commander program, with
// --version, suggestions for misspelt commands and options, and one way of reporting errors. Exit status: 0 done,
// 1 the work failed, 2 the command line was wrong.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { COMMANDS } from './commands/index.js';
import { UsageError } from './options.js';
import { packageRoot } from './default-model.js';

const HELP_HINT = '(add --help for the options)';

const BUILTIN_ERRORS: Function[] = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

/** kiln's version, from its package.json */
export function kilnVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** The `kiln` program, made afresh for each command line (commander keeps parsed values on its commands). */
export function kilnProgram(): Command {
  const program = new Command('kiln')
    .description('kiln — transformer language models in TypeScript')
    .usage('COMMAND [options]')
    .version(kilnVersion(), '-V, --version', 'print kiln\'s version')
    .helpOption('-h, --help', 'show this help')
    .helpCommand('help [COMMAND]', 'show the help of a command')
    .showSuggestionAfterError()
    .showHelpAfterError(HELP_HINT)
    .exitOverride();
  for (const make of COMMANDS) program.addCommand(inheriting(make(), program));
  return program;
}

/** `command` and its subcommands with the program's settings (addCommand does not pass them on). */
function inheriting(command: CommandUnknownOpts, parent: CommandUnknownOpts): CommandUnknownOpts {
  command.copyInheritedSettings(parent);
  for (const sub of command.commands) inheriting(sub, command);
  return command;
}

export async function main(argv: string[]): Promise<void> {
  const program = kilnProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    process.exitCode = exitStatus(e, argv[0]);
  }
}

/** The exit status for what a command threw, after saying what went wrong (commander has said it for its own errors). */
function exitStatus(e: unknown, name: string): number {
  if (e instanceof CommanderError) {
    // help and --version end through here too, with exit code 0
    return e.exitCode === 0 ? 0 : 2;
  }
  const err = e as Error;
  if (err instanceof UsageError) {
    console.error(`kiln ${name}: error: ${err.message}\n${HELP_HINT}`);
    return 2;
  }
  // kiln's own errors say what went wrong in their message; a built-in one (TypeError, …) is a bug and says so by its name
  console.error(`kiln ${name}: ${BUILTIN_ERRORS.some((type) => err.constructor === type) ? `${err.name}: ` : ''}${err.message}`);
  if (process.env.KILN_DEBUG) console.error(err.stack);
  return 1;
}
