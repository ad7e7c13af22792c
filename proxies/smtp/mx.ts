import { BackendError, ClientGoneError } from '../../src/errors.js';
import type { LineChannel, LineEvent } from '../../src/line-channel.js';
import type { BackendLink, ControlOutcome, RoutingContext } from '../types.js';
import { type Extensions, introduce, mailLine, rcptLine, replayEnvelope } from './backend-side.js';
import { DSN_MAIL_PARAMS, DSN_RCPT_PARAMS, dsnParamProblem } from './dsn.js';
import { parseCommand } from '../command.js';
import { type PathArg, domainOf, isAscii, isHeloName, parsePath, utf8Address } from './commands.js';
import { BodyLineChecker, type BodyFault, DataEndScanner } from './data-end.js';
import { readReply, type SmtpReply } from './reply-reader.js';
import { replies, type SmtpSettings } from './replies.js';
import { ehloReply, isHttpRequest } from './submission.js';

/**
 * RFC 5321 §4.1.4 command order as the mx front plays it: `fresh` until EHLO / HELO, `greeted`
 * between transactions, `mail` once MAIL FROM is held, `rcpt` once a backend accepted a recipient.
 */
type State = 'fresh' | 'greeted' | 'mail' | 'rcpt';

/** A backend connection: its tenant and what it offered after EHLO. */
type Link = BackendLink<Extensions>;

/** One mail transaction: the held sender, then the backend that took its first recipient. */
interface Transaction {
  readonly from: PathArg;
  /** MAIL declared SMTPUTF8 (RFC 6531): UTF-8 addresses are allowed, and the backend must offer SMTPUTF8. */
  readonly utf8: boolean;
  link: Link | undefined;
  accepted: number;
}

type Handler = (m: MxSession, arg: string) => Promise<void> | void;

const MX_MAIL_PARAMS = new Set(['SIZE', 'BODY']);
/** Extra octets of a body over SIZE that are the end mark and dot-stuffing, not message. */
const SIZE_SLACK = 5;

/**
 * The mx front (RFC 5321): Concierge greets and answers EHLO itself, holds MAIL FROM, and the first
 * RCPT's domain picks the tenant whose backend gets the replayed envelope. Routing is per transaction:
 * the backend is kept after the transaction for the next one to the same tenant, and replaced when
 * the next transaction goes to another.
 */
class MxSession {
  state: State = 'fresh';
  helo: { verb: 'EHLO' | 'HELO'; name: string } | undefined;
  tx: Transaction | undefined;
  /** The backend kept between transactions. */
  idle: Link | undefined;
  /**
   * Backend connections that answered a command with 4xx / 5xx in this session. Servers count
   * such errors per connection (Postfix slows down after 10 and disconnects after 20), so a
   * connection that has any is not handed to another client's session.
   */
  private refusedOn: WeakSet<Link> | undefined; // made at the first refusal: most sessions have none

  constructor(
    readonly client: LineChannel,
    readonly ctx: RoutingContext,
    readonly s: SmtpSettings,
  ) {}

  async run(): Promise<ControlOutcome> {
    if (this.s.greetingDelayMs > 0 && (await this.talksFirst())) {
      this.client.write(`421 4.7.0 ${this.s.hostname} Talking before the greeting, closing transmission channel\r\n`);
      return { reason: 'early talker' };
    }
    this.client.write(`220 ${this.s.hostname} ESMTP\r\n`);
    const debug = this.ctx.log.isDebugEnabled();
    for (;;) {
      if (this.ctx.draining && !this.tx) {
        this.quitBackends();
        return { reason: 'shutting down', goodbye: 'shuttingDown' };
      }
      this.ctx.quiet = !this.tx;
      let event: LineEvent;
      try {
        event = await this.client.next();
      } catch (err) {
        // A client that hangs up between transactions without QUIT (nodemailer does) leaves the
        // backend as idle as a QUIT would: it is parked the same way.
        if (err instanceof ClientGoneError && !this.tx) this.parkIdle();
        throw err;
      }
      this.ctx.quiet = false;
      if (event.kind !== 'line') {
        this.error(event.kind === 'tooLong' ? 'line too long' : 'NUL or CR inside a line', event.kind === 'tooLong' ? '500 5.5.2 Line too long\r\n' : '500 5.5.2 Syntax error\r\n');
        continue;
      }
      if (debug) this.ctx.log.debug('client command', { line: event.line });
      if (isHttpRequest(event.line)) {
        this.client.write(`421 4.7.0 ${this.s.hostname} This is an SMTP server, closing transmission channel\r\n`);
        this.quitBackends();
        return { reason: 'http request' };
      }
      const { verb, arg } = parseCommand(event.line);
      if (verb === 'QUIT') {
        this.client.write(replies.bye);
        this.quitBackends();
        return { reason: 'quit' };
      }
      const handler: Handler | undefined = (commands[this.state] as Record<string, Handler | undefined>)[verb] ?? anyState[verb];
      const open = this.tx?.link !== undefined;
      if (handler) await handler(this, arg);
      else if (KNOWN.has(verb)) this.error(`${verb} out of sequence`, this.state === 'fresh' ? replies.needHelo : verb === 'MAIL' ? replies.nestedMail : verb === 'RCPT' ? replies.needMail : replies.needRcpt);
      else this.error('unknown command', NOT_IMPLEMENTED.has(verb) ? '502 5.5.1 Command not implemented\r\n' : '500 5.5.2 Syntax error, command unrecognized\r\n');
      // A transaction with a tenant's backend ended (its final reply, RSET, a lost backend): its bytes are that tenant's.
      if (open && this.tx?.link === undefined) this.ctx.settle();
    }
  }

