import type { Socket } from 'node:net';

/** After a goodbye, how long a peer may take to close before its socket is destroyed. */
export const GOODBYE_LINGER_MS = 2_000;

/**
 * Ends a backend connection after what was written to it, and `goodbye` (its QUIT) if given, letting the backend close
 * first: the TIME_WAIT then stays on its side. Ours would pile up on the tenant's source address,
 * and each later bind from it gets slower (measured: 657 → 1658 µs per SMTP session over three
 * back-to-back runs when we closed first). The linger caps a backend that never closes.
 */
export function closePolitely(socket: Socket, goodbye?: string): void {
  if (socket.destroyed) return;
  if (goodbye !== undefined && socket.writable) socket.write(`${goodbye}\r\n`, 'latin1');
  socket.once('end', () => socket.end());
  socket.resume(); // drain the goodbye reply so the backend's FIN is seen
  const linger = setTimeout(() => socket.destroy(), GOODBYE_LINGER_MS);
  socket.once('close', () => clearTimeout(linger));
}
