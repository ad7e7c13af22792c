const MARK = Buffer.from('\r\n.\r\n', 'latin1');

/**
 * Finds the end of a DATA body (RFC 5321 §4.1.1.4: CRLF "." CRLF) in a byte stream cut into
 * arbitrary chunks, without copying the chunks. The body starts at a line start, as if after a CRLF.
 */
export class DataEndScanner {
  /** The last bytes seen (at most 4), for a mark that straddles two chunks. */
  private tail: Buffer = Buffer.from('\r\n', 'latin1');

  /** The index in `chunk` just past the end mark, or -1 when the body goes on. */
  scan(chunk: Buffer): number {
    const head = Buffer.concat([this.tail, chunk.subarray(0, 4)]);
    const across = head.indexOf(MARK);
    if (across >= 0) return across + MARK.length - this.tail.length;
    const inside = chunk.indexOf(MARK);
    if (inside >= 0) return inside + MARK.length;
    const seen = chunk.length >= 4 ? chunk : Buffer.concat([this.tail, chunk]);
    this.tail = Buffer.from(seen.subarray(Math.max(0, seen.length - 4)));
    return -1;
  }
}

const CR = 0x0d;
const LF = 0x0a;
/** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets, CRLF included. */
const MAX_TEXT_LINE = 1000;

/** Why a body must not be delivered. */
export type BodyFault = 'bareLineEnd' | 'lineTooLong';

/**
 * Checks the lines of a DATA body cut into arbitrary chunks:
 * - a CR or LF that is not part of a CRLF (RFC 5321 §2.3.8 allows them only together). A backend
 *   that also ended a message at a bare LF would see an earlier end than Concierge does and read
 *   the rest of the body as commands (SMTP smuggling), so such a body is never delivered;
 * - a line longer than 1000 octets.
 */
export class BodyLineChecker {
  /** The last byte of the previous chunk: a CR there pairs with an LF at the start of the next. */
  private last = LF;
  /** Octets of the current line so far, CR included. */
  private lineLength = 0;

  /** The first fault in `chunk`, if any (a CR at its very end waits for the next chunk). */
  scan(chunk: Buffer): BodyFault | undefined {
    if (chunk.length === 0) return undefined;
    if (this.last === CR && chunk[0] !== LF) return 'bareLineEnd';
    let lineStart = 0;
    for (let lf = chunk.indexOf(LF); lf >= 0; lf = chunk.indexOf(LF, lf + 1)) {
      if ((lf === 0 ? this.last : chunk[lf - 1]) !== CR) return 'bareLineEnd';
      if (this.lineLength + (lf + 1 - lineStart) > MAX_TEXT_LINE) return 'lineTooLong';
      this.lineLength = 0;
      lineStart = lf + 1;
    }
    for (let cr = chunk.indexOf(CR); cr >= 0 && cr < chunk.length - 1; cr = chunk.indexOf(CR, cr + 1)) {
      if (chunk[cr + 1] !== LF) return 'bareLineEnd';
    }
    this.lineLength += chunk.length - lineStart;
    // The CRLF still to come would take the line past the limit.
    if (this.lineLength + (chunk[chunk.length - 1] === CR ? 1 : 2) > MAX_TEXT_LINE) return 'lineTooLong';
    this.last = chunk[chunk.length - 1]!;
    return undefined;
  }
}