  /** Holds the greeting back `greetingDelayMs`: a client that sends anything meanwhile is no MTA. */
  private async talksFirst(): Promise<boolean> {
    try {
      await this.client.next({ timeoutMs: this.s.greetingDelayMs });
      return true;
    } catch (err) {
      if (err instanceof BackendError && err.code === 'BACKEND_TIMEOUT') return this.client.buffered > 0;
      throw err;
    }
  }

  error(why: string, reply: string): void {
    this.ctx.countError(why);
    this.client.write(reply);
  }

  hello(verb: 'EHLO' | 'HELO', arg: string): Promise<void> {
    const name = arg.trim();
    if (!isHeloName(name)) return Promise.resolve(this.error(`${verb} without a valid name`, replies.badHelo));
    this.helo = { verb, name };
    return this.endTransaction().then(() => {
      this.state = 'greeted';
      this.client.write(verb === 'EHLO' ? ehloReply(this.s, false, this.ctx.tls) : `250 ${this.s.hostname}\r\n`);
    });
  }

  /** RFC 3207 §4.2: the go-ahead, the handshake, then a fresh session: EHLO again, no transaction kept. */
  async startTls(arg: string): Promise<void> {
    const { tls } = this.ctx;
    if (!tls.offered) return this.error('STARTTLS not offered', tls.active ? replies.tlsActive : replies.noTls);
    if (arg.trim() !== '') return this.error('STARTTLS with an argument', replies.syntaxArgs);
    await this.endTransaction();
    this.client.write(replies.startTls);
    await this.ctx.startTls();
    this.helo = undefined;
    this.state = 'fresh';
  }

  mail(arg: string): void {
    if (this.ctx.tls.required && !this.ctx.tls.active) return this.error('MAIL before STARTTLS', replies.needTls);
    const from = parsePath(arg, 'FROM', { utf8Domain: this.s.smtputf8 });
    if (!from) return this.error('bad MAIL syntax', replies.badAddress);
    for (const [name, value] of from.params) {
      if (name === 'SMTPUTF8' && this.s.smtputf8) {
        if (value !== undefined) return this.error('SMTPUTF8 with a value', replies.syntaxArgs);
        continue;
      }
      if (this.s.dsn && DSN_MAIL_PARAMS.has(name)) {
        const problem = dsnParamProblem(name, value);
        if (problem) return this.error(problem, replies.syntaxArgs);
        continue;
      }
      if (!MX_MAIL_PARAMS.has(name)) return this.error(`MAIL parameter ${name}`, replies.badParam);
      if (name === 'SIZE' && !/^\d{1,12}$/.test(value ?? '')) return this.error('bad SIZE', replies.syntaxArgs);
      if (name === 'BODY' && !/^(7BIT|8BITMIME)$/i.test(value ?? '')) return this.error('bad BODY', replies.syntaxArgs);
    }
    // RFC 1870 §6.1: a declared size over the limit is refused at MAIL.
    if (Number(from.params.get('SIZE') ?? 0) > this.s.maxMessageSize) return void this.client.write(replies.tooBig);
    const utf8 = from.params.has('SMTPUTF8');
    if (!isAscii(from.address)) {
      // RFC 6531 §3.4: a UTF-8 address only in a transaction that declares SMTPUTF8 (offered only when configured).
      if (!utf8) return this.error('UTF-8 sender without SMTPUTF8', replies.utf8Sender);
      if (utf8Address(from.address) === undefined) return this.error('bad UTF-8 sender', replies.badAddress);
    }
    this.tx = { from, utf8, link: undefined, accepted: 0 };
    this.state = 'mail';
    this.client.write(replies.senderOk);
  }

