import { randomBytes } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CONTROL_DIR } from './spool.js';

/** What `concierge queue flush|delete` asks of the running relay. */
export type ControlRequest = { readonly action: 'flush'; readonly tenant?: string } | { readonly action: 'delete'; readonly id: string };

/**
 * Leaves a request in the spool's control folder. The running relay (the queue's only writer)
 * carries it out at once; with no relay running, at its next start, before any delivery.
 */
export async function submitRequest(spool: string, request: ControlRequest): Promise<void> {
  const dir = path.join(spool, CONTROL_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const name = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  // Written aside and renamed: the watcher never reads half a request.
  await writeFile(path.join(dir, `${name}.tmp`), JSON.stringify(request));
  await rename(path.join(dir, `${name}.tmp`), path.join(dir, `${name}.json`));
}

/** Carries out the requests waiting now, oldest first, each removed once handled. */
async function drain(dir: string, handle: (request: ControlRequest) => Promise<void>): Promise<void> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
  for (const name of names) {
    const file = path.join(dir, name);
    const text = await readFile(file, 'utf8').catch(() => undefined);
    await unlink(file).catch(() => {});
    if (text === undefined) continue;
    let request: ControlRequest | undefined;
    try {
      request = JSON.parse(text) as ControlRequest;
    } catch {
      continue;
    }
    await handle(request);
  }
}

/** Handles waiting requests now and each new one as it arrives; returns the stop function. */
export async function watchRequests(spool: string, handle: (request: ControlRequest) => Promise<void>, onError: (err: Error) => void): Promise<() => void> {
  const dir = path.join(spool, CONTROL_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let running: Promise<void> = drain(dir, handle);
  await running;
  let again = false;
  const kick = () => {
    if (again) return;
    again = true;
    running = running.then(() => {
      again = false;
      return drain(dir, handle);
    }).catch(onError);
  };
  const watcher: FSWatcher = watch(dir, kick);
  watcher.on('error', onError);
  return () => watcher.close();
}
