import type { Socket } from 'node:net';

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
export function splice(client: Socket, backend: Socket): Promise<SpliceResult> {
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
    backend.pipe(client);
  });
}
