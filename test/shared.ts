// Location of the shared correctness data (../shared beside the repository, or $KILN_SHARED).

import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export const SHARED = process.env.KILN_SHARED ?? join(repoRoot, '..', 'shared');

export function sharedPath(...parts: string[]): string {
  const path = join(SHARED, ...parts);
  if (!existsSync(path)) throw new Error(`shared test data missing: ${path} (set KILN_SHARED to the shared folder)`);
  return path;
}
