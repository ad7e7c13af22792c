import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import tls from 'node:tls';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** Implicit TLS (POP3S): the client's options (CA, server name); plain TCP when absent. */
  readonly tls?: tls.ConnectionOptions;
}

export const show = (e: Endpoint) => `${e.tls ? 'pop3s://' : ''}${e.host}:${e.port}`;

/**
 * A client socket to `target`: plain TCP, or TLS from the first byte. Without `session` a TLS
 * connection is a full handshake (the costly case, and what a client that opens a fresh process
 * per mail check does); with one, the client offers that session for resumption.
 */
export function connectTo(target: Endpoint, session?: Buffer): net.Socket {
  if (target.tls) return tls.connect({ ...target.tls, host: target.host, port: target.port, ...(session ? { session } : {}) }).setNoDelay(true);
  return net.connect({ host: target.host, port: target.port, noDelay: true });
}

/** A port that was free a moment ago (bind 0, read, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One connect: true once a "+OK" greeting arrives (then QUIT), else the reason. */
function probe(target: Endpoint, timeoutMs: number): Promise<true | Error> {
  return new Promise((resolve) => {
    const socket = connectTo(target);
    let text = '';
    const fail = (err: Error) => {
      socket.destroy();
      resolve(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error('greeting timed out')));
    socket.on('error', fail);
    socket.on('close', () => resolve(new Error('closed before a greeting')));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end < 0) return;
      if (!text.startsWith('+OK')) return fail(new Error(`unexpected greeting ${JSON.stringify(text.slice(0, end))}`));
      socket.setTimeout(0);
      socket.end('QUIT\r\n');
      socket.resume();
      resolve(true);
    });
  });
}

/** Retries until the POP3 server at `target` greets with +OK, or `gone` says it died. */
export async function waitForGreeting(target: Endpoint, timeoutMs: number, gone?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const outcome = await probe(target, 2_000);
    if (outcome === true) return;
    if (gone?.()) throw new Error(`the process behind ${show(target)} exited: ${outcome.message}`);
    if (Date.now() >= deadline) throw new Error(`no POP3 greeting on ${show(target)} within ${timeoutMs} ms: ${outcome.message}`);
    await delay(Math.min(5 * 2 ** attempt, 100));
  }
}
