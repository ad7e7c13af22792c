import net from 'node:net';
import type { SpliceAddon } from './data-path.js';
import { KernelPump, kernelFd, type KernelPumpEnd } from './kernel-pump.js';
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

/** Bytes the addon moved for one relay: up is client → backend, down is backend → client. */
export interface KernelBytes {
  readonly up: number;
  readonly down: number;
}

/** How a relay may move its bytes: with the addon (both sockets plain TCP), and what to tell. */
export interface RelayKernel {
  readonly addon: SpliceAddon;
  /** Called at once with the relay's live kernel byte counts, when the addon takes the relay. */
  onStart(bytes: KernelBytes): void;
  /** A kernel pump's error, before the relay fails. */
  onError(direction: 'up' | 'down', reason: string): void;
}

/**
 * Relays a data connection both ways until both directions have ended. Resolves 'complete' once
 * the backend's EOF has been passed to the client and the client side is flushed and ended, the
 * moment a transfer-complete reply may be forwarded; 'failed' when either side errs, resets or
 * idles past `idleMs` first (both are then destroyed).
 *
 * With `kernel`, and both sockets plain TCP with nothing buffered, each direction is first moved
 * by a kernel pump (splice(2) on a thread); at the source's EOF the direction is handed back to
 * the JavaScript pump, which reads that EOF from the socket and ends the other side, so the
 * half-close and `complete` come about exactly as without it.
 */
export function relayData(client: RelayEnd, backend: RelayEnd, idleMs: number, kernel?: RelayKernel): Promise<RelayOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let pumps: KernelPump[] = [];
    const settle = (outcome: RelayOutcome) => {
      if (settled) return;
      settled = true;
      // From here on the link decides how long the sockets may linger; a late reset could cost the client its last bytes.
      for (const [socket, onIdle] of idlers) socket.off('timeout', onIdle);
      resolve(outcome);
    };
    // A reset, not a FIN: a FIN would tell the far side its file ended well (stream mode has no other EOF).
    const fail = () => {
      resetEnd(client);
      resetEnd(backend);
      settle('failed');
    };
    // Node sees no traffic on sockets a kernel pump serves: idle then means no byte moved since the socket's last timeout.
    const idler = (socket: net.Socket) => {
      let lastMoved = -1;
      const onIdle = () => {
        const moved = pumps.reduce((sum, p) => sum + (p.running ? p.bytes + 1 : 0), 0);
        if (moved === 0 || moved === lastMoved) return fail();
        lastMoved = moved;
        socket.setTimeout(idleMs, onIdle);
      };
      return [socket, onIdle] as const;
    };
    const idlers = [idler(client.socket), idler(backend.socket)];
    let backendEnded = false;
    backend.socket.once('end', () => (backendEnded = true));
    client.socket.once('finish', () => {
      if (backendEnded) settle('complete');
    });
    for (const [socket, onIdle] of idlers) {
      socket.on('error', fail);
      socket.setTimeout(idleMs, onIdle);
    }
    // The backend may close as soon as its EOF is read; the client side settles the outcome.
    backend.socket.once('close', () => {
      if (!backendEnded) fail();
    });
    client.socket.once('close', () => {
      if (backendEnded && client.socket.writableFinished) settle('complete');
      else fail();
    });
    pumps = kernel ? startKernelPumps(client, backend, kernel, fail) : [];
    if (pumps.length === 0 && !settled) {
      pump(backend, client.socket);
      pump(client, backend.socket);
    }
  });
}

/** Both directions on kernel pumps; none (returns []) when either socket is not fit for them, or the addon failed (the relay has failed then). */
function startKernelPumps(client: RelayEnd, backend: RelayEnd, kernel: RelayKernel, fail: () => void): KernelPump[] {
  const clientFd = kernelFd(client.socket);
  const backendFd = kernelFd(backend.socket);
  if (clientFd === undefined || backendFd === undefined || client.hook?.holding || backend.hook?.holding) return [];
  const handBack = (direction: 'up' | 'down', src: RelayEnd, dst: net.Socket) => (result: KernelPumpEnd) => {
    if (result.end === 'eof') return pump(src, dst);
    kernel.onError(direction, result.reason);
    fail();
  };
  let down: KernelPump | undefined;
  let up: KernelPump;
  try {
    down = new KernelPump(kernel.addon, backendFd, clientFd, backend.socket, client.socket, handBack('down', backend, client.socket));
    up = new KernelPump(kernel.addon, clientFd, backendFd, client.socket, backend.socket, handBack('up', client, backend.socket));
  } catch (err) {
    // No fd or thread to spare. A started pump may hold bytes in its pipe, so the JS relay cannot take over: fail.
    down?.stop();
    kernel.onError(down ? 'up' : 'down', (err as Error).message);
    fail();
    return [];
  }
  kernel.onStart({
    get up() {
      return up.bytes;
    },
    get down() {
      return down.bytes;
    },
  });
  return [down, up];
}
