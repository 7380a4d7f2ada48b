// The registry of `kiln` subcommands, in the order `kiln help` lists them.

import type { Command } from '../command.js';
import { tokenizerCommand } from './tokenizer.js';

export const COMMANDS: Command[] = [tokenizerCommand];
