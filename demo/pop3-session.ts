/**
 * One POP3 conversation on one socket: frames lines, runs them through the state table one
 * at a time (so pipelined commands are answered in order), and owns the single close path.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { LineReader, type LineEvent } from './line-reader.js';
import type { MaildirStore, StoredMessage } from './maildir.js';
import { findCommand, isKnownVerb } from './pop3-commands.js';

/** RFC 1939 §3 states; 'update' is entered by QUIT from 'transaction' and reads no more. */
export type Pop3State = 'authorization' | 'transaction' | 'update';

/** What the server records about each accepted connection. */
export interface ConnectionRecord {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  user?: string;
  authenticated: boolean;
  method?: 'USER' | 'PLAIN';
}

/** An open maildrop: the listing taken at login plus the DELE marks (RFC 1939 §6). */
export interface Maildrop {
  readonly user: string;
  readonly messages: readonly StoredMessage[];
  readonly deleted: Set<number>;
}

/** What a session needs from the server that accepted it. */
export interface SessionServices {
  readonly store: MaildirStore;
  readonly readOnly: boolean;
  readonly greeting: string;
  /** Exclusive access per RFC 1939 §8; false when another session holds the maildrop. */
  lockMaildrop(user: string): boolean;
  unlockMaildrop(user: string): void;
  onLogin(record: ConnectionRecord): void;
}

/** RFC 2449 §4: command lines are at most 255 octets including the CRLF. */
export const maxLineOctets = 255;
/** Lines parsed ahead of the one being answered before the socket is paused. */
const maxQueuedLines = 64;

/** The conversation state and reply helpers that the command handlers work on. */
export class Pop3Session {
  state: Pop3State = 'authorization';
  /** The name given by USER, waiting for PASS. */
  pendingUser: string | null = null;
  maildrop: Maildrop | null = null;
  /** Set while an AUTH exchange waits for the client's next line (RFC 5034 §4). */
  continuation: ((line: string) => Promise<void> | void) | null = null;

  private readonly reader = new LineReader(maxLineOctets);
  private readonly queue: LineEvent[] = [];
  private draining = false;
  private ending = false;
  /** The client has half-closed: answer what it sent, then close our side too. */
  private inputEnded = false;
  private readonly aborter = new AbortController();
  private lockedUser: string | null = null;

  constructor(
    readonly socket: Socket,
    readonly record: ConnectionRecord,
    readonly services: SessionServices,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => {
      this.inputEnded = true;
      this.startDraining();
    });
    socket.on('close', () => this.release());
    this.reply(`+OK ${services.greeting}`);
  }

  /** Aborted when the socket closes, ending any transfer in progress. */
  get signal(): AbortSignal {
    return this.aborter.signal;
  }

  /** Writes one reply line; silently dropped once the socket can no longer be written. */
  reply(line: string): void {
    if (this.socket.writable) this.socket.write(`${line}\r\n`, 'latin1');
  }

  /** Writes a multi-line reply in one write, dot-stuffed and terminated (RFC 1939 §3). */
  replyLines(first: string, lines: readonly string[]): void {
    const body = lines.map((line) => (line.startsWith('.') ? `.${line}` : line));
    this.reply([first, ...body, '.'].join('\r\n'));
  }

  /** Takes the maildrop lock when the session may change it; read-only sessions share freely. */
  lockMaildrop(user: string): boolean {
    if (this.services.readOnly) return true;
    if (!this.services.lockMaildrop(user)) return false;
    this.lockedUser = user;
    return true;
  }

  /** Gives the maildrop lock back, if this session holds one. */
  unlockMaildrop(): void {
    if (this.lockedUser !== null) this.services.unlockMaildrop(this.lockedUser);
    this.lockedUser = null;
  }

  /** Says goodbye: flushes what was written, then half-closes; the peer closes the rest. */
  end(): void {
    this.ending = true;
    this.queue.length = 0;
    // Released now, not at 'close': the client may log in again as soon as it reads the reply.
    this.unlockMaildrop();
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    if (this.ending) return;
    for (const event of this.reader.push(chunk)) this.queue.push(event);
    if (this.queue.length > maxQueuedLines) this.socket.pause();
    this.startDraining();
  }

  private startDraining(): void {
    // answer() already turns handler failures into replies; this is the last line of defence.
    this.drain().catch(() => this.socket.destroy());
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let event = this.queue.shift(); event !== undefined && !this.ending; event = this.queue.shift()) {
        // A client that sends without reading must not grow our output buffer without bound.
        if (this.socket.writableNeedDrain) await once(this.socket, 'drain', { signal: this.signal });
        await this.answer(event);
      }
    } finally {
      this.draining = false;
    }
    if (this.ending) return;
    if (this.inputEnded) this.end();
    else if (this.socket.isPaused()) this.socket.resume();
  }

  private async answer(event: LineEvent): Promise<void> {
    if (event.kind === 'tooLong') {
      this.reply('-ERR Line too long.');
      this.end();
      return;
    }
    try {
      await this.dispatch(event.line);
    } catch {
      // Never echo what went wrong inside: the client gets a generic temporary failure.
      this.reply('-ERR [SYS/TEMP] Internal server error.');
    }
  }

  private async dispatch(line: string): Promise<void> {
    const continuation = this.continuation;
    if (continuation !== null) {
      this.continuation = null;
      await continuation(line);
      return;
    }
    const space = line.indexOf(' ');
    const verb = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const args = space === -1 ? '' : line.slice(space + 1);
    const handler = this.state === 'update' ? undefined : findCommand(this.state, verb);
    if (handler !== undefined) await handler(this, args);
    else if (isKnownVerb(verb)) this.reply('-ERR Command not valid in this state.');
    else this.reply('-ERR Unknown command.');
  }

  private release(): void {
    this.ending = true;
    this.queue.length = 0;
    this.aborter.abort();
    this.unlockMaildrop();
  }
}
