import type { LineEvent } from './line-channel.js';

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
const TOO_LONG: LineEvent = { kind: 'tooLong' };
const INVALID: LineEvent = { kind: 'invalid' };

/**
 * CRLF framing of a byte stream, for both line readers (LineChannel, promise per line; LineReader,
 * callbacks). A line longer than the limit comes as `tooLong` and the rest of it is dropped
 * unseen; a line holding NUL or a bare CR comes as `invalid`: neither is ever handed on as text.
 * Lines are latin1 strings, every byte kept as is.
 */
export class LineFraming {
  private buffer: Buffer = EMPTY;
  /** Inside an over-long line: bytes are dropped up to its LF. */
  private discarding = false;

  /** Bytes received and not yet taken. */
  get size(): number {
    return this.buffer.length;
  }

  append(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** Puts bytes back in front (taken by `takeAll()` but not used). */
  unread(bytes: Buffer): void {
    if (bytes.length > 0) this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([bytes, this.buffer]);
  }

  /** Everything not yet taken, as one chunk (SMTP DATA; a hand-over of pipelined bytes). */
  takeAll(): Buffer {
    const all = this.buffer;
    this.buffer = EMPTY;
    return all;
  }

  /** Forgets everything, a partial over-long line included (STARTTLS: plaintext bytes are dropped). */
  reset(): void {
    this.buffer = EMPTY;
    this.discarding = false;
  }

  /** The next complete line, or undefined when more bytes are needed. */
  take(limit: number): LineEvent | undefined {
    for (;;) {
      const { buffer } = this;
      const lf = buffer.indexOf(LF);
      if (this.discarding) {
        if (lf < 0) {
          this.buffer = EMPTY;
          return undefined;
        }
        this.buffer = buffer.subarray(lf + 1);
        this.discarding = false;
        continue;
      }
      if (lf < 0) {
        if (buffer.length < limit) return undefined;
        this.buffer = EMPTY;
        this.discarding = true;
        return TOO_LONG;
      }
      this.buffer = buffer.subarray(lf + 1);
      if (lf + 1 > limit) return TOO_LONG;
      const end = lf > 0 && buffer[lf - 1] === CR ? lf - 1 : lf;
      const line = buffer.subarray(0, end);
      if (line.includes(0) || line.includes(CR)) return INVALID;
      return { kind: 'line', line: buffer.toString('latin1', 0, end) };
    }
  }
}
