// Runs the `kiln` command line in this process, as a user would type it, with what it writes captured.

import { main } from '../../src/cli/main.js';

export interface KilnRun {
  stdout: string;
  stderr: string;
  /** the exit status the process would end with: 0 done, 1 failed, 2 wrong command line */
  status: number;
}

/**
 * `kiln ...argv`: its stdout and stderr (text the command writes; the test runner's own binary reports pass
 * through) and its exit status.
 */
export async function kiln(...argv: string[]): Promise<KilnRun> {
  let stdout = '', stderr = '';
  const out = process.stdout.write, err = process.stderr.write;
  const capture = (stream: NodeJS.WriteStream, original: typeof out, add: (text: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: never[]) => {
      if (typeof chunk !== 'string') return original.call(stream, chunk, ...rest);
      add(chunk);
      return true;
    }) as typeof out;
  process.stdout.write = capture(process.stdout, out, (text) => { stdout += text; });
  process.stderr.write = capture(process.stderr, err, (text) => { stderr += text; });
  const exitCode = process.exitCode;
  process.exitCode = undefined;
  try {
    await main(argv);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  const status = Number(process.exitCode ?? 0);
  process.exitCode = exitCode;
  return { stdout, stderr, status };
}
