import type { Socket } from 'node:net';
import type { ReadHook } from './read-hook.js';

/** How a spliced session ended, with the bytes that crossed it after the login. */
export interface SpliceResult {
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly endedBy: 'client' | 'backend' | 'client error' | 'backend error';
}

/**
 * Pipes two sockets together until both directions have ended (half-close is passed on:
 * a FIN from one side becomes a FIN to the other). An error on either side destroys both.
 * Byte counts come from the sockets' own counters, so the data path has no per-chunk work.
 */
export function splice(client: Socket, backend: Socket, backendHook?: ReadHook): Promise<SpliceResult> {
  const upBase = client.bytesRead;
  const downBase = backend.bytesRead;
  return new Promise((resolve) => {
    let endedBy: SpliceResult['endedBy'] | undefined;
    let open = 2;
    const onClose = () => {
      if (--open > 0) return;
      resolve({ bytesUp: client.bytesRead - upBase, bytesDown: backend.bytesRead - downBase, endedBy: endedBy ?? 'client' });
    };
    const onError = (side: 'client error' | 'backend error') => () => {
      endedBy ??= side;
      client.destroy();
      backend.destroy();
    };
    client.once('end', () => (endedBy ??= 'client'));
    backend.once('end', () => (endedBy ??= 'backend'));
    client.on('error', onError('client error'));
    backend.on('error', onError('backend error'));
    client.once('close', onClose);
    backend.once('close', onClose);
    client.pipe(backend);
    if (backendHook) pumpHooked(backend, backendHook, client);
    else backend.pipe(client);
  });
}

/**
 * `src` → `dst` for a socket read through a ReadHook: each chunk is written as it came, and
 * reading stops while `dst` still holds unsent bytes, resuming once they are flushed.
 */
export function pumpHooked(src: Socket, hook: ReadHook, dst: Socket): void {
  let stalled = false;
  const flushed = () => {
    if (stalled && dst.writableLength === 0) {
      stalled = false;
      src.resume();
    }
  };
  hook.attachRelay((chunk) => {
    if (dst.destroyed) return false;
    dst.write(chunk, flushed);
    if (dst.writableLength === 0) return true;
    stalled = true;
    return false;
  });
  src.once('end', () => dst.end());
  src.resume();
}