  async rcpt(arg: string): Promise<void> {
    const to = parsePath(arg, 'TO', { utf8Domain: this.s.smtputf8 });
    if (!to || !to.address.includes('@')) return this.error('bad RCPT syntax', replies.badAddress);
    for (const [name, value] of to.params) {
      if (!this.s.dsn || !DSN_RCPT_PARAMS.has(name)) return this.error(`RCPT parameter ${name}`, replies.badParam);
      const problem = dsnParamProblem(name, value);
      if (problem) return this.error(problem, replies.syntaxArgs);
    }
    const tx = this.tx!;
    // The directory holds ASCII domains: a UTF-8 recipient is routed by its domain's A-labels.
    let route = to.address;
    if (!isAscii(to.address)) {
      if (!tx.utf8) return this.error('UTF-8 recipient without SMTPUTF8', replies.utf8Recipient);
      const ascii = utf8Address(to.address);
      if (ascii === undefined) return this.error('bad UTF-8 recipient', replies.badAddress);
      route = ascii;
    }
    const tenant = this.ctx.tenantOf(route);
    if (!tenant) {
      this.ctx.log.info('relaying denied', { domain: domainOf(route) });
      return this.error('recipient domain not hosted', replies.relayDenied);
    }
    const rcptFor = (extensions: Extensions) => this.rcptFor(tx, to, extensions);
    if (tx.link && tx.link.tenant !== tenant) {
      // RFC 5321 §3.3: a 4xx recipient is retried by the sender in another transaction.
      if (tx.accepted > 0) return void this.client.write(replies.otherTenant);
      this.dropLink(tx.link);
      tx.link = undefined;
    }
    if (tx.link) {
      const reply = await this.ask(tx.link, rcptFor(tx.link.result));
      if (!reply) return;
      this.note(tx.link, reply);
      if (reply.code < 300) {
        tx.accepted++;
        this.state = 'rcpt';
      }
      return void this.client.write(reply.text);
    }
    await this.openTransaction(tx, tenant, route, rcptFor);
  }

  /**
   * The first RCPT of a transaction: the kept backend if it is the tenant's, else a new dial.
   * A transaction that declared SMTPUTF8 goes no further than EHLO with a backend that does not offer it.
   */
  private async openTransaction(tx: Transaction, tenant: string, address: string, rcptFor: (extensions: Extensions) => string): Promise<void> {
    const timeoutMs = this.ctx.limits.backendReplyTimeoutMs;
    const refuses = (extensions: Extensions) => tx.utf8 && !extensions.has('SMTPUTF8');
    let link = this.idle?.tenant === tenant ? this.idle : undefined;
    const envelopeOn = (channel: LineChannel, extensions: Extensions) => replayEnvelope(channel, mailLine(tx.from.address, tx.from.params, extensions), rcptFor(extensions), extensions, timeoutMs);
    let replies_: Awaited<ReturnType<typeof replayEnvelope>> | undefined;
    if (link && refuses(link.result)) return this.refuseUtf8(link);
    if (link) {
      try {
        replies_ = await envelopeOn(link.channel, link.result);
      } catch (err) {
        if (!(err instanceof BackendError)) throw err;
        // The kept connection went stale: it goes, and a connection is found afresh.
        this.ctx.disconnect();
        this.idle = link = undefined;
      }
    }
    if (!link) {
      this.parkIdle();
      const { ctx } = this;
      const identity = {
        // Read only for XCLIENT: the client's address costs two system calls.
        get peer() {
          return ctx.peer;
        },
        helo: this.helo?.name,
        proto: this.helo?.verb === 'HELO' ? 'SMTP' : 'ESMTP',
      } as const;
      for (;;) {
        let envelope: typeof replies_;
        const connected = await this.ctx.connect(address, async (backend, target) => {
          const extensions = await introduce(backend, target, identity, this.s.hostname, timeoutMs);
          if (refuses(extensions)) return extensions;
          envelope = await envelopeOn(backend, extensions);
          return extensions;
        });
        if (connected === 'unknownTenant') return this.error('recipient domain not hosted', replies.relayDenied);
        if (connected === 'tempFailure') return void this.client.write(replies.backendDown);
        link = connected;
        if (connected.reused && !refuses(connected.result)) {
          // From the pool: greeted and introduced by an earlier session, perhaps closed since.
          try {
            envelope = await envelopeOn(connected.channel, connected.result);
          } catch (err) {
            if (!(err instanceof BackendError)) throw err;
            this.ctx.log.info('pooled backend connection gone stale', { code: err.code });
            this.ctx.disconnect();
            continue;
          }
          if (envelope.mail.code >= 400 && envelope.mail.code < 500) {
            // A per-connection limit (messages per connection, Exchange's 20 by default) answers
            // MAIL with 4xx: this connection is spent, a fresh one may not be.
            this.ctx.log.info('pooled backend connection deferred MAIL', { reply: envelope.mail.code });
            this.dropLink(connected);
            continue;
          }
        }
        replies_ = envelope;
        break;
      }
      if (!replies_) return this.refuseUtf8(link);
    }
    this.idle = undefined;
    const { mail, rcpt } = replies_!;
    this.note(link, mail);
    if (!rcpt) {
      // The backend refused the sender: its words answer this RCPT; the connection stays for the next try.
      this.idle = link;
      return void this.client.write(mail.text);
    }
    this.note(link, rcpt);
    tx.link = link;
    if (rcpt.code < 300) {
      tx.accepted++;
      this.state = 'rcpt';
    }
    this.client.write(rcpt.text);
  }

