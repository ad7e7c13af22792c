import { Worker } from 'node:worker_threads';
import { type Config, ConfigError } from './config.js';

/**
 * loadConfig on a worker thread. Reading, parsing and validating 100,000 tenants takes seconds
 * (bench/RESULTS.md), and on the main thread every session of the process would stall for that
 * long at each reload; only parsing the validated result, as JSON text, lands on the main thread.
 * Rejects with ConfigError, like loadConfig.
 */
export function loadConfigOffThread(file: string): Promise<Config> {
  // The entry next to this file: config-thread.js in the build, config-thread.ts when run through tsx.
  const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const entry = new URL(`./config-thread${extension}`, import.meta.url);
  // Through tsx (tests, benchmarks) the thread registers tsx's loader first: on Node 20 a worker
  // does not inherit the hooks that `--import tsx` installed.
  const worker =
    extension === '.ts'
      ? new Worker(`import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`, { eval: true, workerData: { file } })
      : new Worker(entry, { workerData: { file } });
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.once('message', (message: { json: string } | { problems: string[] }) => {
      settled = true;
      // The config is plain JSON data (strings, numbers, arrays, objects), so the text carries all of it.
      if ('json' in message) resolve(JSON.parse(message.json) as Config);
      else reject(new ConfigError(message.problems, file));
    });
    worker.once('error', (err) => {
      if (!settled) reject(new ConfigError([`(file): could not validate on a worker thread: ${err.message}`], file));
      settled = true;
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new ConfigError([`(file): the validating thread exited with code ${code}`], file));
      settled = true;
    });
  });
}
