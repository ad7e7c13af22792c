import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError, loadConfig } from './config.js';

// Worker-thread entry of loadConfigOffThread: reads and validates one file, posts the outcome, ends.
const file = (workerData as { file: string }).file;
loadConfig(file).then(
  // As JSON text: one string crosses threads at once, and JSON.parse is faster than a structured clone of 100,000 objects.
  (config) => parentPort!.postMessage({ json: JSON.stringify(config) }),
  (err: unknown) => parentPort!.postMessage(err instanceof ConfigError ? { problems: err.problems } : { problems: [`(file): ${err instanceof Error ? err.message : String(err)}`] }),
);
