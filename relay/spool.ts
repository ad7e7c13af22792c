import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/** The queue of the host's own mail (a domain cannot start with "_", so no tenant can take it). */
export const HOST_QUEUE = '_host';
/** Per-queue files being written; never read as messages. */
const TMP_SUFFIX = '.tmp';

/** One recipient of a queued message and how far it got. */
export interface QueuedRecipient {
  readonly address: string;
  state: 'pending' | 'delivered' | 'failed';
  /** RFC 3463 status of the last attempt (e.g. "5.1.1", "4.4.1"). */
  status?: string;
  /** The receiving server's reply, or what went wrong, for the DSN and `queue show`. */
  diagnostic?: string;
  /** The server that gave the final answer. */
  remoteMta?: string;
}

/** A message's envelope and delivery state: the `<id>.json` beside its `<id>.eml`. */
export interface QueuedMessage {
  readonly id: string;
  /** The queue (tenant domain, or HOST_QUEUE) it sits in and is sent as. */
  readonly queue: string;
  /** Reverse-path; "" for a bounce (null sender). */
  readonly from: string;
  readonly recipients: QueuedRecipient[];
  readonly receivedAt: number;
  /** Octets of `<id>.eml` (the Received line included, dot-stuffing kept). */
  readonly size: number;
  /** BODY=8BITMIME was declared. */
  readonly eightBit: boolean;
  /** SMTPUTF8 was declared (RFC 6531): addresses or headers may hold UTF-8. Absent in older records. */
  readonly smtputf8?: boolean;
  attempts: number;
  nextAttemptAt: number;
  lastError?: string;
}

/** A message body being received: written as it arrives, flushed to disk by `finish()`. */
export interface BodyWriter {
  readonly id: string;
  write(bytes: Buffer): Promise<void>;
  /** Cuts the last `trim` octets (the end mark), fsyncs, closes; resolves the size kept. */
  finish(trim: number): Promise<number>;
  /** Drops the partial body. */
  abort(): Promise<void>;
}

/** A new queue id: sortable by time, unique without coordination (10 random bytes). */
function newId(): string {
  return `${Date.now().toString(36)}${randomBytes(5).toString('hex')}`.toUpperCase();
}

/** Ids as they appear in file names; anything else in a spool folder is not ours. */
export const ID_PATTERN = /^[0-9A-Z]{12,24}$/;

/**
 * One folder per queue under `root`, two files per message. A message exists once its `.json` does:
 * it is renamed into place after the body and itself are fsynced, and the folder is fsynced after
 * each rename or unlink, so a `250` is given only for what survives a power cut.
 */
export class Spool {
  private readonly made = new Set<string>();

  constructor(readonly root: string) {}

  dirOf(queue: string): string {
    return path.join(this.root, queue);
  }

  bodyPath(message: Pick<QueuedMessage, 'queue' | 'id'>): string {
    return path.join(this.dirOf(message.queue), `${message.id}.eml`);
  }

