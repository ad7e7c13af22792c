import type { Socket } from 'node:net';
import type { ReadHook } from './read-hook.js';

/** Which side ended a splice first: its FIN, or an error (which destroyed both sockets). */
export type SpliceEnd = 'client' | 'backend' | 'client error' | 'backend error';

/** A running splice: who ended it, once someone has. The caller watches the sockets' 'close'. */
export interface Splice {
  endedBy: SpliceEnd | undefined;
}

/**
 * Relays two sockets until both directions have ended (half-close is passed on: a FIN from one
 * side becomes a FIN to the other). An error on either side destroys both.
 *
 * Built for many idle sessions (bench/idle-sessions.ts): no `pipe()` (its state is a dozen
 * closures and listeners on both sockets), no `once()` (each is a wrapper object and a bound
 * function), no Promise held for the session's life; one listener per event, sharing one scope.
 * The caller learns the end from the sockets' own 'close' events, which it listens to anyway.
 */
export function splice(client: Socket, backend: Socket, backendHook?: ReadHook): Splice {
  const state: Splice = { endedBy: undefined };
  client.on('end', () => {
    state.endedBy ??= 'client';
    backend.end();
  });
  backend.on('end', () => {
    state.endedBy ??= 'backend';
    client.end();
  });
  client.on('error', () => {
    state.endedBy ??= 'client error';
    client.destroy();
    backend.destroy();
  });
  backend.on('error', () => {
    state.endedBy ??= 'backend error';
    client.destroy();
    backend.destroy();
  });
  pumpData(client, backend);
  if (backendHook) relayHooked(backend, backendHook, client);
  else pumpData(backend, client);
  return state;
}

/**
 * `src` → `dst` by 'data' events: each chunk is written as it came; `src` pauses while `dst`'s
 * buffer is over its mark and resumes at 'drain'. (The end is the caller's to pass on.)
 */
function pumpData(src: Socket, dst: Socket): void {
  src.on('data', (chunk: Buffer) => {
    if (dst.destroyed || dst.write(chunk)) return;
    src.pause();
    dst.once('drain', () => src.resume());
  });
  src.resume();
}

/**
 * `src` → `dst` for a socket read through a ReadHook: each chunk is written as it came, and
 * reading stops while `dst` still holds unsent bytes, resuming once they are flushed.
 */
export function pumpHooked(src: Socket, hook: ReadHook, dst: Socket): void {
  relayHooked(src, hook, dst);
  src.once('end', () => dst.end());
}

function relayHooked(src: Socket, hook: ReadHook, dst: Socket): void {
  let stalled = false;
  // Made at the first chunk: an idle session relays none.
  let flushed: (() => void) | undefined;
  hook.attachRelay((chunk) => {
    if (dst.destroyed) return false;
    dst.write(
      chunk,
      (flushed ??= () => {
        if (stalled && dst.writableLength === 0) {
          stalled = false;
          src.resume();
        }
      }),
    );
    if (dst.writableLength === 0) return true;
    stalled = true;
    return false;
  });
  src.resume();
}
