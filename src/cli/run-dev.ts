// Runs the CLI straight from the TypeScript sources (development): `npx tsx src/cli/run-dev.ts COMMAND ...`.
import { main } from './main.js';

await main(process.argv.slice(2));
