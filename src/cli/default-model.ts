// The model that `kiln run`, `kiln chat` and `kiln serve` use when given none: models/kiln-brown.gguf, which kiln
// trained itself on the Brown corpus (models/README.md). It is found from the package root, so the same lookup
// works from the TypeScript sources (src/cli/) and from the compiled CLI (dist/src/cli/).

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readGGUFHeader } from '../gguf/reader.js';
import { checkIsModel } from '../gguf/adapter-kind.js';
import { isHFFolder } from '../hf/checkpoint.js';

export const DEFAULT_MODEL = join('models', 'kiln-brown.gguf');
/** the embedding model `kiln rag` uses when given none (models/README.md) */
export const DEFAULT_EMBED_MODEL = join('models', 'kiln-brown-embed.gguf');

export class DefaultModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DefaultModelError';
  }
}

/** The nearest folder above this file that holds a package.json: kiln's root. */
export function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new DefaultModelError(`no package.json above ${here}: cannot locate the default model`);
  }
}

/** The default model's absolute path (or the default embedding model's); a DefaultModelError if the file is not there. */
export function defaultModelPath(which: 'chat' | 'embed' = 'chat'): string {
  const path = join(packageRoot(), which === 'chat' ? DEFAULT_MODEL : DEFAULT_EMBED_MODEL);
  if (!existsSync(path)) {
    const script = which === 'chat' ? 'train-default-model.ts' : 'train-embed-model.ts';
    throw new DefaultModelError(`no MODEL given and the default model ${path} is missing: pass a GGUF file, or rebuild it with \`npx tsx scripts/${script}\``);
  }
  return path;
}

/**
 * The model a command reads (a GGUF file or a Hugging Face folder): its MODEL argument, or the default model where MODEL may be left out; an
 * adapter given instead gets an error saying how to apply it (src/gguf/adapter-kind.ts).
 */
export function modelPath(argument: string | undefined): string {
  const path = argument ?? defaultModelPath();
  if (isHFFolder(path)) return path; // a Hugging Face folder holds a model (checked when it loads)
  checkIsModel(readGGUFHeader(path).metadata, path);
  return path;
}
