import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

/** What one backend connection looked like from the backend's side. */
export interface SeenSession {
  /** smtp-server's id of the connection: messages with the same id came over one connection. */
  readonly id: string;
  readonly remoteAddress: string;
  /** The remote address before XCLIENT replaced it (the TCP peer). */
  readonly tcpAddress: string;
  readonly helo: string;
  readonly xclient: Record<string, string>;
  readonly user: string | undefined;
  /** The connection was encrypted (implicit TLS or STARTTLS) when the message or AUTH came. */
  readonly secure: boolean;
}

/** One message as delivered: envelope, byte count and SHA-256 of the (un-dot-stuffed) body. */
export interface Delivered {
  readonly from: string;
  readonly to: string[];
  readonly size: number;
  readonly sha256: string;
  readonly session: SeenSession;
  /** MAIL carried SMTPUTF8 (RFC 6531). */
  readonly smtpUtf8: boolean;
  /** RFC 3461 parameters as received (only when the backend offers DSN). */
  readonly dsn: { ret?: string; envid?: string; rcpt: Array<{ notify?: string[]; orcpt?: string }> } | undefined;
}

/** An smtp-server for one tenant on 127.0.0.1:0, recording sessions and messages. */
export class SmtpBackend {
  readonly messages: Delivered[] = [];
  readonly auths: Array<{ user: string; ok: boolean; remoteAddress: string; secure: boolean }> = [];
  /** Each connection as it arrived (its TCP peer address), and how many have closed. */
  readonly connections: string[] = [];
  closed = 0;
  private readonly server: SMTPServer;
  private waiters: Array<() => void> = [];
  port = 0;

  constructor(
    options: {
      users?: Record<string, string>;
      xclient?: boolean;
      unknownUsers?: string[];
      size?: number;
      tls?: { mode: 'starttls' | 'implicit'; cert: string; key: string };
      smtpUtf8?: boolean;
      dsn?: boolean;
      /** smtp-server's idle timeout: past it the backend says 421 and closes. */
      socketTimeoutMs?: number;
      /** A reply code for MAIL FROM, by the connection's transaction number (1, 2, …): e.g. 421 for a connection that is leaving. */
      mailReply?: (transaction: number) => number | undefined;
    } = {},
  ) {
    const { tls } = options;
    this.server = new SMTPServer({
      logger: false,
      disableReverseLookup: true,
      disabledCommands: tls ? [] : ['STARTTLS'],
      ...(tls ? { secure: tls.mode === 'implicit', cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}),
      authOptional: true,
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      useXClient: options.xclient ?? false,
      hideSMTPUTF8: options.smtpUtf8 === false,
      hideDSN: options.dsn !== true,
      ...(options.size ? { size: options.size } : {}),
      ...(options.socketTimeoutMs ? { socketTimeout: options.socketTimeoutMs } : {}),
      onConnect: (session, callback) => {
        this.connections.push(session.remoteAddress);
        callback();
      },
      onClose: () => {
        this.closed++;
        this.wake();
      },
      onMailFrom: (_address, session, callback) => {
        const code = options.mailReply?.(session.transaction);
        if (code === undefined) return callback();
        const err = new Error('Closing connection') as Error & { responseCode: number };
        err.responseCode = code;
        callback(err);
      },
      onAuth: (auth, session, callback) => {
        const ok = options.users?.[auth.username ?? ''] === auth.password;
        this.auths.push({ user: auth.username ?? '', ok, remoteAddress: session.remoteAddress, secure: session.secure });
        if (ok) callback(null, { user: auth.username });
        else callback(new Error('Invalid username or password'));
      },
      onRcptTo: (address, _session, callback) => {
        if (options.unknownUsers?.includes(address.address)) {
          const err = new Error('No such user') as Error & { responseCode: number };
          err.responseCode = 550;
          return callback(err);
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const hash = createHash('sha256');
        let size = 0;
        stream.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          size += chunk.length;
        });
        stream.on('end', () => {
          this.messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            size,
            sha256: hash.digest('hex'),
            session: seen(session),
            smtpUtf8: session.envelope.smtpUtf8 === true,
            dsn: session.envelope.dsn
              ? { ret: session.envelope.dsn.ret ?? undefined, envid: session.envelope.dsn.envid ?? undefined, rcpt: session.envelope.rcptTo.map((r) => ({ notify: r.dsn?.notify, orcpt: r.dsn?.orcpt })) }
              : undefined,
          });
          this.wake();
          callback(null, 'Message queued');
        });
      },
    });
    this.server.on('error', () => {});
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.server.address() as AddressInfo).port;
    return this.port;
  }

  /** Resolves once `n` connections have closed in all. */
  async waitForClosed(n: number): Promise<void> {
    while (this.closed < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Resolves once `n` messages have arrived in all. */
  async waitForMessages(n: number): Promise<void> {
    while (this.messages.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function seen(session: SMTPServerSession): SeenSession {
  const s = session as SMTPServerSession & { xClient?: Map<string, unknown> };
  const xclient = Object.fromEntries([...(s.xClient ?? new Map<string, unknown>())].filter(([k]) => !k.includes(':')).map(([k, v]) => [k, String(v)]));
  return {
    id: s.id,
    remoteAddress: s.remoteAddress,
    tcpAddress: String(s.xClient?.get('ADDR:DEFAULT') ?? s.remoteAddress),
    helo: String(s.hostNameAppearsAs || ''),
    xclient,
    user: typeof s.user === 'string' ? s.user : undefined,
    secure: s.secure,
  };
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
