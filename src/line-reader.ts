import type { Socket } from 'node:net';
import type { LineChannel, LineEvent } from './line-channel.js';
import type { ReadHook } from './read-hook.js';

const LF = 0x0a;
const CR = 0x0d;
/** Bytes kept undelivered (while held) before the socket is paused: the rest waits in the kernel. */
const MAX_BUFFERED = 64 * 1024;

/** What a LineReader calls: each framed line in order, then the end once, after the last line. */
export interface LineHandlers {
  line(event: LineEvent): void;
  /** The peer closed, reset or failed; `error` is the socket's error, if any. */
  end(error?: Error): void;
}

/**
 * CRLF framing with callbacks: each line is handed over as it arrives, with no promise or timer
 * per line (a logged-in FTP control channel is relayed line by line for its whole life, and a
 * promise per line was measurable per session). Same framing as LineChannel: over-long lines and
 * lines with NUL or a bare CR come as `tooLong` / `invalid`, never as text. `hold()` stops the
 * delivery while the consumer finishes an asynchronous step; the lines wait in order.
 */
export class LineReader {
  private buffer: Buffer;
  private discarding = false;
  private handlers: LineHandlers | undefined;
  private held = true;
  private delivering = false;
  private ended = false;
  private endError: Error | undefined;
  private endReported = false;
  private detached = false;

  private constructor(
    private readonly socket: Socket,
    private readonly maxLineLength: number,
    private readonly hook: ReadHook | undefined,
    initial: Buffer,
  ) {
    this.buffer = initial;
    if (hook) hook.attach(this.onHookData);
    else socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
    socket.resume();
  }

  /**
   * Frames what `channel` framed until now, from the bytes it had not consumed on: it stops
   * reading (LineChannel.release) and this reader takes the socket. `hook`: the socket's onread
   * hook, when it has one (sockets Concierge dialled). Nothing is delivered before `start()`.
   */
  static takeOver(channel: LineChannel, maxLineLength: number, hook?: ReadHook): LineReader {
    const rest = channel.release();
    return new LineReader(channel.socket, maxLineLength, hook, rest);
  }

  /**
   * Names the consumer and starts delivering: lines already buffered go at once. `held`: only
   * names it; delivery starts at `resume()` (the consumer has a step to finish first).
   */
  start(handlers: LineHandlers, held = false): void {
    this.handlers = handlers;
    if (!held) this.resume();
  }

  /** Stops delivering until `resume()`; what arrives meanwhile is buffered (and the socket paused past a bound). */
  hold(): void {
    this.held = true;
  }

  resume(): void {
    this.held = false;
    this.deliver();
  }

  /** Writes one whole line in a single write (ftp-srv-style peers split per segment). */
  writeLine(line: string): void {
    this.socket.write(`${line}\r\n`, 'latin1');
  }

  /** Writes text as is (multi-line replies carry their own CRLFs). */
  write(text: string): void {
    this.socket.write(text, 'latin1');
  }

  /** Stops reading and delivering for good; the socket is left to its owner. */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.held = true;
    this.hook?.detach();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.deliver();
    if (this.buffer.length > MAX_BUFFERED) this.socket.pause();
  };

  private readonly onHookData = (chunk: Buffer): boolean => {
    this.onData(chunk);
    return !this.socket.isPaused();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.deliver();
  };

  private readonly onError = (err: Error): void => {
    this.endError ??= err;
    this.onEnd();
  };

  /** Hands over every complete line (and then the end) until held; re-entrant calls return at once. */
  private deliver(): void {
    if (this.delivering) return;
    this.delivering = true;
    try {
      while (!this.held && this.handlers) {
        const event = this.take();
        if (event) {
          this.handlers.line(event);
          continue;
        }
        if (this.ended && !this.endReported) {
          this.endReported = true;
          this.handlers.end(this.endError);
        }
        break;
      }
    } finally {
      this.delivering = false;
    }
    if (this.buffer.length <= MAX_BUFFERED / 2 && this.socket.isPaused() && !this.detached && !this.ended) this.socket.resume();
  }

  /** The next complete line out of the buffer, or undefined when more bytes are needed. */
  private take(): LineEvent | undefined {
    const limit = this.maxLineLength;
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

const EMPTY = Buffer.alloc(0);
const TOO_LONG: LineEvent = { kind: 'tooLong' };
const INVALID: LineEvent = { kind: 'invalid' };
