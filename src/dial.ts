import net from 'node:net';
import type { Backend } from './config.js';
import { BackendError } from './errors.js';
import type { ReadHook } from './read-hook.js';

/** An outstanding dial: `cancel()` destroys the half-open socket and rejects the dial. */
export interface Dial {
  readonly socket: Promise<net.Socket>;
  cancel(): void;
}

/**
 * Opens a TCP connection to one backend, bound to the tenant's source address; with a `hook`
 * its reads take the onread fast path (read-hook.ts).
 * Rejects with BackendError (BACKEND_CONNECT / BACKEND_TIMEOUT / BACKEND_CLOSED on cancel), so a
 * client that leaves during the dial leaks nothing. (A plain cancel callback rather than an
 * AbortSignal: an abort builds a DOMException, measurable at thousands of sessions a second.)
 */
export function dialBackend(backend: Backend, sourceAddress: string | undefined, connectTimeoutMs: number, hook?: ReadHook): Dial {
  let cancel = () => {};
  const socket = new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({
      host: backend.host,
      port: backend.port,
      localAddress: sourceAddress,
      allowHalfOpen: true,
      noDelay: true,
      ...(hook ? { onread: hook.onread } : {}),
    });
    let settled = false;
    const fail = (err: BackendError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      socket.destroy();
      reject(err);
    };
    const onError = (err: NodeJS.ErrnoException) =>
      fail(new BackendError('BACKEND_CONNECT', `connect to ${backend.host}:${backend.port} from ${sourceAddress ?? 'any'} failed: ${err.code ?? err.message}`, { cause: err }));
    const timer = setTimeout(
      () => fail(new BackendError('BACKEND_TIMEOUT', `connect to ${backend.host}:${backend.port} timed out after ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    cancel = () => fail(new BackendError('BACKEND_CLOSED', 'dial cancelled: the session ended'));
    socket.once('error', onError);
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      // With onread nothing reads the stream, so it must flow for 'end' to be emitted.
      if (hook) socket.resume();
      resolve(socket);
    });
  });
  return { socket, cancel: () => cancel() };
}
