// Builds the WebAssembly kernels (wasm/kernels/, AssemblyScript, entry index.ts) into build/: a SIMD128 module and a
// relaxed-SIMD one. Skips a module whose output is newer than every source file and this script. Run by `npm install`
// (prepare) and `npm test`.
import { statSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = join(root, 'wasm', 'kernels');
const entry = join(sources, 'index.ts');
const variants = [
  { out: 'kernels-simd.wasm', features: 'simd,threads' },
  { out: 'kernels-relaxed.wasm', features: 'simd,relaxed-simd,threads' },
];

function mtime(path) {
  try { return statSync(path).mtimeMs; } catch { return -1; }
}

mkdirSync(join(root, 'build'), { recursive: true });
const newest = Math.max(mtime(fileURLToPath(import.meta.url)), ...readdirSync(sources).map((f) => mtime(join(sources, f))));
const stale = variants.filter((v) => mtime(join(root, 'build', v.out)) < newest);
if (stale.length > 0) {
  const asc = (await import('assemblyscript/asc')).default;
  for (const v of stale) {
    const { error, stderr } = await asc.main([
      entry, '--outFile', join(root, 'build', v.out), '-O3', '--noAssert', '--runtime', 'stub',
      '--enable', v.features, '--importMemory', '--sharedMemory', '--initialMemory', '1', '--maximumMemory', '65536',
    ]);
    if (error) {
      console.error(stderr.toString());
      throw error;
    }
  }
}
