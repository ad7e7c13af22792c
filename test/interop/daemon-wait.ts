import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { basename } from 'node:path';

/** The last lines of a log, for error messages. */
export function tail(log: string, lines = 20): string {
  return log.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Reads a daemon's log until `select` finds at least `atLeast` entries in it, woken by inotify
 * on the log's directory (each append is an event), or rejects after `timeoutMs` with the tail.
 */
export async function waitForLogEntries<T>(dir: string, logPath: string, select: (log: string) => T[], atLeast: number, timeoutMs: number, what: string): Promise<T[]> {
  const read = async () => select(await readFile(logPath, 'utf8').catch(() => ''));
  const first = await read();
  if (first.length >= atLeast) return first;
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      watcher.close();
      clearTimeout(timer);
      settle();
    };
    const check = () => {
      read().then(
        (entries) => {
          if (entries.length >= atLeast) finish(() => resolve(entries));
        },
        (err: unknown) => finish(() => reject(err)),
      );
    };
    const watcher = watch(dir, (_event, file) => {
      if (file === null || file === basename(logPath)) check();
    });
    const timer = setTimeout(() => {
      void readFile(logPath, 'utf8')
        .catch(() => '')
        .then((log) => finish(() => reject(new Error(`fewer than ${atLeast} ${what} after ${timeoutMs} ms; log tail:\n${tail(log)}`))));
    }, timeoutMs);
    check(); // an append between the first read and watch() would otherwise be missed
  });
}

/**
 * One readiness probe: connects, reads the first line, and if it starts with `prefix` says QUIT
 * and resolves true; otherwise resolves the reason (the caller retries).
 */
export function probeGreeting(target: { host: string; port: number; localAddress?: string }, prefix: string, timeoutMs: number): Promise<true | Error> {
  return new Promise((resolve) => {
    const socket = net.connect(target);
    let buffered = '';
    const fail = (err: Error) => {
      socket.destroy();
      resolve(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error('greeting timed out')));
    socket.on('error', fail);
    socket.on('close', () => resolve(new Error('closed before greeting')));
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      const end = buffered.indexOf('\r\n');
      if (end < 0) return;
      const line = buffered.slice(0, end);
      if (!line.startsWith(prefix)) return fail(new Error(`unexpected greeting ${JSON.stringify(line)}`));
      socket.setTimeout(0);
      socket.end('QUIT\r\n');
      resolve(true);
    });
  });
}

/** Resolves once a TCP connect to 127.0.0.1:`port` succeeds (the socket is dropped); rejects if refused. */
export function connectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}
