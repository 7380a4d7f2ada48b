#!/usr/bin/env node
// The `kiln` command: runs the compiled CLI (built by `npm install` through the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(compiled)) {
  console.error('kiln: the compiled CLI is missing; run `npm install` (or `npm run build`) in ' + root);
  process.exit(1);
}
const { main } = await import(pathToFileURL(compiled).href);
await main(process.argv.slice(2));
