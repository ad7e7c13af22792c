import { dialBackend } from '../../src/dial.js';
import { BackendError } from '../../src/errors.js';
import { LineChannel } from '../../src/line-channel.js';
import { extensionsOf, readReply, type SmtpReply } from '../../proxies/smtp/reply-reader.js';
import type { SenderIdentity } from '../senders.js';
import type { Destination } from './destinations.js';

/** Reply lines from receiving servers can be long (their own diagnostics). */
const SERVER_MAX_LINE = 8192;

export interface ClientTimeouts {
  readonly connectTimeoutMs: number;
  readonly replyTimeoutMs: number;
  readonly dataEndTimeoutMs: number;
}

/** One transaction's envelope; the body is sent as stored (dot-stuffed, ending in CRLF). */
export interface Envelope {
  readonly from: string;
  readonly recipients: readonly string[];
  readonly size: number;
  readonly eightBit: boolean;
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
  static async open(destination: Destination, identity: SenderIdentity, timeouts: ClientTimeouts): Promise<OutboundConnection> {
    const socket = await dialBackend({ host: destination.host, port: destination.port }, identity.sourceAddress, timeouts.connectTimeoutMs).socket;
    socket.on('error', () => {}); // the channel reports it
    const channel = new LineChannel(socket, 'backend', SERVER_MAX_LINE);
    try {
      const greeting = await readReply(channel, timeouts.replyTimeoutMs, 'while reading the greeting');
      if (greeting.code !== 220) throw new ServerReplyError('greeting', greeting);
      channel.writeLine(`EHLO ${identity.heloName}`);
      let hello = await readReply(channel, timeouts.replyTimeoutMs, 'after EHLO');
      let extensions = new Map<string, string>();
      if (hello.code === 250) extensions = extensionsOf(hello);
      else {
        channel.writeLine(`HELO ${identity.heloName}`);
        hello = await readReply(channel, timeouts.replyTimeoutMs, 'after HELO');
        if (hello.code !== 250) throw new ServerReplyError('HELO', hello);
      }
      return new OutboundConnection(destination, identity, channel, extensions, timeouts);
    } catch (err) {
      socket.destroy();
      throw err;
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

/** A server refused the greeting or HELO: the whole server is unusable for now (or for good, on 5xx). */
export class ServerReplyError extends BackendError {
  constructor(
    step: string,
    readonly reply: SmtpReply,
  ) {
    super('BACKEND_PROTOCOL', `server answered ${step} with ${reply.code}`);
  }
}
