// The inspector and estimator pages (web/inspect.html, web/estimate.html): read from the package, and the
// inspector written as one self-contained file with a trace embedded in it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../kernels/wasm-module.js';
import type { InspectTrace } from './trace.js';

export type PageName = 'inspect' | 'estimate';

export function readPage(name: PageName): string {
  return readFileSync(join(packageRoot(), 'web', `${name}.html`), 'utf8');
}

const DATA_SLOT = '<script id="inspect-data" type="application/json">null</script>';

/** The inspector page with `trace` in its data slot; `<` is escaped so that no text in the trace can close the script. */
export function inspectPageWithTrace(trace: InspectTrace): string {
  const page = readPage('inspect');
  if (!page.includes(DATA_SLOT)) throw new Error('web/inspect.html has no data slot');
  const json = JSON.stringify(trace).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return page.replace(DATA_SLOT, () => DATA_SLOT.replace('null', json));
}
