// Entry point of the `kiln` command line.

import { parseArgs, describeOptions, UsageError } from './args.js';
import { COMMANDS } from './commands/index.js';

const BUILTIN_ERRORS: Function[] = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

function printHelp(): void {
  const lines = ['kiln — transformer language models in TypeScript', '', 'usage: kiln COMMAND [options]', '', 'commands:'];
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(14)} ${c.summary}`);
  lines.push('', 'Run `kiln COMMAND --help` for the options of one command.');
  console.log(lines.join('\n'));
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    printHelp();
    return;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`kiln: unknown command "${name}"; run \`kiln help\``);
    process.exitCode = 2;
    return;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`usage: kiln ${command.name} ${command.usage}\n\n${command.summary}\n\noptions:\n${describeOptions(command.options)}`);
    return;
  }
  try {
    await command.run(parseArgs(rest, command.options));
  } catch (e) {
    const err = e as Error;
    // kiln's own errors say what went wrong in their message; a built-in one (TypeError, …) is a bug and says so by its name
    console.error(`kiln ${command.name}: ${BUILTIN_ERRORS.some((type) => err.constructor === type) ? `${err.name}: ` : ''}${err.message}`);
    if (process.env.KILN_DEBUG) console.error(err.stack);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}