  /**
   * The RCPT for a backend, with the DSN parameters when it offers DSN. A backend without DSN gets
   * none (RFC 3461 would have a relay send a "relayed" DSN then; a proxy cannot), and that is logged.
   */
  private rcptFor(tx: Transaction, to: PathArg, extensions: Extensions): string {
    if (!extensions.has('DSN') && (to.params.size > 0 || [...DSN_MAIL_PARAMS].some((p) => tx.from.params.has(p)))) {
      this.ctx.log.info('DSN parameters dropped: the backend does not offer DSN');
    }
    return rcptLine(to.address, to.params, extensions);
  }

  /** RFC 6531 §3.2: SMTPUTF8 mail is not sent to a server that does not offer it; the connection stays for the next transaction. */
  private refuseUtf8(link: Link): void {
    this.ctx.log.warn('backend does not offer SMTPUTF8', { tenant: link.tenant });
    this.idle = link;
    this.client.write(replies.utf8Backend);
  }

  async data(): Promise<void> {
    const tx = this.tx!;
    if (!tx.link || tx.accepted === 0) return void this.client.write('554 5.5.1 No valid recipients\r\n');
    const go = await this.ask(tx.link, 'DATA');
    if (!go) return;
    this.note(tx.link, go);
    this.client.write(go.text);
    if (go.code !== 354) return;
    const link = tx.link;
    const refused = await this.streamBody(link);
    this.tx = undefined;
    this.state = 'greeted';
    if (refused) {
      // The backend was cut before the end mark, so it delivers nothing.
      this.ctx.disconnect();
      return void this.client.write(replies[refused]);
    }
    let final: SmtpReply;
    try {
      // RFC 5321 §4.5.3.2.6: the reply to the end of data may take up to 10 minutes.
      final = await readReply(link.channel, this.ctx.limits.idleTimeoutMs, 'after the end of data');
    } catch (err) {
      if (!(err instanceof BackendError)) throw err;
      this.ctx.disconnect();
      return void this.client.write(replies.lostBackend);
    }
    this.note(link, final);
    this.idle = link;
    this.client.write(final.text);
  }

  /** Remembers a refusal by `link`'s backend (see refusedOn). */
  private note(link: Link, reply: SmtpReply): void {
    if (reply.code >= 400) (this.refusedOn ??= new WeakSet()).add(link);
  }

