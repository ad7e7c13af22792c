import { BackendError, ClientGoneError } from '../../src/errors.js';
import type { LineEvent } from '../../src/line-channel.js';
import type { LineReader } from '../../src/line-reader.js';
import { redactCommand } from '../../src/log.js';
import type { ControlContext, ControlOutcome, DataLink, DataProtection } from '../types.js';
import { formatHostPort, parseEprt, parseEpsvReply, parseHostPort, parsePasvReply } from './addresses.js';
import { answerPbsz, answerProt, PROT_P_REQUIRED, protectionOf, type ProtectionState } from './protection.js';
import { type FtpReply, ReplyFramer, ftpReplies } from './replies.js';

/** Commands that move a file or a listing over the data connection (RFC 959 §4.1.3, RFC 3659 MLSD). */
const TRANSFER_VERBS = new Set(['RETR', 'STOR', 'STOU', 'APPE', 'LIST', 'NLST', 'MLSD']);
/** Replies by which a backend says it does not know EPSV (RFC 2428 §3): fall back to PASV. */
const EPSV_UNKNOWN = new Set([500, 501, 502, 504]);

const CANNOT_OPEN = '425 Cannot open data connection.\r\n';
const TRANSFER_ABORTED = '426 Connection closed; transfer aborted.\r\n';

/** A transfer command awaiting its replies, with the data link it uses. */
interface Transfer {
  readonly link: DataLink | undefined;
  /** A 1xx came: the backend started the transfer, so a 2xx must wait for the data to reach the client. */
  started: boolean;
}

/** What each backend reply belongs to, in command order (RFC 959 replies come in order). */
type Pending =
  | { readonly kind: 'forward'; readonly transfer?: Transfer }
  | { readonly kind: 'internal'; readonly resolve: (reply: FtpReply) => void }
  | { readonly kind: 'local'; readonly text: string };

/** A plain command's reply goes to the client: one object for all of them. */
const FORWARD: Pending = { kind: 'forward' };

/** Telnet IP / Synch (IAC IP, IAC DM) that clients may put before ABOR (RFC 959 §4.1.3). */
const TELNET_PREFIX = /^(?:\xff[\xf0-\xfe])+/;

/**
 * The control channel after login. Everything passes through unchanged except the commands that
 * set up data connections: PASV / EPSV / PORT / EPRT are answered by Concierge with its own
 * endpoints and turned into the backend request `backendDataMode` asks for; third-party PORT is
 * refused; a transfer's 2xx is held until the data has reached the client.
 *
 * Driven by callbacks, line by line: most commands and replies pass straight through, with no
 * promise per line. A command or reply that needs an asynchronous step (a data connection set up,
 * a transfer's data to wait for) holds its side's lines until the step is done, so both sides
 * stay in order.
 */
class ControlRelay {
  private readonly pending: Pending[] = [];
  private readonly framer = new ReplyFramer();
  /** The link set up by the last PASV / PORT, waiting for its transfer command. */
  private link: DataLink | undefined;
  private readonly transfers = new Set<DataLink>();
  private epsvAll = false;
  private backendKnowsEpsv = true;
  private quitSent = false;
  private lastCode = 0;
  /** The client's PBSZ / PROT, from before login on (looked up when first needed: most sessions never do). */
  private protectionState: ProtectionState | undefined;
  /** A TLS backend's own PROT level (RFC 4217: a server starts at C) and whether it has had its PBSZ. */
  private backendProt: 'C' | 'P' = 'C';
  private backendPbsz = false;
  private readonly debug: boolean;
  private done = false;
  private settle!: { resolve: (outcome: ControlOutcome) => void; reject: (err: unknown) => void };
  private readonly outcome = new Promise<ControlOutcome>((resolve, reject) => (this.settle = { resolve, reject }));

  constructor(
    private readonly client: LineReader,
    private readonly backend: LineReader,
    private readonly ctx: ControlContext,
  ) {
    this.debug = ctx.log.isDebugEnabled();
  }

  run(): Promise<ControlOutcome> {
    this.backend.start({ line: this.onReplyLine, end: this.onBackendEnd });
    const mirror = this.ctx.backendTls && this.protection.prot !== this.backendProt;
    this.client.start({ line: this.onCommand, end: this.onClientEnd }, mirror);
    if (mirror) {
      this.step(this.client, async () => {
        const refused = await this.mirrorProt(this.protection.prot);
        if (refused) this.ctx.log.warn('backend refused the client’s PROT', { code: refused.code });
      });
    }
    return this.outcome;
  }

  /** The relay's end: the readers stop, and the session closes with `outcome` (or fails with `err`). */
  private finish(outcome: ControlOutcome | undefined, err?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.client.detach();
    this.backend.detach();
    if (outcome) this.settle.resolve(outcome);
    else this.settle.reject(err);
  }

