import net from 'node:net';
import type { PortRange } from './config.js';

/**
 * The passive ports of one FTP listener. A port is taken by listening on it and given back when
 * that server closes, so a session that ends (whatever the path) cannot keep one. Ports are
 * tried round-robin from where the last search stopped, and one held by another process
 * (EADDRINUSE) is skipped.
 */
export class PassivePorts {
  private readonly held = new Set<number>();
  private cursor: number;

  constructor(readonly range: PortRange) {
    this.cursor = range.from;
  }

  /** Ports currently listened on (tests prove that none leak). */
  get inUse(): number {
    return this.held.size;
  }

  /**
   * Listens on `host` at a free port of the range; `server` must not be listening yet.
   * Rejects when every port of the range is taken.
   */
  async listen(server: net.Server, host: string): Promise<number> {
    const size = this.range.to - this.range.from + 1;
    for (let tried = 0; tried < size; tried++) {
      const port = this.cursor;
      this.cursor = port >= this.range.to ? this.range.from : port + 1;
      if (this.held.has(port)) continue;
      this.held.add(port);
      try {
        await listenOn(server, host, port);
        server.once('close', () => this.held.delete(port));
        return port;
      } catch (err) {
        this.held.delete(port);
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    throw new Error(`no free port in the passive range ${this.range.from}-${this.range.to}`);
  }
}

/** `server.listen` as a promise that rejects on the bind error instead of emitting it. */
export function listenOn(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
