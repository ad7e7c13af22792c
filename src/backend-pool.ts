import type { Socket } from 'node:net';
import type { Backend } from './config.js';
import type { LineChannel } from './line-channel.js';
import { closePolitely } from './polite-close.js';

/** How a listener keeps backend connections between client sessions (SMTP mx `backendPool`). */
export interface PoolSettings {
  /** Idle connections kept per tenant and backend; 0 turns pooling off. */
  readonly maxIdle: number;
  /** An idle connection older than this is closed (QUIT), well before a backend's own idle timeout. */
  readonly idleTimeoutMs: number;
  /** Client sessions one backend connection serves before it is closed instead of kept. */
  readonly maxReuses: number;
}

export const DEFAULT_POOL: PoolSettings = { maxIdle: 32, idleTimeoutMs: 5_000, maxReuses: 100 };

/** A backend connection between two client sessions: greeted, introduced, no transaction open. */
export interface Parked {
  /** The socket lines are written to: the TLS socket over `raw` for a TLS backend. */
  readonly socket: Socket;
  /** The TCP connection, whose close ends a session's hold on it. */
  readonly raw: Socket;
  readonly channel: LineChannel;
  /** The configured backend it was dialled for: a reload that replaces it makes the connection unusable. */
  readonly backend: Backend;
  readonly sourceAddress: string | undefined;
  readonly tenant: string;
  /** What the module learnt in its handshake (SMTP: the EHLO extensions); it holds for every reuse. */
  readonly result: unknown;
  /** The line that ends the protocol session politely ("QUIT"). */
  readonly goodbye: string;
}

/** A parked connection while in the pool: when it came, how often it has served, and its close listener. */
class Entry {
  readonly since = Date.now();
  readonly onClose: () => void;

  constructor(
    readonly parked: Parked,
    readonly uses: number,
    pool: BackendPool,
    key: string,
  ) {
    this.onClose = () => pool.remove(key, this);
  }
}

/**
 * Idle backend connections of one listener, per tenant and backend, newest first. A connection
 * is only ever handed to a session of the tenant it was dialled for, from the tenant's own source
 * address, so reuse changes nothing a backend can see except that fewer connections arrive.
 * A connection the backend closed, or that received anything while idle, is never handed out.
 */
export class BackendPool {
  private readonly idle = new Map<string, Entry[]>();
  private sweeper: NodeJS.Timeout | undefined;
  private count = 0;

  constructor(readonly settings: PoolSettings) {}

  /** Idle connections held. */
  get size(): number {
    return this.count;
  }

  /** Keeps `parked` for a later session of its tenant, or closes it politely (pool full, worn out, unhealthy). */
  put(parked: Parked, uses: number): void {
    const key = keyOf(parked.tenant, parked.backend, parked.sourceAddress);
    const list = this.idle.get(key) ?? [];
    if (uses >= this.settings.maxReuses || list.length >= this.settings.maxIdle || !usable(parked)) return this.retire(parked);
    const entry = new Entry(parked, uses, this, key);
    parked.socket.on('close', entry.onClose);
    list.push(entry);
    this.idle.set(key, list);
    this.count++;
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(100, Math.min(1_000, this.settings.idleTimeoutMs / 2))).unref();
  }

  /** The newest healthy idle connection to `backend` for `tenant`, now the caller's, with its use count. */
  take(tenant: string, backend: Backend, sourceAddress: string | undefined): { parked: Parked; uses: number } | undefined {
    const key = keyOf(tenant, backend, sourceAddress);
    const list = this.idle.get(key);
    for (let entry = list?.pop(); entry; entry = list?.pop()) {
      this.count--;
      const { parked } = entry;
      parked.socket.off('close', entry.onClose);
      if (parked.backend === backend && usable(parked)) {
        if (list!.length === 0) this.idle.delete(key);
        return { parked, uses: entry.uses };
      }
      this.retire(parked);
    }
    this.idle.delete(key);
    return undefined;
  }

  /** Closes every idle connection (reload: backends may have changed; shutdown). */
  drain(): void {
    for (const [key, list] of this.idle) {
      this.idle.delete(key);
      for (const entry of list) {
        entry.parked.socket.off('close', entry.onClose);
        this.retire(entry.parked);
      }
    }
    this.count = 0;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private sweep(): void {
    const oldest = Date.now() - this.settings.idleTimeoutMs;
    for (const [key, list] of this.idle) {
      // Newest last: the expired ones are at the front.
      let expired = 0;
      while (expired < list.length && list[expired]!.since <= oldest) expired++;
      for (const entry of list.splice(0, expired)) {
        entry.parked.socket.off('close', entry.onClose);
        this.count--;
        this.retire(entry.parked);
      }
      if (list.length === 0) this.idle.delete(key);
    }
    if (this.count === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** A parked connection closed by its backend leaves the pool. */
  remove(key: string, entry: Entry): void {
    const list = this.idle.get(key);
    const at = list?.indexOf(entry) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    this.count--;
    if (list!.length === 0) this.idle.delete(key);
  }

  private retire(parked: Parked): void {
    closePolitely(parked.socket, parked.goodbye);
  }
}

function keyOf(tenant: string, backend: Backend, sourceAddress: string | undefined): string {
  return `${tenant}\n${sourceAddress ?? ''}\n${backend.host}\n${backend.port}`;
}

/** Open both ways, and silent since it was parked: anything the backend said meanwhile (a 421) means it is leaving. */
function usable(parked: Parked): boolean {
  const { socket, channel } = parked;
  return !socket.destroyed && socket.writable && socket.readable && channel.open && channel.buffered === 0;
}