  private readonly fail = (err: unknown): void => this.finish(undefined, err);

  /** Runs an asynchronous step with `side`'s lines held; they flow again when it is done. */
  private step(side: LineReader, work: () => Promise<void>): void {
    side.hold();
    work().then(() => {
      if (!this.done) side.resume();
    }, this.fail);
  }

  private get protection(): ProtectionState {
    return (this.protectionState ??= protectionOf(this.ctx.tls));
  }

  /** Which sides of the next data connection are TLS: each side's own PROT level. */
  private get dataProtection(): DataProtection {
    return { client: this.protection.prot === 'P', backend: this.ctx.backendTls && this.backendProt === 'P' };
  }

  /**
   * A TLS backend's PROT mirrors the client's: set once after login (the client may have sent
   * PROT P before it) and again at each PROT. Resolves with the backend's refusal, if any.
   */
  private async mirrorProt(level: 'C' | 'P'): Promise<FtpReply | undefined> {
    if (!this.ctx.backendTls || level === this.backendProt) return undefined;
    if (!this.backendPbsz) {
      const pbsz = await this.request('PBSZ 0');
      if (pbsz.code !== 200) return pbsz;
      this.backendPbsz = true;
    }
    const reply = await this.request(`PROT ${level}`);
    if (reply.code !== 200) return reply;
    this.backendProt = level;
    return undefined;
  }

  private readonly onCommand = (event: LineEvent): void => {
    if (this.done) return;
    try {
      this.command(event);
    } catch (err) {
      this.fail(err); // too many errors
    }
  };

  private command(event: LineEvent): void {
    if (event.kind !== 'line') {
      this.ctx.countError(event.kind === 'tooLong' ? 'line too long' : 'NUL or CR inside a line');
      return this.answer(event.kind === 'tooLong' ? ftpReplies.lineTooLong : ftpReplies.syntax);
    }
    const line = event.line.charCodeAt(0) === 0xff ? event.line.replace(TELNET_PREFIX, '') : event.line;
    if (this.debug) this.ctx.log.debug('client command', { line: redactCommand(line) });
    const space = line.indexOf(' ');
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const arg = space < 0 ? '' : line.slice(space + 1).trim();
    if (verb === 'PASV' || verb === 'EPSV') this.step(this.client, () => this.passive(verb, arg));
    else if (verb === 'PORT' || verb === 'EPRT') this.step(this.client, () => this.active(verb, arg));
    else if (TRANSFER_VERBS.has(verb)) this.transfer(line);
    else if (verb === 'PBSZ' || verb === 'PROT' || verb === 'AUTH' || verb === 'CCC') this.step(this.client, () => this.security(verb, arg));
    else {
      if (verb === 'ABOR') this.abortTransfers();
      if (verb === 'QUIT') this.quitSent = true;
      this.forward(line);
    }
  }

  /** The client hung up (or reset): the session ends at once, as when it leaves mid-command. */
  private readonly onClientEnd = (error?: Error): void => {
    if (this.done) return;
    this.fail(new ClientGoneError(error ? 'CLIENT_ERROR' : 'CLIENT_CLOSED', error ? `client connection error: ${(error as NodeJS.ErrnoException).code ?? error.message}` : 'client closed the connection', error ? { cause: error } : undefined));
  };

  private readonly onReplyLine = (event: LineEvent): void => {
    if (this.done) return;
    try {
      if (event.kind !== 'line') throw new BackendError('BACKEND_PROTOCOL', event.kind === 'tooLong' ? 'reply line too long' : 'NUL or CR inside a reply line');
      const reply = this.framer.push(event.line);
      if (!reply) return;
      this.lastCode = reply.code;
      this.dispatch(reply);
    } catch (err) {
      this.fail(err);
    }
  };

  private readonly onBackendEnd = (): void => {
    if (this.done) return;
    if (this.quitSent) return this.finish({ reason: 'quit' });
    // A backend that said 421 has already told the client it is closing.
    this.finish(this.lastCode === 421 ? { reason: 'backend closed' } : { reason: 'backend closed', goodbye: 'tempFailure' });
  };

  /** Gives a backend reply to whatever it answers: the client, a held transfer, or Concierge itself. */
  private dispatch(reply: FtpReply): void {
    const head = this.pending[0];
    if (!head || head.kind === 'local') return this.client.write(reply.text); // unsolicited (e.g. 421 before a close)
    if (reply.code < 200) {
      if (head.kind !== 'forward') return; // a mark on a request of our own: nothing for the client
      if (head.transfer) head.transfer.started = true;
      return this.client.write(reply.text);
    }
    this.pending.shift();
    if (head.kind === 'internal') head.resolve(reply);
    else if (head.transfer) {
      const t = head.transfer;
      // The replies after this one wait until the transfer is settled: they stay in order.
      if (t.link && t.started && reply.code < 300) return this.step(this.backend, () => this.finishTransfer(t, t.link!, reply));
      this.endTransfer(t, reply.text);
    } else this.client.write(reply.text);
    this.flushLocal();
  }

