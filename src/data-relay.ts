import net from 'node:net';
import type { ReadHook } from './read-hook.js';
import { pumpHooked } from './splice.js';

/** Dials a data connection, paused until relayed; reads go through `hook` (Node's onread fast path) when given. */
export function dialData(host: string, port: number, localAddress: string | undefined, hook: ReadHook | undefined): net.Socket {
  const socket = net.connect({ host, port, localAddress, allowHalfOpen: true, noDelay: true, ...(hook ? { onread: hook.onread } : {}) } as net.NetConnectOpts);
  socket.pause();
  return socket;
}

/**
 * Resets a socket (RST), or destroys it when its write side is already shut down: libuv refuses a
 * reset after a shutdown, and Node then never emits 'close' for that socket.
 */
export function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded || socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}

/** One side of a relay: the socket, and the read hook when Concierge dialled it. */
export interface RelayEnd {
  readonly socket: net.Socket;
  readonly hook?: ReadHook;
  /** FTPS: the TCP socket under `socket` (a TLS socket), the one a reset goes to. */
  readonly raw?: net.Socket;
}

/**
 * Resets one side of a relay. A TLS socket's handle cannot be reset, its TCP socket can; once
 * the TLS side has sent its close_notify (shut down), it is destroyed instead, as resetSocket does.
 */
export function resetEnd(end: RelayEnd): void {
  if (!end.raw) return resetSocket(end.socket);
  if (end.socket.writableEnded) {
    end.socket.destroy();
    end.raw.destroy();
  } else resetSocket(end.raw);
}

/** How the backend-to-client direction ended: its EOF reached the client and was flushed, or not. */
export type RelayOutcome = 'complete' | 'failed';

/**
 * Pumps one direction until EOF, then ends `dst` (half-close passed on). With a read hook (a
 * socket Concierge dialled) each chunk is written as read, and reading stops while `dst` still
 * holds unsent bytes, so the hook may read into the same buffers again.
 */
function pump(src: RelayEnd, dst: net.Socket): void {
  const { socket } = src;
  if (src.hook) return pumpHooked(socket, src.hook, dst);
  socket.on('data', (chunk: Buffer) => {
    if (!dst.write(chunk)) socket.pause();
  });
  dst.on('drain', () => socket.resume());
  socket.once('end', () => dst.end());
  socket.resume();
}

/**
 * Relays a data connection both ways until both directions have ended. Resolves 'complete' once
 * the backend's EOF has been passed to the client and the client side is flushed and ended, the
 * moment a transfer-complete reply may be forwarded; 'failed' when either side errs, resets or
 * idles past `idleMs` first (both are then destroyed).
 */
export function relayData(client: RelayEnd, backend: RelayEnd, idleMs: number): Promise<RelayOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: RelayOutcome) => {
      if (settled) return;
      settled = true;
      // From here on the link decides how long the sockets may linger; a late reset could cost the client its last bytes.
      for (const { socket } of [client, backend]) socket.off('timeout', fail);
      resolve(outcome);
    };
    // A reset, not a FIN: a FIN would tell the far side its file ended well (stream mode has no other EOF).
    const fail = () => {
      resetEnd(client);
      resetEnd(backend);
      settle('failed');
    };
    let backendEnded = false;
    backend.socket.once('end', () => (backendEnded = true));
    client.socket.once('finish', () => {
      if (backendEnded) settle('complete');
    });
    for (const { socket } of [client, backend]) {
      socket.on('error', fail);
      socket.setTimeout(idleMs, fail);
    }
    // The backend may close as soon as its EOF is read; the client side settles the outcome.
    backend.socket.once('close', () => {
      if (!backendEnded) fail();
    });
    client.socket.once('close', () => {
      if (backendEnded && client.socket.writableFinished) settle('complete');
      else fail();
    });
    pump(backend, client.socket);
    pump(client, backend.socket);
  });
}
