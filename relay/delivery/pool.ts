import type { SenderIdentity } from '../senders.js';
import type { Destination } from './destinations.js';
import { type ClientTimeouts, OutboundConnection } from './smtp-client.js';

export interface PoolLimits extends ClientTimeouts {
  readonly connectionIdleMs: number;
  readonly maxMessagesPerConnection: number;
  readonly maxConnectionsPerDestination: number;
}

interface Idle {
  readonly connection: OutboundConnection;
  readonly timer: NodeJS.Timeout;
}

/**
 * Delivery connections, reused per (source address, EHLO name, server): a connection carries
 * only one sender identity, so one tenant's mail never leaves on another's connection. At most
 * `maxConnectionsPerDestination` are open (busy or idle) to one server; further callers wait.
 */
export class ConnectionPool {
  private readonly idle = new Map<string, Idle[]>();
  /** Open connections (busy + idle) per server. */
  private readonly open = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();
  private readonly busy = new Set<OutboundConnection>();
  /** Connections being opened (dial, greeting, EHLO, TLS): how to cut each. */
  private readonly opening = new Set<() => void>();
  private closed = false;

  constructor(private readonly limits: PoolLimits) {}

  /** An idle connection of this identity to this server, or a new one once the server has room. */
  async acquire(destination: Destination, identity: SenderIdentity): Promise<OutboundConnection> {
    const server = `${destination.host}:${destination.port}`;
    const key = `${identity.sourceAddress ?? '*'}|${identity.heloName}|${server}`;
    for (;;) {
      if (this.closed) throw new Error('relay is stopping');
      const list = this.idle.get(key);
      while (list && list.length > 0) {
        const { connection, timer } = list.pop()!;
        clearTimeout(timer);
        if (!connection.closed && connection.usable) {
          this.busy.add(connection);
          return connection;
        }
        this.forget(server);
      }
      const count = this.open.get(server) ?? 0;
      if (count < this.limits.maxConnectionsPerDestination) {
        this.open.set(server, count + 1);
        try {
          const connection = await OutboundConnection.open(destination, identity, this.limits, (abort) => {
            this.opening.add(abort);
            return () => this.opening.delete(abort);
          });
          this.busy.add(connection);
          return connection;
        } catch (err) {
          this.forget(server);
          throw err;
        }
      }
      // Full: an idle connection of another identity gives its place up; else wait for a release.
      if (!this.evictIdle(server)) await new Promise<void>((resolve) => this.waiters(server).push(resolve));
    }
  }

  /** Gives a connection back after a transaction: kept idle for reuse, or closed. */
  release(connection: OutboundConnection): void {
    const server = connection.name;
    this.busy.delete(connection);
    if (this.closed || !connection.usable || connection.closed || connection.messagesSent >= this.limits.maxMessagesPerConnection) {
      connection.quit();
      this.forget(server);
      return;
    }
    const key = `${connection.identity.sourceAddress ?? '*'}|${connection.identity.heloName}|${server}`;
    const timer = setTimeout(() => {
      const list = this.idle.get(key) ?? [];
      const i = list.findIndex((e) => e.connection === connection);
      if (i >= 0) list.splice(i, 1);
      connection.quit();
      this.forget(server);
    }, this.limits.connectionIdleMs);
    timer.unref();
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    list.push({ connection, timer });
    this.wakeOne(server);
  }

  /** A connection that broke (already destroyed) gives its place back. */
  discard(connection: OutboundConnection): void {
    this.busy.delete(connection);
    connection.destroy();
    this.forget(connection.name);
  }

  private evictIdle(server: string): boolean {
    for (const [key, list] of this.idle) {
      if (!key.endsWith(`|${server}`) || list.length === 0) continue;
      const { connection, timer } = list.shift()!;
      clearTimeout(timer);
      connection.quit();
      this.forget(server);
      return true;
    }
    return false;
  }

  private forget(server: string): void {
    const count = (this.open.get(server) ?? 1) - 1;
    if (count <= 0) this.open.delete(server);
    else this.open.set(server, count);
    this.wakeOne(server);
  }

  private waiters(server: string): Array<() => void> {
    let list = this.waiting.get(server);
    if (!list) this.waiting.set(server, (list = []));
    return list;
  }

  private wakeOne(server: string): void {
    this.waiting.get(server)?.shift()?.();
  }

  /** Says QUIT on every idle connection, cuts busy ones (their messages stay queued), refuses new ones. */
  close(): void {
    this.closed = true;
    for (const abort of [...this.opening]) abort();
    for (const connection of this.busy) connection.destroy();
    for (const list of this.idle.values()) {
      for (const { connection, timer } of list) {
        clearTimeout(timer);
        connection.quit();
      }
    }
    this.idle.clear();
    for (const list of this.waiting.values()) for (const wake of list) wake();
    this.waiting.clear();
  }
}
