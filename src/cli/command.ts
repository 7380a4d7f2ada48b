// What every `kiln` subcommand provides; commands live one per file in ./commands.

import type { OptionSpec, ParsedArgs } from './args.js';

export interface Command {
  name: string;
  /** e.g. "MODEL -p TEXT [-n N]" */
  usage: string;
  summary: string;
  options: OptionSpec[];
  run(args: ParsedArgs): Promise<void> | void;
}
