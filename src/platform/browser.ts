// The platform in a web page's worker: a Blob read in slices with FileReaderSync (dedicated workers only, so the
// GGUF reader stays synchronous), SHA-256 from @noble/hashes (Web Crypto's digest is asynchronous only), the
// kernels fetched by the page before loading (installKernels), kernel threads as module Web Workers running
// pool-worker.js beside the engine's bundle, and navigator.hardwareConcurrency.

import { sha256 } from '@noble/hashes/sha2';
import { GGUFError } from '../gguf/types.js';
import { KernelBuildMissingError } from '../kernels/wasm-module.js';
import { PlatformError, type FileSource, type Platform, type RandomAccessFile } from './platform.js';

declare const FileReaderSync: { new(): { readAsArrayBuffer(blob: Blob): ArrayBuffer } };
declare const navigator: { hardwareConcurrency?: number };
declare const location: { href: string };
declare class Worker {
  constructor(url: URL, options: { type: 'module' });
  postMessage(message: unknown, transfer: unknown[]): void;
  onerror: ((event: { message?: string }) => void) | null;
}

const kernels = new Map<string, Uint8Array>();
/** told the bytes read so far of each file opened, after every read */
let onRead: ((done: number, total: number) => void) | undefined;

/** Reports the progress of reading files (a model's load) to `callback`. */
export function watchReads(callback: (done: number, total: number) => void): void {
  onRead = callback;
}

/** Hands the page's fetched kernel builds to the platform (before the first backend is made). */
export function installKernels(builds: Record<string, Uint8Array>): void {
  for (const [name, bytes] of Object.entries(builds)) kernels.set(name, bytes);
}

function openBlob(blob: Blob, name: string): RandomAccessFile {
  if (typeof FileReaderSync === 'undefined') throw new PlatformError('a model file can only be read inside a dedicated worker (FileReaderSync)');
  const reader = new FileReaderSync();
  let done = 0;
  return {
    name,
    size: blob.size,
    read(into, at, length, position) {
      const end = Math.min(blob.size, position + length);
      if (end <= position) return 0;
      try {
        into.set(new Uint8Array(reader.readAsArrayBuffer(blob.slice(position, end))), at);
      } catch (e) {
        throw new GGUFError('IO', `cannot read ${name}: ${(e as Error).message}`);
      }
      done += end - position;
      onRead?.(done, blob.size);
      return end - position;
    },
    close: () => {},
  };
}

/** setImmediate for the engine's loop (a page has none): a message to ourselves runs after pending events. */
if (typeof globalThis.setImmediate !== 'function') {
  const channel = new MessageChannel();
  const queue: (() => void)[] = [];
  (channel.port1 as unknown as { onmessage: () => void }).onmessage = () => queue.shift()?.();
  (globalThis as { setImmediate?: unknown }).setImmediate = (callback: () => void) => {
    queue.push(callback);
    channel.port2.postMessage(0);
  };
}

export const platform: Platform = {
  openFile(source: FileSource) {
    if (typeof source === 'string') throw new PlatformError(`a page cannot open the path ${source}: choose the file instead`);
    return openBlob(source, (source as Blob & { name?: string }).name ?? '<blob>');
  },
  sha256(parts) {
    const hash = sha256.create();
    for (const part of parts) hash.update(part);
    return btoa(String.fromCharCode(...hash.digest()));
  },
  kernelBinary(name) {
    const bytes = kernels.get(name);
    if (!bytes) throw new KernelBuildMissingError(name);
    return bytes;
  },
  startKernelThread() {
    const worker = new Worker(new URL('pool-worker.js', location.href), { type: 'module' });
    // the thread's messages go through a channel: posted on the worker itself, they wait for this thread to yield
    const { port1, port2 } = new MessageChannel();
    worker.postMessage(port2, [port2]);
    // it says 'started' once running; until its maker yields, a page's worker does not even load
    const started = new Promise<void>((resolve, reject) => {
      (port1 as unknown as { onmessage: () => void }).onmessage = () => resolve();
      worker.onerror = (event) => reject(new PlatformError(`a kernel thread did not start: ${event.message ?? 'pool-worker.js failed to load'}`));
    });
    return { post: (message) => port1.postMessage(message), started };
  },
  cores: () => navigator.hardwareConcurrency ?? 1,
};