  /** Concierge's own replies queued behind the backend's. */
  private flushLocal(): void {
    while (this.pending[0]?.kind === 'local') this.client.write((this.pending.shift() as { text: string }).text);
  }

  /**
   * A started transfer's 2xx waits until the backend's EOF has reached the client and is
   * flushed, so the client never takes a truncated file for a whole one.
   */
  private async finishTransfer(t: Transfer, link: DataLink, reply: FtpReply): Promise<void> {
    const outcome = await link.settled();
    if (outcome !== 'complete') this.ctx.log.info('transfer incomplete', { code: reply.code });
    if (this.done) return;
    this.endTransfer(t, outcome === 'complete' ? reply.text : TRANSFER_ABORTED);
    this.flushLocal();
  }

  private endTransfer(t: Transfer, text: string): void {
    if (t.link) {
      t.link.close();
      this.transfers.delete(t.link);
    }
    this.client.write(text);
  }

  /** Concierge's own reply, after the replies still owed for earlier commands. */
  private answer(text: string): void {
    if (this.pending.length === 0) this.client.write(text);
    else this.pending.push({ kind: 'local', text });
  }

  private forward(line: string): void {
    this.backend.writeLine(line);
    this.pending.push(FORWARD);
  }

  /**
   * RFC 4217 after login: PBSZ and PROT are Concierge's (the backend, plaintext or not, gets
   * its own PROT from mirrorProt); AUTH cannot restart a logged-in session's TLS, and CCC
   * (back to a clear control channel) is refused by policy.
   */
  private async security(verb: 'PBSZ' | 'PROT' | 'AUTH' | 'CCC', arg: string): Promise<void> {
    const { tls } = this.ctx;
    if (verb === 'AUTH') {
      this.ctx.countError('AUTH after login');
      return this.answer(tls.active ? '503 TLS is already active.\r\n' : '503 AUTH TLS must come before login.\r\n');
    }
    if (verb === 'CCC') return this.answer('534 The control channel stays protected.\r\n');
    const reply: { text: string; error?: string; level?: 'C' | 'P' } = verb === 'PBSZ' ? answerPbsz(arg, tls, this.protection) : answerProt(arg, tls, this.protection);
    if (reply.error) this.ctx.countError(reply.error);
    const { level } = reply;
    if (level) {
      const refused = await this.mirrorProt(level);
      if (refused) {
        this.ctx.log.warn('backend refused PROT', { level, code: refused.code });
        return this.answer(refused.code >= 400 ? refused.text : `431 The server cannot set PROT ${level} now.\r\n`);
      }
      this.protection.prot = level;
    }
    this.answer(reply.text);
  }

  private transfer(line: string): void {
    if (this.ctx.tls.requireProtP && this.protection.prot !== 'P') {
      this.dropLink();
      this.ctx.log.info('transfer refused: data not protected');
      return this.answer(PROT_P_REQUIRED);
    }
    const link = this.link;
    this.link = undefined;
    if (link) this.transfers.add(link);
    this.backend.writeLine(line);
    this.pending.push({ kind: 'forward', transfer: { link, started: false } });
    link?.start();
  }

  /** ABOR: the data connections are reset now; the backend's 426 / 226 replies pass through. */
  private abortTransfers(): void {
    for (const link of this.transfers) link.abort();
    this.dropLink();
  }

  /** A command Concierge sends the backend for itself; resolves with its final reply. */
  private request(line: string): Promise<FtpReply> {
    return new Promise((resolve) => {
      this.backend.writeLine(line);
      this.pending.push({ kind: 'internal', resolve });
    });
  }

  private dropLink(): void {
    this.link?.close();
    this.link = undefined;
  }

