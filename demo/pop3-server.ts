/**
 * A small POP3 backend over a directory of Maildirs: the tenants' mail servers in the
 * embedded demo and in the test suite. It records every connection so that tests can check,
 * from the backend's side, which source address the proxy dialled from.
 */
import { EventEmitter, once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { MaildirStore } from './maildir.js';
import { Pop3Session, type ConnectionRecord, type SessionServices } from './pop3-session.js';

export type { ConnectionRecord } from './pop3-session.js';

/** How to start a `DemoPop3Server`. */
export interface DemoPop3ServerOptions {
  /** Directory holding `passwd` and one Maildir per user. */
  maildir: string;
  host?: string;
  port?: number;
  /** When true (the default) DELE lasts for the session only and QUIT removes nothing. */
  readOnly?: boolean;
  greeting?: string;
  /** POP3S: TLS from the first byte with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}

/** Events of a `DemoPop3Server`; each carries the (live) record of the connection. */
export interface DemoPop3ServerEvents {
  connection: [record: ConnectionRecord];
  login: [record: ConnectionRecord];
  disconnect: [record: ConnectionRecord];
}

/** The demo POP3 backend: RFC 1939 with USER/PASS, SASL PLAIN, TOP, UIDL and CAPA. */
export class DemoPop3Server extends EventEmitter<DemoPop3ServerEvents> {
  /** Every connection accepted so far, in order, updated in place on login. */
  readonly connections: ConnectionRecord[] = [];

  private readonly host: string;
  private readonly requestedPort: number;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly rawSockets = new Set<Socket>();
  private readonly lockedMaildrops = new Set<string>();
  private readonly services: SessionServices;

  constructor(options: DemoPop3ServerOptions) {
    super();
    this.host = options.host ?? '127.0.0.1';
    this.requestedPort = options.port ?? 0;
    this.services = {
      store: new MaildirStore(options.maildir),
      readOnly: options.readOnly ?? true,
      greeting: options.greeting ?? 'Demo POP3 server ready',
      lockMaildrop: (user) => this.lockMaildrop(user),
      unlockMaildrop: (user) => {
        this.lockedMaildrops.delete(user);
      },
      onLogin: (record) => this.emit('login', record),
    };
    // Half-open sockets let a scripted client send everything, close its side, and still
    // read every reply; the session closes ours once it has answered.
    const { tls } = options;
    this.server = tls
      ? createTlsServer({ allowHalfOpen: true, cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (socket) => this.accept(socket))
      : createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    // A TLS client that gives up mid-handshake leaves a half-open TCP socket that never becomes a
    // session: these are tracked from 'connection' on, so close() can end them too.
    this.server.on('connection', (raw: Socket) => {
      this.rawSockets.add(raw);
      raw.once('close', () => this.rawSockets.delete(raw));
    });
    // Accept failures (EMFILE and the like) must not become an unhandled 'error'.
    this.server.on('error', () => {});
  }

  /** The bound port once listening, the requested one before. */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.requestedPort;
  }

  /** Connections accepted and not yet closed. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Starts listening; resolves with the bound address and port. */
  async listen(): Promise<{ address: string; port: number }> {
    const listening = once(this.server, 'listening');
    this.server.listen(this.requestedPort, this.host);
    await listening;
    const address = this.server.address();
    if (typeof address !== 'object' || address === null) throw new Error('server is not bound to a TCP address');
    return { address: address.address, port: address.port };
  }

  /** Stops listening and destroys every open connection; resolves once all are closed. */
  async close(): Promise<void> {
    const closed = [...this.sockets].map((socket) => new Promise((resolve) => socket.once('close', resolve)));
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    for (const socket of this.rawSockets) socket.destroy();
    await Promise.all([stopped, ...closed]);
  }

  private lockMaildrop(user: string): boolean {
    if (this.lockedMaildrops.has(user)) return false;
    this.lockedMaildrops.add(user);
    return true;
  }

  private accept(socket: Socket): void {
    // First, so that nothing the client does can raise an unhandled 'error'.
    socket.on('error', () => {});
    const record: ConnectionRecord = {
      remoteAddress: unmapIPv4(socket.remoteAddress ?? ''),
      remotePort: socket.remotePort ?? 0,
      localAddress: unmapIPv4(socket.localAddress ?? ''),
      authenticated: false,
    };
    this.sockets.add(socket);
    this.connections.push(record);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.emit('disconnect', record);
    });
    this.emit('connection', record);
    new Pop3Session(socket, record, this.services);
  }
}

/** "::ffff:127.0.0.2" on a dual-stack listener is the IPv4 client 127.0.0.2. */
function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
