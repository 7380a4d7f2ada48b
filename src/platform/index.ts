// The platform this build runs on (web/build.mjs resolves ./node.js to ./browser.js for the page).
export { platform } from './node.js';
export type { FileSource, KernelThread, Platform, RandomAccessFile } from './platform.js';