  private async ensureDir(queue: string): Promise<string> {
    const dir = this.dirOf(queue);
    if (!this.made.has(queue)) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      this.made.add(queue);
    }
    return dir;
  }

  /** Opens a body file in `queue` for a message being received. */
  async createBody(queue: string): Promise<BodyWriter> {
    await this.ensureDir(queue);
    const id = newId();
    const file = this.bodyPath({ queue, id });
    const handle: FileHandle = await open(file, 'wx', 0o600);
    let size = 0;
    let closed = false;
    return {
      id,
      async write(bytes) {
        await handle.write(bytes);
        size += bytes.length;
      },
      async finish(trim) {
        size -= trim;
        await handle.truncate(size);
        await handle.sync();
        await handle.close();
        closed = true;
        return size;
      },
      async abort() {
        if (!closed) await handle.close().catch(() => {});
        closed = true;
        await unlink(file).catch(() => {});
      },
    };
  }

  /** Writes the message's record (first commit or an update) atomically and durably. */
  async save(message: QueuedMessage): Promise<void> {
    const dir = await this.ensureDir(message.queue);
    const file = path.join(dir, `${message.id}.json`);
    const tmp = `${file}${TMP_SUFFIX}`;
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(message));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    await syncDir(dir);
  }

  /** Removes a message for good: its record first (so it no longer exists), then its body. */
  async remove(message: Pick<QueuedMessage, 'queue' | 'id'>): Promise<void> {
    const dir = this.dirOf(message.queue);
    await unlink(path.join(dir, `${message.id}.json`)).catch(ignoreMissing);
    await unlink(this.bodyPath(message)).catch(ignoreMissing);
    await syncDir(dir);
  }

  readBody(message: Pick<QueuedMessage, 'queue' | 'id'>): Promise<Buffer> {
    return readFile(this.bodyPath(message));
  }

  /** Queue folders present (tenants that ever had mail). */
  async queues(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory() && e.name !== CONTROL_DIR).map((e) => e.name).sort();
  }

  /**
   * Every message of `queue` (or of all queues). With `clean`, leftovers of a crash are removed:
   * bodies without a record (their client never got a 250) and half-written records.
   */
  async load(options: { queue?: string; clean?: boolean; onUnreadable?: (file: string, why: string) => void } = {}): Promise<QueuedMessage[]> {
    const out: QueuedMessage[] = [];
    for (const queue of options.queue ? [options.queue] : await this.queues()) {
      const dir = this.dirOf(queue);
      const names = await readdir(dir).catch(() => [] as string[]);
      const records = new Set(names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)));
      for (const name of names) {
        if (name.endsWith('.json')) {
          const file = path.join(dir, name);
          const text = await readFile(file, 'utf8').catch(() => undefined);
          if (text === undefined) continue; // removed meanwhile
          try {
            out.push(JSON.parse(text) as QueuedMessage);
          } catch (err) {
            // Records are renamed into place whole, so this is damage from outside: keep it for a human.
            options.onUnreadable?.(file, (err as Error).message);
          }
        } else if (options.clean && (name.endsWith(TMP_SUFFIX) || (name.endsWith('.eml') && !records.has(name.slice(0, -4))))) {
          await unlink(path.join(dir, name)).catch(ignoreMissing);
        }
      }
    }
    return out.sort((a, b) => a.receivedAt - b.receivedAt || a.id.localeCompare(b.id));
  }

  /** The message with this id, in whichever queue. */
  async find(id: string): Promise<QueuedMessage | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    for (const queue of await this.queues()) {
      const text = await readFile(path.join(this.dirOf(queue), `${id}.json`), 'utf8').catch(() => undefined);
      if (text !== undefined) return JSON.parse(text) as QueuedMessage;
    }
    return undefined;
  }
}

/** Requests to the running relay (`concierge queue flush|delete`) are files in this folder. */
export const CONTROL_DIR = '.control';

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** Per folder: the fsync running now, and the one queued behind it. */
const dirSyncs = new Map<string, { running: Promise<void>; next: Promise<void> | undefined }>();

/**
 * fsync of a folder: makes the renames and unlinks in it durable. Group commit: a caller that
 * arrives while one runs waits for the next one (which starts after its change), and every caller
 * that arrives meanwhile shares that same next one. Concurrent messages of a tenant then cost one
 * folder fsync between them, not one each.
 */
function syncDir(dir: string): Promise<void> {
  const state = dirSyncs.get(dir);
  if (!state) {
    const running = fsyncDir(dir).finally(() => advance(dir));
    dirSyncs.set(dir, { running, next: undefined });
    return running;
  }
  state.next ??= state.running.catch(() => {}).then(() => fsyncDir(dir));
  return state.next;
}

/** The running fsync is done: the queued one (if any) becomes the running one. */
function advance(dir: string): void {
  const state = dirSyncs.get(dir);
  if (!state?.next) return void dirSyncs.delete(dir);
  const running = state.next.finally(() => advance(dir));
  running.catch(() => {});
  dirSyncs.set(dir, { running, next: undefined });
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
