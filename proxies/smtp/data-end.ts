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

/**
 * Finds a CR or LF that is not part of a CRLF in a DATA body cut into arbitrary chunks
 * (RFC 5321 §2.3.8 allows them only together). A backend that also ends a message at a bare
 * LF would see an earlier end than Concierge does, and read the rest of the body as commands
 * (SMTP smuggling); so such a body is never delivered.
 */
export class BareLineEndScanner {
  /** The last byte of the previous chunk: a CR there pairs with an LF at the start of the next. */
  private last = LF;

  /** True when `chunk` holds a bare CR or LF (a CR at its very end waits for the next chunk). */
  scan(chunk: Buffer): boolean {
    if (chunk.length === 0) return false;
    if (this.last === CR && chunk[0] !== LF) return true;
    for (let lf = chunk.indexOf(LF); lf >= 0; lf = chunk.indexOf(LF, lf + 1)) {
      if ((lf === 0 ? this.last : chunk[lf - 1]) !== CR) return true;
    }
    for (let cr = chunk.indexOf(CR); cr >= 0 && cr < chunk.length - 1; cr = chunk.indexOf(CR, cr + 1)) {
      if (chunk[cr + 1] !== LF) return true;
    }
    this.last = chunk[chunk.length - 1]!;
    return false;
  }
}
