import { createRequire } from 'node:module';

/** The optional addon (native/splice): one relay direction moved by splice(2) on a thread. */
export interface SpliceAddon {
  start(srcFd: number, dstFd: number, onDone: (end: 'eof' | 'error' | 'stopped', bytes: number, reason: string) => void): number;
  progress(id: number): number;
  stop(id: number): number;
}

/** Which code moves FTP data-connection bytes, and why. */
export interface DataPath {
  readonly kind: 'splice' | 'js';
  readonly reason: string;
}

/** Names the env switch, so docs, logs and tests agree. */
export const DATA_PATH_ENV = 'CONCIERGE_DATA_PATH';

let addon: SpliceAddon | undefined;
let loadError: string | undefined;
try {
  // An optional dependency: absent or unbuilt (no compiler at install) is a normal outcome.
  addon = createRequire(import.meta.url)('@concierge/splice') as SpliceAddon;
} catch (err) {
  loadError = (err as Error).message.split('\n')[0];
}

/**
 * The data path for relays starting now. `CONCIERGE_DATA_PATH=js` forces the JavaScript relay,
 * `splice` asks for the addon, unset (or `auto`) takes the addon when it loaded. Read per relay,
 * so a test can run both paths in one process.
 */
export function dataPath(): DataPath {
  const wanted = process.env[DATA_PATH_ENV] ?? 'auto';
  if (wanted === 'js') return { kind: 'js', reason: `${DATA_PATH_ENV}=js` };
  if (!addon) return { kind: 'js', reason: `@concierge/splice not loaded (${loadError ?? 'unknown'})` };
  if (wanted !== 'auto' && wanted !== 'splice') return { kind: 'js', reason: `${DATA_PATH_ENV}=${wanted} is not "js", "splice" or "auto"` };
  return { kind: 'splice', reason: wanted === 'splice' ? `${DATA_PATH_ENV}=splice` : 'addon loaded' };
}

/** The addon, when the data path is `splice`. */
export function spliceAddon(): SpliceAddon | undefined {
  return dataPath().kind === 'splice' ? addon : undefined;
}