  /** PASV / EPSV: Concierge's own passive listener toward the client, the backend asked per `backendDataMode`. */
  private async passive(verb: 'PASV' | 'EPSV', arg: string): Promise<void> {
    if (verb === 'EPSV' && arg.toUpperCase() === 'ALL') {
      // RFC 2428 §4: from now on the client uses EPSV only. The backend is not told: it keeps
      // whatever mode Concierge asks of it.
      this.epsvAll = true;
      return this.answer('200 EPSV ALL ok.\r\n');
    }
    if (verb === 'PASV' && this.epsvAll) return this.answer('503 PASV not allowed after EPSV ALL.\r\n');
    if (verb === 'EPSV' && arg !== '' && arg !== '1' && arg !== '2') return this.answer('501 Syntax error in parameters or arguments.\r\n');
    this.dropLink();
    const link = this.ctx.openDataLink(this.dataProtection);
    this.link = link;
    let endpoint;
    try {
      endpoint = await link.listenForClient();
    } catch (err) {
      this.ctx.log.warn('passive listener failed', { error: (err as Error).message });
      this.dropLink();
      return this.answer(CANNOT_OPEN);
    }
    if (verb === 'PASV' && endpoint.family !== 4) {
      this.dropLink();
      return this.answer('425 PASV cannot carry an IPv6 address: use EPSV.\r\n');
    }
    // RFC 2428 §2: network protocol 1 is IPv4, 2 is IPv6.
    const protocol = endpoint.family === 4 ? '1' : '2';
    if (verb === 'EPSV' && arg !== '' && arg !== protocol) {
      this.dropLink();
      return this.answer(`522 Network protocol not supported, use (${protocol})\r\n`);
    }
    const failure = await this.prepareBackend(link);
    if (failure) {
      this.dropLink();
      return this.answer(failure);
    }
    this.answer(verb === 'PASV' ? `227 Entering Passive Mode (${formatHostPort(endpoint.address, endpoint.port)}).\r\n` : `229 Entering Extended Passive Mode (|||${endpoint.port}|)\r\n`);
  }

  /** PORT / EPRT: only toward the control connection's own client IP (RFC 2577 §3: no FTP bounce). */
  private async active(verb: 'PORT' | 'EPRT', arg: string): Promise<void> {
    if (this.epsvAll) return this.answer(`503 ${verb} not allowed after EPSV ALL.\r\n`);
    const target = verb === 'PORT' ? parseHostPort(arg) : parseEprt(arg);
    if (!target) return this.answer('501 Syntax error in parameters or arguments.\r\n');
    if (target.host !== this.ctx.clientAddress || target.port < 1024) {
      this.ctx.log.warn('data connection to a third party refused', { verb, host: target.host, port: target.port });
      this.ctx.countError(`${verb} to ${target.host}:${target.port}`);
      return this.answer(`500 Illegal ${verb} command.\r\n`);
    }
    this.dropLink();
    const link = this.ctx.openDataLink(this.dataProtection);
    this.link = link;
    const failure = await this.prepareBackend(link);
    if (failure) {
      this.dropLink();
      return this.answer(failure);
    }
    link.dialClient(target.host, target.port);
    this.answer(`200 ${verb} command successful.\r\n`);
  }

  /**
   * Asks the backend for the data connection: EPSV (PASV if it does not know EPSV) and a dial
   * to the port it names on its control host, or PORT / EPRT toward Concierge's listener on the
   * tenant's source address. Returns the reply for the client when that fails.
   */
  private async prepareBackend(link: DataLink): Promise<string | undefined> {
    if (this.ctx.backendDataMode === 'active') {
      let endpoint;
      try {
        endpoint = await link.listenForBackend();
      } catch (err) {
        this.ctx.log.warn('backend data listener failed', { error: (err as Error).message });
        return CANNOT_OPEN;
      }
      const reply = await this.request(endpoint.family === 4 ? `PORT ${formatHostPort(endpoint.address, endpoint.port)}` : `EPRT |2|${endpoint.address}|${endpoint.port}|`);
      return reply.code >= 200 && reply.code < 300 ? undefined : reply.text;
    }
    if (this.backendKnowsEpsv) {
      const reply = await this.request('EPSV');
      if (reply.code === 229) return this.dialBackend(link, parseEpsvReply(reply.text));
      if (!EPSV_UNKNOWN.has(reply.code)) return reply.code >= 400 ? reply.text : CANNOT_OPEN;
      this.backendKnowsEpsv = false;
    }
    const reply = await this.request('PASV');
    // The address in a 227 is never used (mod_proxy's IgnoreForeignAddress lesson): only its port, on the control host.
    if (reply.code === 227) return this.dialBackend(link, parsePasvReply(reply.text)?.port);
    return reply.code >= 400 ? reply.text : CANNOT_OPEN;
  }

  private dialBackend(link: DataLink, port: number | undefined): string | undefined {
    if (port === undefined) {
      this.ctx.log.warn('backend passive reply without a port');
      return CANNOT_OPEN;
    }
    link.dialBackend(port);
    return undefined;
  }
}

/** The FTP module's post-login hook: relays the control channel until either side ends it. */
export function relayFtpControl(client: LineReader, backend: LineReader, ctx: ControlContext): Promise<ControlOutcome> {
  return new ControlRelay(client, backend, ctx).run();
}
