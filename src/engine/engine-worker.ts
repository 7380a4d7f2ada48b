// The engine core's Node worker thread: it loads the model and serves it to EngineClient (engine-client.ts)
// through the protocol of engine-host.ts.

import { parentPort, workerData } from 'node:worker_threads';
import { Model } from '../generate/model.js';
import { createBackend } from '../kernels/select.js';
import { hostEngine } from './engine-host.js';
import type { WorkerData } from './engine-client.js';

const port = parentPort!;
const { path, threads, lora, promptAdapter, engine } = workerData as WorkerData;
const model = Model.load(path, { backend: createBackend(undefined, threads), lora, promptAdapter });
port.on('message', hostEngine(model, engine, { post: (message) => port.postMessage(message), close: () => port.close() }));
