import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';

/** A plain TCP client for exact protocol checks: send bytes, read CRLF lines, see the close. */
export class RawClient {
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async connect(port: number, options: { host?: string; localAddress?: string } = {}): Promise<RawClient> {
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port, localAddress: options.localAddress });
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /** A client over a socket connected elsewhere (e.g. TLS after a PROXY header). */
  static wrap(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  /** Connects with TLS from the first byte (implicit TLS). */
  static async connectTls(port: number, options: tls.ConnectionOptions & { localAddress?: string } = {}): Promise<RawClient> {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    await once(socket, 'secureConnect');
    return new RawClient(socket);
  }

  /**
   * Upgrades this connection (after STLS / STARTTLS / AUTH TLS was answered): the returned client
   * reads and writes through TLS; this one must not be used any more.
   */
  async startTls(options: tls.ConnectionOptions = {}): Promise<RawClient> {
    if (this.buffer.length > 0) throw new Error(`bytes before the handshake: ${JSON.stringify(this.buffer.toString('latin1'))}`);
    this.socket.removeAllListeners('data');
    const socket = tls.connect({ ...options, socket: this.socket });
    await once(socket, 'secureConnect');
    return new RawClient(socket);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next line without its CRLF; rejects if the server closes first. */
  async line(): Promise<string> {
    for (;;) {
      const lf = this.buffer.indexOf(0x0a);
      if (lf >= 0) {
        const line = this.buffer.subarray(0, lf).toString('latin1').replace(/\r$/, '');
        this.buffer = this.buffer.subarray(lf + 1);
        return line;
      }
      if (this.ended) throw new Error(`connection closed (unread: ${JSON.stringify(this.buffer.toString('latin1'))})`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Sends a command and returns the one-line reply. */
  async command(line: string): Promise<string> {
    this.send(`${line}\r\n`);
    return this.line();
  }

  /** Lines of a multi-line POP3 reply after its status line, up to the lone ".". */
  async multiline(): Promise<string[]> {
    const lines: string[] = [];
    for (let l = await this.line(); l !== '.'; l = await this.line()) lines.push(l);
    return lines;
  }

  /** Everything the server sends until it closes the connection. */
  async rest(): Promise<Buffer> {
    await this.closed;
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  close(): void {
    this.socket.destroy();
  }
}
