import { isIP, type Socket } from 'node:net';
import tls from 'node:tls';
import { dialBackend } from '../../src/dial.js';
import { BackendError } from '../../src/errors.js';
import { LineChannel } from '../../src/line-channel.js';
import { extensionsOf, readReply, type SmtpReply } from '../../proxies/smtp/reply-reader.js';
import type { SenderIdentity } from '../senders.js';
import type { Destination } from './destinations.js';

/** Registers how to abort a connection being opened; returns the unregistering function. */
export type Abortable = (abort: () => void) => () => void;
const noAbort: Abortable = () => () => {};

/** Reply lines from receiving servers can be long (their own diagnostics). */
const SERVER_MAX_LINE = 8192;

export interface ClientTimeouts {
  readonly connectTimeoutMs: number;
  readonly replyTimeoutMs: number;
  readonly dataEndTimeoutMs: number;
  readonly tls: { readonly starttls: 'opportunistic' | 'off'; readonly verifyCertificates: boolean };
}

/** One transaction's envelope; the body is sent as stored (dot-stuffed, ending in CRLF). */
export interface Envelope {
  readonly from: string;
  readonly recipients: readonly string[];
  readonly size: number;
  readonly eightBit: boolean;
  readonly smtputf8: boolean;
}

/** What the server said to each recipient, and to the end of data (absent: DATA was not reached). */
export interface TransactionReplies {
  readonly mail: SmtpReply;
  readonly recipients: ReadonlyMap<string, SmtpReply>;
  readonly data?: SmtpReply;
}

/**
 * The client side of RFC 5321 toward a receiving server, on a socket bound to the sender's
 * address. Hand-written on LineChannel rather than nodemailer's SMTPConnection: the bind must be
 * enforced (no fallback to another address), connections are reused across tenants' messages
 * only when address and name match, and every reply must reach the queue exactly as given.
 */
export class OutboundConnection {
  messagesSent = 0;
  /** The dialogue runs inside TLS (STARTTLS succeeded). */
  secure = false;
  /** The end of data of the current transaction was written: a break now may have delivered it. */
  dataSent = false;
  /** False once the server or the network broke the dialogue: never reuse it. */
  usable = true;

  private constructor(
    readonly destination: Destination,
    readonly identity: SenderIdentity,
    private readonly channel: LineChannel,
    readonly extensions: ReadonlyMap<string, string>,
    private readonly timeouts: ClientTimeouts,
  ) {}

  /** "host:port" for logs and DSNs. */
  get name(): string {
    return `${this.destination.host}:${this.destination.port}`;
  }

  /**
   * Dials from `identity.sourceAddress` (a failed bind is a BackendError: the caller defers, it
   * never dials from elsewhere), reads the greeting, says EHLO with the sender's name (HELO when
   * EHLO is refused, RFC 5321 §3.2).
   */
  static async open(destination: Destination, identity: SenderIdentity, timeouts: ClientTimeouts, abortable: Abortable = noAbort, plain = false): Promise<OutboundConnection> {
    const dial = dialBackend({ host: destination.host, port: destination.port }, identity.sourceAddress, timeouts.connectTimeoutMs);
    let untrack = abortable(() => dial.cancel());
    let socket: Socket;
    try {
      socket = await dial.socket;
    } finally {
      untrack();
    }
    socket.on('error', () => {}); // the channel reports it
    let channel = new LineChannel(socket, 'backend', SERVER_MAX_LINE);
    // Until the handshake is over, a stopping relay cuts the socket (a server that never greets must not hold it up).
    untrack = abortable(() => channel.socket.destroy());
    try {
      const greeting = await readReply(channel, timeouts.replyTimeoutMs, 'while reading the greeting');
      if (greeting.code !== 220) throw new ServerReplyError('greeting', greeting);
      let extensions = await hello(channel, identity.heloName, timeouts.replyTimeoutMs);
      let secure = false;
      if (!plain && timeouts.tls.starttls === 'opportunistic' && extensions.has('STARTTLS')) {
        channel.writeLine('STARTTLS');
        const reply = await readReply(channel, timeouts.replyTimeoutMs, 'after STARTTLS');
        if (reply.code === 220) {
          // RFC 3207 §5: nothing may be taken from before the handshake (STARTTLS command injection).
          if (channel.buffered > 0) throw new BackendError('BACKEND_PROTOCOL', 'bytes after the STARTTLS reply');
          channel.release();
          let wrapped: tls.TLSSocket;
          try {
            wrapped = await startTls(socket, destination.host, timeouts);
          } catch (err) {
            socket.destroy();
            // Unverified TLS is only a bonus: a server whose TLS breaks gets the message in plain text.
            if (!timeouts.tls.verifyCertificates) return OutboundConnection.open(destination, identity, timeouts, abortable, true);
            throw new BackendError('BACKEND_PROTOCOL', `TLS with ${destination.host} failed: ${(err as Error).message}`);
          }
          wrapped.on('error', () => {});
          channel = new LineChannel(wrapped, 'backend', SERVER_MAX_LINE);
          secure = true;
          // RFC 3207 §4.2: what the server said before TLS is forgotten; ask again.
          extensions = await hello(channel, identity.heloName, timeouts.replyTimeoutMs);
        }
      }
      const connection = new OutboundConnection(destination, identity, channel, extensions, timeouts);
      connection.secure = secure;
      return connection;
    } catch (err) {
      channel.socket.destroy();
      socket.destroy();
      throw err;
    } finally {
      untrack();
    }
  }

