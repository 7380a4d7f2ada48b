// kiln as a dependency, as a new user gets it: `npm pack` of a clean copy of the sources (its prepare script builds
// the WebAssembly kernels and the JavaScript), `npm install` of the tarball into a fresh app (from npm's cache, the
// registry only for metadata a fresh machine's cache lacks), and the README's TypeScript example run there with
// `node app.mjs` and type-checked against the packed declarations.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LLM, SamplingParams } from '../../src/engine/llm.js';
import { defaultModelPath } from '../../src/cli/default-model.js';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const npm = (cwd: string, ...args: string[]) => run('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund'], { cwd, encoding: 'utf8' });

/** The README's example: the TypeScript block of its "From TypeScript" section. */
function readmeExample(): string {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## From TypeScript'));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(match, 'README.md has no ```ts block under "## From TypeScript"');
  return match[1];
}

test('npm pack → npm install in a fresh app → the README example runs and type-checks', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-pack-'));
  try {
    // a clean copy of what a clone holds (no build/, no dist/), with the repository's dev dependencies for prepare
    const source = join(dir, 'source');
    mkdirSync(source);
    for (const entry of ['package.json', 'tsconfig.json', 'README.md', 'bin', 'src', 'wasm', 'web', 'models']) {
      cpSync(join(repo, entry), join(source, entry), { recursive: true });
    }
    symlinkSync(join(repo, 'node_modules'), join(source, 'node_modules'), 'dir');
    const packed = await npm(source, 'pack', '--json', '--pack-destination', dir);
    const [{ filename, files, size }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[]; size: number }[];
    t.diagnostic(`${filename}: ${files.length} files, ${size} bytes`);
    const paths = new Set(files.map((f) => f.path));
    for (const path of ['build/kernels-simd.wasm', 'build/kernels-relaxed.wasm', 'wasm/pool-worker.mjs', 'dist/src/index.js', 'dist/src/index.d.ts', 'models/kiln-brown.gguf', 'web/chat.html', 'bin/kiln.js']) {
      assert.ok(paths.has(path), `${path} is not in the package`);
    }
    assert.ok(![...paths].some((p) => p.startsWith('test/') || p.startsWith('dist/test/') || p.startsWith('src/')), 'sources or tests in the package');

    // the fresh app; kiln's one dependency comes packed from node_modules, so nothing is fetched
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const jinja = JSON.parse((await npm(dir, 'pack', '--json', join(repo, 'node_modules', '@huggingface', 'jinja'))).stdout)[0].filename;
    await npm(app, 'install', join(dir, jinja), join(dir, filename));
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', 'kiln-lm', 'package.json'), 'utf8'));
    assert.equal(installed.dependencies['kiln-lm'], undefined, 'kiln-lm depends on itself');

    const example = readmeExample();
    writeFileSync(join(app, 'app.mjs'), example);
    const { stdout } = await run(process.execPath, ['app.mjs'], { cwd: app, encoding: 'utf8' });
    // the same as the sources print for the same call
    const llm = new LLM({ model: defaultModelPath() });
    const prompts = ['The jury said', 'In the morning'];
    const outputs = await llm.generate(prompts, new SamplingParams({ temperature: 0.8, max_tokens: 40, seed: 1 }));
    await llm.close();
    assert.match(example, /\['The jury said', 'In the morning'\], new SamplingParams\(\{ temperature: 0\.8, max_tokens: 40, seed: 1 \}\)/);
    assert.equal(stdout, outputs.map((o) => `${o.prompt} → ${o.outputs[0].text}\n`).join(''));

    // the example as TypeScript, against the package's declarations (found through its exports)
    writeFileSync(join(app, 'app.ts'), example);
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    await run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', 'app.ts'], { cwd: app })
      .catch((e: { stdout: string }) => assert.fail(`app.ts does not type-check:\n${e.stdout}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
