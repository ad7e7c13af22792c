import type { Socket } from 'node:net';
import type { LineChannel, LineEvent } from './line-channel.js';
import { LineFraming } from './line-framing.js';
import type { ReadHook } from './read-hook.js';

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
  private readonly framing = new LineFraming();
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
    this.framing.append(initial);
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
    this.framing.append(chunk);
    this.deliver();
    if (this.framing.size > MAX_BUFFERED) this.socket.pause();
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
        const event = this.framing.take(this.maxLineLength);
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
    if (this.framing.size <= MAX_BUFFERED / 2 && this.socket.isPaused() && !this.detached && !this.ended) this.socket.resume();
  }
}