  /** One transaction (RFC 2920 pipelining of MAIL and RCPT when offered). Throws BackendError when the connection breaks. */
  async send(envelope: Envelope, body: Buffer): Promise<TransactionReplies> {
    const { channel, timeouts } = this;
    this.dataSent = false;
    try {
      let mail = `MAIL FROM:<${envelope.from}>`;
      if (this.extensions.has('SIZE')) mail += ` SIZE=${envelope.size}`;
      if (envelope.eightBit && this.extensions.has('8BITMIME')) mail += ' BODY=8BITMIME';
      if (envelope.smtputf8 && this.extensions.has('SMTPUTF8')) mail += ' SMTPUTF8';
      const rcpts = envelope.recipients.map((r) => `RCPT TO:<${r}>`);
      const pipelining = this.extensions.has('PIPELINING');
      const recipients = new Map<string, SmtpReply>();
      let mailReply: SmtpReply;
      if (pipelining) {
        channel.write([mail, ...rcpts].map((l) => `${l}\r\n`).join(''));
        mailReply = await readReply(channel, timeouts.replyTimeoutMs, 'after MAIL');
        for (const [i, r] of envelope.recipients.entries()) recipients.set(r, await readReply(channel, timeouts.replyTimeoutMs, `after RCPT ${i + 1}`));
      } else {
        channel.writeLine(mail);
        mailReply = await readReply(channel, timeouts.replyTimeoutMs, 'after MAIL');
        if (mailReply.code < 300) {
          for (const [i, r] of envelope.recipients.entries()) {
            channel.writeLine(rcpts[i]!);
            recipients.set(r, await readReply(channel, timeouts.replyTimeoutMs, `after RCPT ${i + 1}`));
          }
        }
      }
      if (mailReply.code === 421 || [...recipients.values()].some((r) => r.code === 421)) this.usable = false;
      const accepted = [...recipients.values()].some((r) => r.code < 300);
      if (mailReply.code >= 300 || !accepted) {
        await this.reset();
        return { mail: mailReply, recipients };
      }
      channel.writeLine('DATA');
      const go = await readReply(channel, timeouts.replyTimeoutMs, 'after DATA');
      if (go.code !== 354) {
        if (go.code === 421) this.usable = false;
        else await this.reset();
        return { mail: mailReply, recipients, data: go };
      }
      await channel.writeBytes(body);
      channel.write('.\r\n');
      this.dataSent = true;
      const data = await readReply(channel, timeouts.dataEndTimeoutMs, 'after the end of data');
      if (data.code === 421) this.usable = false;
      this.messagesSent++;
      return { mail: mailReply, recipients, data };
    } catch (err) {
      this.usable = false;
      channel.socket.destroy();
      throw err;
    }
  }

  /** RSET after a transaction that did not complete, so the connection can carry the next one. */
  private async reset(): Promise<void> {
    if (!this.usable) return;
    this.channel.writeLine('RSET');
    const reply = await readReply(this.channel, this.timeouts.replyTimeoutMs, 'after RSET');
    if (reply.code !== 250) this.usable = false;
  }

  /** QUIT, and the server closes first (its TIME_WAIT, not one on the tenant's address). */
  quit(): void {
    const { socket } = this.channel;
    this.usable = false;
    if (socket.destroyed) return;
    this.channel.release();
    socket.write('QUIT\r\n');
    socket.once('end', () => socket.end());
    socket.resume();
    const linger = setTimeout(() => socket.destroy(), 2_000);
    socket.once('close', () => clearTimeout(linger));
  }

  destroy(): void {
    this.usable = false;
    this.channel.socket.destroy();
  }

  get closed(): boolean {
    return this.channel.socket.destroyed || this.channel.socket.readableEnded;
  }
}

/** EHLO with the sender's name, HELO when EHLO is refused (RFC 5321 §3.2); the extensions offered. */
async function hello(channel: LineChannel, name: string, timeoutMs: number): Promise<Map<string, string>> {
  channel.writeLine(`EHLO ${name}`);
  const reply = await readReply(channel, timeoutMs, 'after EHLO');
  if (reply.code === 250) return extensionsOf(reply);
  channel.writeLine(`HELO ${name}`);
  const helo = await readReply(channel, timeoutMs, 'after HELO');
  if (helo.code !== 250) throw new ServerReplyError('HELO', helo);
  return new Map();
}

/** The TLS handshake on a connected socket, within the reply timeout; rejects on a bad certificate when verifying. */
function startTls(socket: Socket, host: string, timeouts: ClientTimeouts): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ socket, servername: isIP(host) ? undefined : host, rejectUnauthorized: timeouts.tls.verifyCertificates, minVersion: 'TLSv1.2' });
    const timer = setTimeout(() => fail(new Error('TLS handshake timed out')), timeouts.replyTimeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      secure.destroy();
      reject(err);
    };
    secure.once('error', fail);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.off('error', fail);
      resolve(secure);
    });
  });
}

/** A server refused the greeting or HELO: the whole server is unusable for now (or for good, on 5xx). */
export class ServerReplyError extends BackendError {
  constructor(
    step: string,
    readonly reply: SmtpReply,
  ) {
    super('BACKEND_PROTOCOL', `server answered ${step} with ${reply.code}`);
  }
}
