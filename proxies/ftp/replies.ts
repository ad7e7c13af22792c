import { BackendError, type ReplyKind } from '../../src/errors.js';
import type { LineChannel } from '../../src/line-channel.js';

/** The core's outcomes in FTP words (RFC 959 §4.2 reply codes). */
export const ftpReplies: Record<ReplyKind, string> = {
  syntax: '500 Syntax error, command unrecognized.\r\n',
  badSequence: '530 Please login with USER and PASS.\r\n',
  lineTooLong: '500 Command line too long.\r\n',
  authFailed: '530 Login incorrect.\r\n',
  tempFailure: '421 Service not available, closing control connection.\r\n',
  tooManyErrors: '421 Too many errors, closing control connection.\r\n',
  timeout: '421 Timeout, closing control connection.\r\n',
  shuttingDown: '421 Server shutting down, closing control connection.\r\n',
  tooManyConnections: '421 Too many connections, try again later.\r\n',
};

/**
 * What Concierge answers to FEAT before login. Conservative on purpose: only what Concierge
 * itself guarantees whatever the backend (the data-channel commands it implements, and UTF-8
 * since it passes bytes through untouched). SIZE, MDTM, REST STREAM, MLST depend on the
 * backend: a client asks FEAT again after login, and that FEAT goes to the backend.
 */
export const PRE_LOGIN_FEATURES = ['EPRT', 'EPSV', 'PASV', 'UTF8'];

/** RFC 4217 §6: what FEAT adds on a listener with TLS. */
export const TLS_FEATURES = ['AUTH TLS', 'PBSZ', 'PROT'];

/** USER in the clear where the listener requires TLS. */
export const TLS_REQUIRED = '530 TLS required: send AUTH TLS first.\r\n';

export const DEFAULT_BANNER = 'FTP server ready';

/** One reply, possibly multi-line (RFC 959 §4.2): `code` and the whole text, CRLFs included. */
export interface FtpReply {
  readonly code: number;
  readonly text: string;
}

/** A multi-line reply longer than this is a broken or hostile backend. */
const MAX_REPLY_BYTES = 64 * 1024;

const FIRST_LINE = /^([1-5]\d\d)(?:([ -]).*)?$/;

/**
 * Collects lines into replies: `123-First line` … `123 Last line`. Lines in between may say
 * anything, even start with another code. Feed it lines; it returns a reply when one is complete.
 */
export class ReplyFramer {
  private code: string | undefined;
  private lines: string[] = [];
  private bytes = 0;

  /** Throws BackendError on a line that cannot start a reply, or an unbounded one. */
  push(line: string): FtpReply | undefined {
    if (this.code === undefined) {
      const m = FIRST_LINE.exec(line);
      if (!m) throw new BackendError('BACKEND_PROTOCOL', 'not an FTP reply');
      if (m[2] !== '-') return { code: Number(m[1]), text: `${line}\r\n` };
      this.code = m[1]!;
      this.lines = [line];
      this.bytes = line.length + 2;
      return undefined;
    }
    this.lines.push(line);
    this.bytes += line.length + 2;
    if (this.bytes > MAX_REPLY_BYTES) throw new BackendError('BACKEND_PROTOCOL', 'multi-line reply too long');
    if (line === this.code || line.startsWith(`${this.code} `)) {
      const reply = { code: Number(this.code), text: `${this.lines.join('\r\n')}\r\n` };
      this.code = undefined;
      this.lines = [];
      return reply;
    }
    return undefined;
  }
}

/** Reads one whole reply from a backend; `timeoutMs` bounds each line's wait. */
export async function readReply(backend: LineChannel, framer: ReplyFramer, timeoutMs?: number): Promise<FtpReply> {
  for (;;) {
    const event = await backend.next(timeoutMs === undefined ? {} : { timeoutMs });
    if (event.kind !== 'line') throw new BackendError('BACKEND_PROTOCOL', event.kind === 'tooLong' ? 'reply line too long' : 'NUL or CR inside a reply line');
    const reply = framer.push(event.line);
    if (reply) return reply;
  }
}
