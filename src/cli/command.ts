// What every `kiln` subcommand is: a function in its own file under ./commands that makes a commander Command
// (its arguments, options, help and action), listed once in ./commands/index.ts. Adding a command is one file and
// one line there. commander parses and checks the command line, suggests misspelt names and writes the help.

import type { CommandUnknownOpts } from '@commander-js/extra-typings';

export type MakeCommand = () => CommandUnknownOpts;
