/**
 * Child-process entry for bench/idle-sessions.ts: runs the built Concierge (dist/) in-process so
 * its memory can be read from inside after a full GC. Needs --expose-gc. Prints {"port":N} once
 * listening, then answers IPC messages:
 *   "measure"        → { rss, heapUsed, external, arrayBuffers, sessions }  (after two GCs)
 *   { snapshot: F }  → writes a V8 heap snapshot to F, then { written: F }
 *
 *   node --expose-gc bench/lib/memory-child.mjs <tenants.json>
 *
 * Plain JavaScript on dist/, not TypeScript through tsx: tsx compiles with esbuild's keepNames,
 * which gives every function an own "name" property (a property array of its own): measured,
 * about 2.5 KiB more per session than the tsc build that is deployed.
 */
import { writeHeapSnapshot } from 'node:v8';
import { loadConfig } from '../../dist/src/config.js';
import { startConcierge } from '../../dist/src/concierge.js';

const [configFile] = process.argv.slice(2);
if (!configFile || typeof globalThis.gc !== 'function' || !process.send) {
  process.stderr.write('usage: node --expose-gc bench/lib/memory-child.mjs <tenants.json> (with an IPC channel)\n');
  process.exit(2);
}
const gc = globalThis.gc;
const config = await loadConfig(configFile);
const concierge = await startConcierge(config);
const listener = concierge.listeners[0];
process.send({ port: listener.address().port });

process.on('message', (message) => {
  if (message === 'measure') {
    gc();
    gc();
    const m = process.memoryUsage();
    process.send({ rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, sessions: listener.sessionCount });
  } else if (typeof message === 'object' && message !== null && 'snapshot' in message) {
    const file = writeHeapSnapshot(String(message.snapshot));
    process.send({ written: file });
  }
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
