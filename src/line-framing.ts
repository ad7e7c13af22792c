import type { LineEvent } from './line-channel.js';

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
const TOO_LONG: LineEvent = { kind: 'tooLong' };
const INVALID: LineEvent = { kind: 'invalid' };
/** Up to this many bytes a line is scanned in JavaScript; a longer one by Buffer.indexOf. */
const SHORT_LINE = 256;

/**
 * CRLF framing of a byte stream, for both line readers (LineChannel, promise per line; LineReader,
 * callbacks). A line longer than the limit comes as `tooLong` and the rest of it is dropped
 * unseen; a line holding NUL or a bare CR comes as `invalid`: neither is ever handed on as text.
 * Lines are latin1 strings, every byte kept as is.
 */
export class LineFraming {
  /** Bytes from `start` on are not yet taken: taking a line moves `start` rather than slicing a new Buffer. */
  private buffer: Buffer = EMPTY;
  private start = 0;
  /** Inside an over-long line: bytes are dropped up to its LF. */
  private discarding = false;

  /** Bytes received and not yet taken. */
  get size(): number {
    return this.buffer.length - this.start;
  }

  append(chunk: Buffer): void {
    if (this.size === 0) this.keep(chunk);
    else this.keep(Buffer.concat([this.rest(), chunk]));
  }

  /** Puts bytes back in front (taken by `takeAll()` but not used). */
  unread(bytes: Buffer): void {
    if (bytes.length > 0) this.keep(this.size === 0 ? bytes : Buffer.concat([bytes, this.rest()]));
  }

  /** Everything not yet taken, as one chunk (SMTP DATA; a hand-over of pipelined bytes). */
  takeAll(): Buffer {
    const all = this.rest();
    this.keep(EMPTY);
    return all;
  }

  /** Forgets everything, a partial over-long line included (STARTTLS: plaintext bytes are dropped). */
  reset(): void {
    this.keep(EMPTY);
    this.discarding = false;
  }

  /** The next complete line, or undefined when more bytes are needed. */
  take(limit: number): LineEvent | undefined {
    for (;;) {
      const { buffer, start } = this;
      const end = buffer.length;
      if (start === end) {
        if (start > 0) this.keep(EMPTY);
        return undefined;
      }
      if (this.discarding) {
        const lf = buffer.indexOf(LF, start);
        if (lf < 0) {
          this.keep(EMPTY);
          return undefined;
        }
        this.start = lf + 1;
        this.discarding = false;
        continue;
      }
      // Command lines are short: one pass in JavaScript finds the LF and any NUL or CR, where
      // indexOf plus two includes() would be three calls into C++ per line.
      let lf = -1;
      let odd = false;
      const scanEnd = Math.min(end, start + SHORT_LINE);
      for (let i = start; i < scanEnd; i++) {
        const byte = buffer[i]!;
        if (byte === LF) {
          lf = i;
          break;
        }
        if (byte === 0 || (byte === CR && buffer[i + 1] !== LF)) odd = true;
      }
      if (lf < 0 && scanEnd < end) {
        lf = buffer.indexOf(LF, scanEnd);
        odd = true; // the long way: checked below
      }
      if (lf < 0) {
        if (end - start < limit) return undefined;
        this.keep(EMPTY);
        this.discarding = true;
        return TOO_LONG;
      }
      this.start = lf + 1;
      if (lf + 1 - start > limit) return TOO_LONG;
      const textEnd = lf > start && buffer[lf - 1] === CR ? lf - 1 : lf;
      if (odd) {
        const text = buffer.subarray(start, textEnd);
        if (text.includes(0) || text.includes(CR)) return INVALID;
      }
      return { kind: 'line', line: buffer.toString('latin1', start, textEnd) };
    }
  }

  private rest(): Buffer {
    return this.start === 0 ? this.buffer : this.buffer.subarray(this.start);
  }

  private keep(buffer: Buffer): void {
    this.buffer = buffer;
    this.start = 0;
  }
}
