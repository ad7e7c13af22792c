/**
 * Frames a byte stream into command lines for the demo backend.
 *
 * TCP gives no message boundaries, so a command may arrive in two segments and several
 * pipelined commands in one; lines end on CRLF, and a bare LF is tolerated for hand-typed
 * sessions. The demo keeps its own copy so that it stays independent of the proxy core.
 */

const LF = 0x0a;
const CR = 0x0d;

/** What `LineReader.push()` found in one chunk, in arrival order. */
export type LineEvent = { kind: 'line'; line: string } | { kind: 'tooLong' };

/** Splits incoming Buffers into lines of at most `maxLineOctets` octets (CRLF included). */
export class LineReader {
  private pending: Buffer[] = [];
  private pendingOctets = 0;
  /** Set after an over-long line was reported, until its terminator goes by. */
  private discarding = false;

  constructor(private readonly maxLineOctets: number) {}

  /**
   * Feeds one chunk; returns every line it completes, terminator removed. Lines are latin1 so
   * that each octet stays one character and 8-bit user names survive unchanged.
   */
  push(chunk: Buffer): LineEvent[] {
    const events: LineEvent[] = [];
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf + 1;
      const piece = chunk.subarray(start, end);
      start = end;
      if (this.discarding) {
        if (lf !== -1) this.discarding = false;
        continue;
      }
      this.pending.push(piece);
      this.pendingOctets += piece.length;
      const line = lf === -1 ? null : Buffer.concat(this.pending, this.pendingOctets);
      // Measured without the terminator; a trailing CR of an unfinished line may be half of one.
      const contentOctets = line === null
        ? this.pendingOctets - (piece[piece.length - 1] === CR ? 1 : 0)
        : line.length - terminatorLength(line);
      if (contentOctets > this.maxLineOctets - 2) {
        events.push({ kind: 'tooLong' });
        this.reset();
        this.discarding = line === null;
        continue;
      }
      if (line === null) break;
      events.push({ kind: 'line', line: line.toString('latin1', 0, contentOctets) });
      this.reset();
    }
    return events;
  }

  private reset(): void {
    this.pending = [];
    this.pendingOctets = 0;
  }
}

function terminatorLength(line: Buffer): number {
  return line.length >= 2 && line[line.length - 2] === CR ? 2 : 1;
}
