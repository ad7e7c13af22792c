import net from 'node:net';
import tls from 'node:tls';
import type { SpliceAddon } from './data-path.js';

/** What Node keeps of a socket's libuv handle that matters here (internal, stable since Node 0.x). */
interface TcpHandle {
  readonly fd?: number;
  readonly reading?: boolean;
}

type Guarded = net.Socket & {
  _handle?: TcpHandle | null;
  _destroy(err: Error | null, cb: (err: Error | null) => void): void;
  _final(cb: (err?: Error | null) => void): void;
};

/**
 * The socket's fd when the kernel may move its bytes: a plain TCP socket (TLS needs user space),
 * open both ways, not reading (libuv must not read it while a thread does) and holding no bytes
 * in Node's buffers (they would be overtaken).
 */
export function kernelFd(socket: net.Socket): number | undefined {
  if (socket instanceof tls.TLSSocket) return undefined;
  const handle = (socket as Guarded)._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0 || handle?.reading) return undefined;
  if (socket.destroyed || socket.connecting || socket.readableEnded || socket.writableEnded) return undefined;
  if (socket.readableLength > 0 || socket.writableLength > 0) return undefined;
  return fd;
}

/**
 * Runs `before` ahead of Node closing the socket's fd (`destroy`, `resetAndDestroy`) and, with
 * `beforeShutdown`, ahead of its write side being shut down (`end`). Both go through these two
 * methods, so no way of closing the socket can reach the fd while a thread still uses it.
 */
function guard(socket: net.Socket, before: () => void, beforeShutdown: boolean): void {
  const s = socket as Guarded;
  const destroy = s._destroy;
  s._destroy = function (this: Guarded, err, cb) {
    before();
    destroy.call(this, err, cb);
  };
  if (!beforeShutdown) return;
  const final = s._final;
  s._final = function (this: Guarded, cb) {
    before();
    final.call(this, cb);
  };
}

/** How a kernel pump ended by itself: the source's EOF with every byte passed on, or an error. */
export type KernelPumpEnd = { end: 'eof' } | { end: 'error'; reason: string };

/**
 * One direction `src` → `dst` moved by the addon's thread (splice(2), no copy through user space).
 * Neither socket may be read (`src`) or written (`dst`) by Node meanwhile; `onEnd` runs once the
 * thread has exited by itself. The thread does not consume the EOF (it stays readable, and Node
 * sees it when the socket is read again) and never shuts down `dst`: that is left to the caller.
 */
export class KernelPump {
  private readonly id: number;
  private finalBytes: number | undefined;

  constructor(
    private readonly addon: SpliceAddon,
    srcFd: number,
    dstFd: number,
    src: net.Socket,
    dst: net.Socket,
    onEnd: (end: KernelPumpEnd) => void,
  ) {
    this.id = addon.start(srcFd, dstFd, (end, bytes, reason) => {
      if (this.finalBytes !== undefined) return;
      this.finalBytes = bytes;
      onEnd(end === 'eof' ? { end } : { end: 'error', reason: reason || end });
    });
    guard(src, () => this.stop(), false);
    guard(dst, () => this.stop(), true);
  }

  /** Whether the thread is still moving bytes. */
  get running(): boolean {
    return this.finalBytes === undefined;
  }

  /** Bytes written to `dst` so far. */
  get bytes(): number {
    return this.finalBytes ?? this.addon.progress(this.id);
  }

  /** Ends the thread and waits for it (it blocks only in poll, which this wakes); then the fds are Node's again. */
  stop(): void {
    if (this.finalBytes !== undefined) return;
    this.finalBytes = this.addon.stop(this.id);
  }
}
