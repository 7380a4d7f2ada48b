// A static server of the in-page engine's files alone (web/local.html at /local, the inspector at /local/inspect,
// build/web/ at /local/…), with or without the cross-origin isolation headers: the page without a model on the
// server side, for the no-isolation test and bench/browser-decode.ts.

import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { packageRoot } from '../../src/kernels/wasm-module.js';

const TYPES: Record<string, string> = { js: 'text/javascript', wasm: 'application/wasm', html: 'text/html' };

export async function serveLocalPage(isolated: boolean): Promise<{ baseURL: string; close(): Promise<void> }> {
  const root = packageRoot();
  const server = createServer((request, response) => {
    const url = request.url ?? '';
    const path = url === '/local' ? join(root, 'web', 'local.html')
      : url === '/local/inspect' ? join(root, 'web', 'inspect.html')
      : url.startsWith('/local/') ? join(root, 'build', 'web', basename(url)) : '';
    if (!path || !existsSync(path)) return response.writeHead(404).end();
    const headers: Record<string, string> = { 'Content-Type': TYPES[path.slice(path.lastIndexOf('.') + 1)] };
    if (isolated) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
    response.writeHead(200, headers).end(readFileSync(path));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
