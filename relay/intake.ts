import type { LineChannel } from '../src/line-channel.js';
import { parseCommand } from '../proxies/command.js';
import { domainOf, isHeloName, type PathArg, parsePath } from '../proxies/smtp/commands.js';
import { BodyLineChecker, type BodyFault, DataEndScanner } from '../proxies/smtp/data-end.js';
import { replies, type SmtpSettings } from '../proxies/smtp/replies.js';
import { isHttpRequest } from '../proxies/smtp/submission.js';
import type { ControlOutcome, RoutingContext } from '../proxies/types.js';
import type { IdentifyBy } from './config.js';
import { authenticate } from './intake-auth.js';
import type { SenderDirectory, SenderIdentity } from './senders.js';
import type { BodyWriter, QueuedMessage, Spool } from './spool.js';

/** What a relay listener's sessions share. */
export interface IntakeDeps {
  readonly settings: SmtpSettings;
  readonly identifyBy: IdentifyBy;
  readonly maxRecipients: number;
  readonly spool: Spool;
  /** Read at each MAIL, so a reload applies to the next transaction. */
  senders(): SenderDirectory;
  /** A message is on disk and answered 250: hand it to delivery. */
  accepted(message: QueuedMessage): void;
}

/** RFC 5321 §4.1.4, as the relay plays it: `fresh` until EHLO, `greeted` between transactions. */
type State = 'fresh' | 'greeted' | 'mail' | 'rcpt';

interface Transaction {
  readonly from: PathArg;
  readonly sender: SenderIdentity;
  readonly matchedBy: string;
  readonly recipients: string[];
}

/** Extra octets of a body over SIZE that are the end mark and dot-stuffing, not message. */
const SIZE_SLACK = 5;
const END_MARK_LENGTH = 3; // ".\r\n": the CRLF before it ends the last line and is kept

const notIdentified = '554 5.7.1 Relay access denied: sender not identified\r\n';

/** One client of a relay listener, from greeting to QUIT. */
class IntakeSession {
  state: State = 'fresh';
  helo: string | undefined;
  auth: { identity: SenderIdentity; user: string } | undefined;
  tx: Transaction | undefined;
  quitting = false;

  constructor(
    readonly client: LineChannel,
    readonly ctx: RoutingContext,
    readonly deps: IntakeDeps,
  ) {}

  private get s(): SmtpSettings {
    return this.deps.settings;
  }

  async run(): Promise<ControlOutcome> {
    this.client.write(`220 ${this.s.hostname} ESMTP relay\r\n`);
    const debug = this.ctx.log.isDebugEnabled();
    for (;;) {
      const event = await this.client.next();
      if (event.kind !== 'line') {
        this.error(event.kind === 'tooLong' ? 'line too long' : 'NUL or CR inside a line', event.kind === 'tooLong' ? '500 5.5.2 Line too long\r\n' : '500 5.5.2 Syntax error\r\n');
        continue;
      }
      if (debug) this.ctx.log.debug('client command', { line: /^AUTH /i.test(event.line) ? 'AUTH [redacted]' : event.line });
      if (isHttpRequest(event.line)) {
        this.client.write(`421 4.7.0 ${this.s.hostname} This is an SMTP server, closing transmission channel\r\n`);
        return { reason: 'http request' };
      }
      const { verb, arg } = parseCommand(event.line);
      const open = this.tx !== undefined;
      await this.dispatch(verb, arg);
      // A transaction ended (queued, reset, refused): its bytes are its sender's (a session may send as several).
      if (open && this.tx === undefined) this.ctx.settle();
      if (this.quitting) return { reason: 'quit' };
    }
  }

  /** One command of the dialogue (RFC 5321 §4.1.4 order); QUIT sets `quitting`. */
  private async dispatch(verb: string, arg: string): Promise<void> {
    switch (verb) {
      case 'QUIT':
        this.client.write(replies.bye);
        this.quitting = true;
        break;
      case 'EHLO':
      case 'HELO':
        this.hello(verb, arg);
        break;
      case 'NOOP':
        this.client.write(replies.ok);
        break;
      case 'HELP':
        this.client.write(replies.help);
        break;
      case 'VRFY':
        this.client.write(replies.vrfy);
        break;
      case 'RSET':
        this.tx = undefined;
        if (this.state !== 'fresh') this.state = 'greeted';
        this.client.write(replies.resetOk);
        break;
      case 'STARTTLS':
        await this.startTls(arg);
        break;
      case 'AUTH':
        await this.authenticate(arg);
        break;
      case 'MAIL':
        if (this.state !== 'greeted') this.error('MAIL out of sequence', this.state === 'fresh' ? replies.needHelo : replies.nestedMail);
        else this.mail(arg);
        break;
      case 'RCPT':
        if (this.state !== 'mail' && this.state !== 'rcpt') this.error('RCPT out of sequence', this.state === 'fresh' ? replies.needHelo : replies.needMail);
        else this.rcpt(arg);
        break;
      case 'DATA':
        if (this.state !== 'rcpt') this.error('DATA out of sequence', this.state === 'fresh' ? replies.needHelo : this.state === 'greeted' ? replies.needMail : replies.needRcpt);
        else await this.data();
        break;
      default:
        this.error('unknown command', '500 5.5.2 Syntax error, command unrecognized\r\n');
    }
  }

