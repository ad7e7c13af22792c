import type { Socket } from 'node:net';
import { parseProxyHeader, type ProxyHeader } from './proxy-protocol.js';

/** Why a trusted peer's connection was closed before any session: the log line and the metric. */
export class ProxyHeaderError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'ProxyHeaderError';
  }
}

/**
 * Reads the PROXY header a trusted balancer sends first, however it is split across TCP
 * segments. Bytes after the header are put back on the socket (paused) for the session.
 * Rejects with ProxyHeaderError on a malformed header, a close before it is complete, or
 * `timeoutMs` without one; the caller destroys the socket.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const done = (err: ProxyHeaderError | undefined, header?: ProxyHeader, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      socket.pause();
      if (err) return reject(err);
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(header!);
    };
    const onData = (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const result = parseProxyHeader(received);
      if (result.status === 'incomplete') return;
      if (result.status === 'invalid') return done(new ProxyHeaderError(`malformed PROXY header: ${result.reason}`));
      done(undefined, result.header, received.subarray(result.header.length));
    };
    const onEnd = () => done(new ProxyHeaderError(received.length === 0 ? 'closed before a PROXY header' : 'closed inside the PROXY header'));
    const onError = (err: NodeJS.ErrnoException) => done(new ProxyHeaderError(`socket error before the PROXY header: ${err.code ?? err.message}`));
    const timer = setTimeout(() => done(new ProxyHeaderError(`no PROXY header within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}