  /**
   * The body, byte for byte as the client sent it (dot-stuffing and 8-bit octets kept), through
   * the end mark. When it grows past SIZE, holds a CR or LF outside a CRLF, or a line over 1000
   * octets, the backend is cut before the end mark and the rest is read and dropped; the reason
   * is returned.
   */
  private async streamBody(link: Link): Promise<'tooBig' | BodyFault | undefined> {
    const scanner = new DataEndScanner();
    const lines = new BodyLineChecker();
    const limit = this.s.maxMessageSize + SIZE_SLACK;
    let size = 0;
    let refused: 'tooBig' | BodyFault | undefined;
    for (;;) {
      const chunk = await this.client.nextChunk();
      const end = scanner.scan(chunk);
      const part = end < 0 ? chunk : chunk.subarray(0, end);
      size += part.length;
      if (!refused) {
        refused = size > limit ? 'tooBig' : lines.scan(part);
        if (refused) {
          this.ctx.log.info('message refused', { why: refused, limit: this.s.maxMessageSize });
          this.ctx.disconnect();
        }
      }
      if (!refused) await link.channel.writeBytes(part);
      if (end >= 0) {
        this.client.unread(chunk.subarray(end));
        return refused;
      }
    }
  }

  async rset(): Promise<void> {
    await this.endTransaction();
    if (this.state !== 'fresh') this.state = 'greeted';
    this.client.write(replies.resetOk);
  }

  /** Aborts the open transaction: the backend is reset (RSET) and kept, or dropped if it will not. */
  private async endTransaction(): Promise<void> {
    const link = this.tx?.link;
    this.tx = undefined;
    if (!link) return;
    const reply = await this.ask(link, 'RSET', true);
    if (reply && reply.code < 300) this.idle = link;
    else this.ctx.disconnect();
  }

  /** Sends one command to the transaction's backend; on a broken backend answers 451 and ends the transaction. */
  private async ask(link: Link, line: string, quiet = false): Promise<SmtpReply | undefined> {
    link.channel.writeLine(line);
    try {
      return await readReply(link.channel, this.ctx.limits.backendReplyTimeoutMs, `after ${line.slice(0, 4)}`);
    } catch (err) {
      if (!(err instanceof BackendError)) throw err;
      this.ctx.log.warn('backend failed', { code: err.code, error: err.message });
      this.ctx.disconnect();
      this.tx = undefined;
      if (this.state !== 'fresh') this.state = 'greeted';
      if (!quiet) this.client.write(replies.lostBackend);
      return undefined;
    }
  }

  private dropLink(link: Link): void {
    link.channel.writeLine('QUIT');
    this.ctx.disconnect();
  }

  /** The backend kept between transactions is given back: to the pool for the tenant's next session, or QUIT. */
  private parkIdle(): void {
    const link = this.idle;
    this.idle = undefined;
    if (!link) return;
    if (this.refusedOn?.has(link)) this.dropLink(link);
    else this.ctx.park(link, 'QUIT');
  }

  /** The session ends: a backend inside a transaction is told QUIT (its transaction is void); an idle one is parked. */
  private quitBackends(): void {
    if (this.tx?.link) this.dropLink(this.tx.link);
    this.tx = undefined;
    this.parkIdle();
  }
}

const KNOWN = new Set(['MAIL', 'RCPT', 'DATA']);
const NOT_IMPLEMENTED = new Set(['AUTH', 'BDAT', 'ETRN', 'EXPN', 'TURN', 'ATRN', 'XCLIENT', 'XFORWARD']);

const anyState: Record<string, Handler> = {
  EHLO: (m, arg) => m.hello('EHLO', arg),
  HELO: (m, arg) => m.hello('HELO', arg),
  NOOP: (m) => void m.client.write(replies.ok),
  HELP: (m) => void m.client.write(replies.help),
  VRFY: (m) => void m.client.write(replies.vrfy),
  RSET: (m) => m.rset(),
  STARTTLS: (m, arg) => m.startTls(arg),
};

/** RFC 5321 §4.1.4: which transaction commands each state takes; the rest are out of sequence (503). */
const commands = {
  fresh: {},
  greeted: { MAIL: (m, arg) => m.mail(arg) },
  mail: { RCPT: (m, arg) => m.rcpt(arg), DATA: (m) => m.data() },
  rcpt: { RCPT: (m, arg) => m.rcpt(arg), DATA: (m) => m.data() },
} satisfies Record<State, Record<string, Handler>>;

/** The mx listener's session: runs until QUIT, a close, or too many errors. */
export function serveMx(s: SmtpSettings) {
  return (client: LineChannel, ctx: RoutingContext): Promise<ControlOutcome> => new MxSession(client, ctx, s).run();
}