  error(why: string, reply: string): void {
    this.ctx.countError(why);
    this.client.write(reply);
  }

  private hello(verb: 'EHLO' | 'HELO', arg: string): void {
    const name = arg.trim();
    if (!isHeloName(name)) return this.error(`${verb} without a valid name`, replies.badHelo);
    this.helo = name;
    this.tx = undefined;
    this.state = 'greeted';
    if (verb === 'HELO') return void this.client.write(`250 ${this.s.hostname}\r\n`);
    const { tls } = this.ctx;
    // RFC 3207 §4: where TLS is required, AUTH is offered only once it is on.
    const auth = this.deps.identifyBy.includes('auth') && !this.auth && !(tls.required && !tls.active);
    const lines = [this.s.hostname, 'PIPELINING', `SIZE ${this.s.maxMessageSize}`, '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', ...(tls.offered ? ['STARTTLS'] : []), ...(auth ? ['AUTH PLAIN LOGIN'] : [])];
    this.client.write(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
  }

  /** RFC 3207: go-ahead, handshake, then a fresh session (EHLO again; no AUTH or transaction kept). */
  private async startTls(arg: string): Promise<void> {
    const { tls } = this.ctx;
    if (!tls.offered) return this.error('STARTTLS not offered', tls.active ? replies.tlsActive : replies.noTls);
    if (arg.trim() !== '') return this.error('STARTTLS with an argument', replies.syntaxArgs);
    this.client.write(replies.startTls);
    await this.ctx.startTls();
    this.state = 'fresh';
    this.helo = undefined;
    this.auth = undefined;
    this.tx = undefined;
  }

  private async authenticate(arg: string): Promise<void> {
    if (this.ctx.tls.required && !this.ctx.tls.active) return this.error('AUTH before STARTTLS', replies.needTls);
    if (!this.deps.identifyBy.includes('auth')) return this.error('AUTH not offered', '502 5.5.1 Command not implemented\r\n');
    if (this.state === 'fresh') return this.error('AUTH before EHLO', replies.needHelo);
    if (this.state !== 'greeted') return this.error('AUTH inside a transaction', '503 5.5.1 Bad sequence of commands\r\n');
    if (this.auth) return this.error('AUTH twice', replies.alreadyAuth);
    const outcome = await authenticate(arg, this.client, this.ctx, this.deps.senders(), this.s.hostname, this.helo);
    if (!outcome.ok) return;
    this.auth = outcome;
    this.ctx.identified(outcome.identity.queue);
    this.client.write('235 2.7.0 Authentication successful\r\n');
  }

  /** The sending tenant, by the listener's methods in their order (undefined: nobody known). */
  private identify(from: PathArg): { sender: SenderIdentity; matchedBy: string } | undefined {
    const senders = this.deps.senders();
    for (const method of this.deps.identifyBy) {
      const sender =
        method === 'auth' ? this.auth?.identity : method === 'address' ? senders.ofClientAddress(this.ctx.peer.clientAddress) : from.address ? senders.ofDomain(domainOf(from.address)) : undefined;
      if (sender) return { sender, matchedBy: method };
    }
    return undefined;
  }

  private mail(arg: string): void {
    if (this.ctx.tls.required && !this.ctx.tls.active) return this.error('MAIL before STARTTLS', replies.needTls);
    const from = parsePath(arg, 'FROM');
    if (!from) return this.error('bad MAIL syntax', replies.badAddress);
    for (const [name, value] of from.params) {
      if (name === 'SIZE' && !/^\d{1,12}$/.test(value ?? '')) return this.error('bad SIZE', replies.syntaxArgs);
      if (name === 'BODY' && !/^(7BIT|8BITMIME)$/i.test(value ?? '')) return this.error('bad BODY', replies.syntaxArgs);
      if (name === 'SMTPUTF8' && value !== undefined) return this.error('SMTPUTF8 with a value', replies.syntaxArgs);
      if (name !== 'SIZE' && name !== 'BODY' && name !== 'SMTPUTF8') return this.error(`MAIL parameter ${name}`, replies.badParam);
    }
    if (Number(from.params.get('SIZE') ?? 0) > this.s.maxMessageSize) return void this.client.write(replies.tooBig);
    const who = this.identify(from);
    if (!who) {
      this.ctx.log.info('relay refused: sender not identified', { from: from.address, methods: this.deps.identifyBy });
      return this.error('sender not identified', notIdentified);
    }
    this.ctx.identified(who.sender.queue);
    this.tx = { from, sender: who.sender, matchedBy: who.matchedBy, recipients: [] };
    this.state = 'mail';
    this.client.write(replies.senderOk);
  }

  private rcpt(arg: string): void {
    const to = parsePath(arg, 'TO');
    if (!to || !to.address.includes('@')) return this.error('bad RCPT syntax', replies.badAddress);
    if (to.params.size > 0) return this.error('RCPT parameters', replies.badParam);
    const tx = this.tx!;
    if (tx.recipients.length >= this.deps.maxRecipients) return void this.client.write('452 4.5.3 Too many recipients\r\n');
    tx.recipients.push(to.address);
    this.state = 'rcpt';
    this.client.write('250 2.1.5 Recipient OK\r\n');
  }

  /**
   * The body goes straight to the tenant's queue as it arrives (dot-stuffing kept: it leaves as
   * it came), then file, record and folder are fsynced; only then the 250.
   */
  private async data(): Promise<void> {
    const tx = this.tx!;
    this.tx = undefined;
    this.state = 'greeted';
    let writer: BodyWriter | undefined;
    try {
      writer = await this.deps.spool.createBody(tx.sender.queue);
    } catch (err) {
      this.ctx.log.error('queue unavailable', { queue: tx.sender.queue, error: (err as Error).message });
      return void this.client.write('451 4.3.0 Queue unavailable, try again later\r\n');
    }
    this.client.write('354 End data with <CR><LF>.<CR><LF>\r\n');
    const outcome = await this.receiveBody(writer, tx).catch(async (err: unknown) => {
      await writer.abort();
      throw err; // the client went away mid-body: nothing was promised
    });
    if (outcome !== 'stored') {
      await writer.abort();
      if (outcome === 'diskFailure') return void this.client.write('451 4.3.0 Queue write failed, try again later\r\n');
      this.ctx.log.info('message refused', { why: outcome, limit: this.s.maxMessageSize });
      return void this.client.write(replies[outcome]);
    }
    try {
      const size = await writer.finish(END_MARK_LENGTH);
      const now = Date.now();
      const message: QueuedMessage = {
        id: writer.id,
        queue: tx.sender.queue,
        from: tx.from.address,
        recipients: tx.recipients.map((address) => ({ address, state: 'pending' })),
        receivedAt: now,
        size,
        eightBit: /^8BITMIME$/i.test(tx.from.params.get('BODY') ?? ''),
        ...(tx.from.params.has('SMTPUTF8') ? { smtputf8: true } : {}),
        attempts: 0,
        nextAttemptAt: now,
      };
      await this.deps.spool.save(message);
      this.ctx.log.info('message queued', { id: message.id, queue: message.queue, matchedBy: tx.matchedBy, from: message.from, recipients: message.recipients.length, size });
      this.client.write(`250 2.0.0 Ok: queued as ${message.id}\r\n`);
      this.deps.accepted(message);
    } catch (err) {
      await writer.abort();
      this.ctx.log.error('queue write failed', { queue: tx.sender.queue, error: (err as Error).message });
      this.client.write('451 4.3.0 Queue write failed, try again later\r\n');
    }
  }

  /** Writes a Received line and the body through the end mark; a refused body is read to its end. */
  private async receiveBody(writer: BodyWriter, tx: Transaction): Promise<'stored' | 'tooBig' | BodyFault | 'diskFailure'> {
    const scanner = new DataEndScanner();
    const lines = new BodyLineChecker();
    const limit = this.s.maxMessageSize + SIZE_SLACK;
    let size = 0;
    let refused: 'tooBig' | BodyFault | 'diskFailure' | undefined;
    try {
      await writer.write(Buffer.from(this.receivedLine(writer.id, tx), 'latin1'));
    } catch {
      refused = 'diskFailure';
    }
    for (;;) {
      const chunk = await this.client.nextChunk();
      const end = scanner.scan(chunk);
      const part = end < 0 ? chunk : chunk.subarray(0, end);
      size += part.length;
      if (!refused) refused = size > limit ? 'tooBig' : lines.scan(part);
      if (!refused) {
        try {
          await writer.write(part);
        } catch (err) {
          this.ctx.log.error('queue write failed', { error: (err as Error).message });
          refused = 'diskFailure';
        }
      }
      if (end >= 0) {
        this.client.unread(chunk.subarray(end));
        return refused ?? 'stored';
      }
    }
  }

  /** RFC 5321 §4.4: the trace line every relay adds. */
  private receivedLine(id: string, tx: Transaction): string {
    const { clientAddress } = this.ctx.peer;
    const date = new Date().toUTCString().replace('GMT', '+0000');
    // RFC 6531 §3.7.3 and RFC 3848 protocol names.
    const via = `${tx.from.params.has('SMTPUTF8') ? 'UTF8SMTP' : 'ESMTP'}${this.auth ? 'A' : ''}`;
    const forWhom = tx.recipients.length === 1 ? `\r\n\tfor <${tx.recipients[0]}>` : '';
    return `Received: from ${this.helo ?? 'unknown'} ([${clientAddress}])\r\n\tby ${this.s.hostname} (Concierge relay) with ${via} id ${id}${forWhom};\r\n\t${date}\r\n`;
  }
}

/** The relay listener's session: runs until QUIT, a close, or too many errors. */
export function serveIntake(deps: IntakeDeps) {
  return (client: LineChannel, ctx: RoutingContext): Promise<ControlOutcome> => new IntakeSession(client, ctx, deps).run();
}
