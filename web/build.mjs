// Bundles the engine for a web page (esbuild): src/web/engine-worker.ts with the browser platform in place of Node's
// (src/platform/node.ts → browser.ts) into build/web/engine-worker.js, next to the kernels it fetches and the kernel
// thread's script (wasm/pool-worker.mjs, plain JavaScript that runs as it is).
// Node built-ins reached only by Node's code paths (CLI, Hugging Face folders, the kernel pool's worker_threads)
// become empty modules: the page never calls them.

import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'web');
mkdirSync(out, { recursive: true });

const browserPlatform = {
  name: 'browser-platform',
  setup(b) {
    const platformIndex = join(root, 'src', 'platform', 'index.ts');
    b.onResolve({ filter: /^\.\/node\.js$/ }, (args) => (args.importer === platformIndex ? { path: join(root, 'src', 'platform', 'browser.ts') } : undefined));
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'node-builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

await build({
  entryPoints: [join(root, 'src', 'web', 'engine-worker.ts')],
  outfile: join(out, 'engine-worker.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
  plugins: [browserPlatform],
});
for (const name of ['kernels-simd.wasm', 'kernels-relaxed.wasm']) copyFileSync(join(root, 'build', name), join(out, name));
copyFileSync(join(root, 'wasm', 'pool-worker.mjs'), join(out, 'pool-worker.js'));
