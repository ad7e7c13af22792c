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
