// The platform in Node: files through node:fs, hashing through node:crypto, the kernels from build/, kernel threads
// as worker_threads.

import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { GGUFError } from '../gguf/types.js';
import { KernelBuildMissingError, packageRoot } from '../kernels/wasm-module.js';
import { PlatformError, type FileSource, type Platform, type RandomAccessFile } from './platform.js';

function openPath(path: string): RandomAccessFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new GGUFError('IO', `cannot open ${path}: ${(e as Error).message}`);
  }
  const stat = fstatSync(fd);
  if (!stat.isFile()) {
    closeSync(fd);
    throw new GGUFError('IO', `${path} is not a regular file`);
  }
  return {
    name: path,
    size: stat.size,
    read(into, at, length, position) {
      try {
        return readSync(fd, into, at, Math.min(length, 1 << 30), position);
      } catch (e) {
        throw new GGUFError('IO', `cannot read ${path}: ${(e as Error).message}`);
      }
    },
    close: () => closeSync(fd),
  };
}

export const platform: Platform = {
  openFile(source: FileSource) {
    if (typeof source !== 'string') throw new PlatformError('in Node a model is opened by its path, not as a Blob');
    return openPath(source);
  },
  sha256(parts) {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return hash.digest('base64');
  },
  kernelBinary(name) {
    const path = join(packageRoot(), 'build', name);
    if (!existsSync(path)) throw new KernelBuildMissingError(path);
    // Node 20's V8 ships relaxed SIMD behind a flag; it only affects modules compiled after this call
    if (name.includes('relaxed')) setFlagsFromString('--experimental-wasm-relaxed-simd');
    return readFileSync(path);
  },
  startKernelThread() {
    const worker = new Worker(pathToFileURL(join(packageRoot(), 'wasm', 'pool-worker.mjs')));
    worker.unref();
    // a worker thread starts on its own, whatever its maker does
    return { post: (message) => worker.postMessage(message), started: Promise.resolve() };
  },
  cores: () => availableParallelism(),
};
