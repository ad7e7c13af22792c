import net from 'node:net';
import type { Backend } from './config.js';
import { BackendError } from './errors.js';

/**
 * Opens a TCP connection to one backend, bound to the tenant's source address.
 * Rejects with BackendError (BACKEND_CONNECT / BACKEND_TIMEOUT); an abort destroys the
 * half-open socket so a client that leaves during the dial leaks nothing.
 */
export function dialBackend(
  backend: Backend,
  sourceAddress: string | undefined,
  connectTimeoutMs: number,
  signal?: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: backend.host,
      port: backend.port,
      localAddress: sourceAddress,
      allowHalfOpen: true,
      noDelay: true,
    });
    const fail = (err: BackendError) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onError = (err: NodeJS.ErrnoException) =>
      fail(new BackendError('BACKEND_CONNECT', `connect to ${backend.host}:${backend.port} from ${sourceAddress ?? 'any'} failed: ${err.code ?? err.message}`, { cause: err }));
    const onAbort = () => fail(new BackendError('BACKEND_CLOSED', 'dial aborted: the session ended'));
    const timer = setTimeout(
      () => fail(new BackendError('BACKEND_TIMEOUT', `connect to ${backend.host}:${backend.port} timed out after ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      cleanup();
      resolve(socket);
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}
