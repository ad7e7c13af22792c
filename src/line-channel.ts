import type { Socket } from 'node:net';
import { BackendError, ClientGoneError } from './errors.js';
import { LineFraming } from './line-framing.js';
import type { ReadHook } from './read-hook.js';

/** One framed line, or what went wrong with it. Lines are latin1 strings: every byte kept as is. */
export type LineEvent =
  | { readonly kind: 'line'; readonly line: string }
  /** Longer than the limit: the rest of that line is discarded unseen. */
  | { readonly kind: 'tooLong' }
  /** Contains NUL or a bare CR: never to be forwarded into another protocol line. */
  | { readonly kind: 'invalid' };

/** Bytes kept unread before the socket is paused: pipelined commands wait in the kernel, not here. */
const MAX_BUFFERED = 64 * 1024;

/**
 * CRLF framing over a socket for the login phase. Lines are parsed only when asked for,
 * so `release()` hands back exactly the bytes not yet consumed (pipelined commands).
 */
export class LineChannel {
  private readonly framing = new LineFraming();
  /** Why the peer is gone; the Error is built only when a reader needs it (stacks cost). */
  private ended: { message: string; cause?: Error } | undefined;
  private released = false;
  private timer: NodeJS.Timeout | undefined;
  private timerMs = 0;
  /**
   * The reader waiting in next() (`waitLimit` set) or nextChunk() (`waitLimit` undefined), settled
   * straight from the socket's events: no async frame or wake-up promise per line. Kept as fields,
   * not an object, since a session waits a dozen times.
   */
  private resolveWait: ((value: LineEvent | Buffer) => void) | undefined;
  private rejectWait: ((err: Error) => void) | undefined;
  private waitLimit: number | undefined;
  /** The current wait's timeout, when it has one: only such a wait is ended by the timer. */
  private waitTimeoutMs: number | undefined;

  /** With a `hook`, chunks come from the socket's onread callback instead of 'data' events. */
  constructor(
    private sock: Socket,
    readonly side: 'client' | 'backend',
    private readonly maxLineLength: number,
    private hook?: ReadHook,
  ) {
    this.listen();
  }

  /** The socket lines are read from (a TLS socket once upgraded). */
  get socket(): Socket {
    return this.sock;
  }

  private listen(): void {
    const { sock, hook } = this;
    if (hook) hook.attach(this.onHookData);
    else sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('close', this.onEnd);
    sock.on('error', this.onError);
  }

  private unlisten(): void {
    this.hook?.detach();
    this.sock.off('data', this.onData);
    this.sock.off('end', this.onEnd);
    this.sock.off('close', this.onEnd);
    this.sock.off('error', this.onError);
  }

  /**
   * STARTTLS, step 1: stops reading the plaintext socket and drops what it held. Bytes a client
   * sent after its STARTTLS line and before the handshake are never executed (the command
   * injection of CVE-2011-0411 and its kind). Returns how many bytes were dropped; the socket is
   * left paused for the TLS layer.
   */
  detachForTls(): number {
    const dropped = this.framing.size;
    this.unlisten();
    this.hook = undefined;
    this.sock.pause();
    this.framing.reset();
    return dropped;
  }

  /** STARTTLS, step 2: frames lines on the TLS socket from now on. */
  attachTls(socket: Socket): void {
    this.sock = socket;
    this.listen();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.framing.append(chunk);
    if (this.framing.size > MAX_BUFFERED) this.socket.pause();
    this.notify();
  };

  private readonly onHookData = (chunk: Buffer): boolean => {
    this.onData(chunk);
    return !this.socket.isPaused();
  };

  private readonly onEnd = (): void => {
    clearTimeout(this.timer);
    this.ended ??= { message: 'closed the connection' };
    this.notify();
  };

  private readonly onError = (err: Error): void => {
    this.ended ??= { message: `connection error: ${(err as NodeJS.ErrnoException).code ?? err.message}`, cause: err };
    this.notify();
  };

  private closedError(): Error {
    const { message, cause } = this.ended!;
    return this.side === 'client'
      ? new ClientGoneError(cause ? 'CLIENT_ERROR' : 'CLIENT_CLOSED', `client ${message}`, { cause })
      : new BackendError('BACKEND_CLOSED', `backend ${message}`, { cause });
  }

  /** Settles the waiting reader if it can be: a line (or chunk) is here, or the peer is gone. */
  private notify(): void {
    const resolve = this.resolveWait;
    if (!resolve) return;
    const value = this.waitLimit === undefined ? this.takeChunk() : this.framing.take(this.waitLimit);
    if (value) {
      this.endWait();
      this.drained();
      return resolve(value);
    }
    if (this.ended) {
      const reject = this.rejectWait!;
      this.endWait();
      reject(this.closedError());
    }
  }

  private takeChunk(): Buffer | undefined {
    return this.framing.size > 0 ? this.framing.takeAll() : undefined;
  }

  private endWait(): void {
    this.resolveWait = undefined;
    this.rejectWait = undefined;
    this.waitTimeoutMs = undefined;
  }

  private wait<T extends LineEvent | Buffer>(limit: number | undefined, timeoutMs: number | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.resolveWait = resolve as (value: LineEvent | Buffer) => void;
      this.rejectWait = reject;
      this.waitLimit = limit;
      this.waitTimeoutMs = timeoutMs;
      if (timeoutMs !== undefined) this.armTimer(timeoutMs);
    });
  }

  /** Reading resumes once what is held has been taken down to half the bound. */
  private drained(): void {
    if (this.framing.size <= MAX_BUFFERED / 2 && this.socket.isPaused() && !this.released) this.socket.resume();
  }

  /**
   * The next line. Rejects with ClientGoneError / BackendError when the peer goes away,
   * or BackendError BACKEND_TIMEOUT when `timeoutMs` passes first.
   */
  next(options?: { timeoutMs?: number; maxLineLength?: number }): Promise<LineEvent> {
    const limit = options?.maxLineLength ?? this.maxLineLength;
    const event = this.framing.take(limit);
    this.drained();
    if (event) return Promise.resolve(event);
    if (this.ended) return Promise.reject(this.closedError());
    return this.wait(limit, options?.timeoutMs);
  }

  /**
   * One timer per channel, restarted at each wait: a login replay waits for several replies,
   * and a fresh timer for each costs more than `refresh()`. A firing while no timed wait is open is ignored.
   */
  private armTimer(ms: number): void {
    if (this.timer && this.timerMs === ms) {
      this.timer.refresh();
      return;
    }
    clearTimeout(this.timer);
    this.timerMs = ms;
    this.timer = setTimeout(() => this.timeOut(), ms);
  }

  private timeOut(): void {
    const reject = this.rejectWait;
    const ms = this.waitTimeoutMs;
    if (!reject || ms === undefined) return;
    this.endWait();
    reject(new BackendError('BACKEND_TIMEOUT', `no reply from the ${this.side} within ${ms} ms`));
  }

  /**
   * Everything received and not yet taken, as one chunk, waiting for bytes when there are none
   * (SMTP DATA: a body streamed as it comes). Rejects like `next()` when the peer goes away.
   * Partial-line state is dropped: call it at a line boundary.
   */
  nextChunk(): Promise<Buffer> {
    const chunk = this.takeChunk();
    if (chunk) {
      this.drained();
      return Promise.resolve(chunk);
    }
    if (this.ended) return Promise.reject(this.closedError());
    return this.wait(undefined, undefined);
  }

  /** Puts bytes taken by `nextChunk()` but not used back in front of the buffer. */
  unread(bytes: Buffer): void {
    this.framing.unread(bytes);
  }

  /** Writes bytes as they are; resolves at once, or once the socket has drained (backpressure). */
  async writeBytes(bytes: Buffer): Promise<void> {
    if (this.socket.write(bytes) || this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** The peer has neither closed nor failed. */
  get open(): boolean {
    return this.ended === undefined;
  }

  /** Bytes received and not yet taken as lines (pipelined commands). */
  get buffered(): number {
    return this.framing.size;
  }

  /** Writes one whole line in a single write (ftp-srv-style peers split per segment). */
  writeLine(line: string): void {
    this.socket.write(`${line}\r\n`, 'latin1');
  }

  /** Writes text as is (multi-line replies carry their own CRLFs). */
  write(text: string): void {
    this.socket.write(text, 'latin1');
  }

  /** Stops framing and returns the bytes received but not consumed; the socket is left paused. */
  release(): Buffer {
    this.released = true;
    clearTimeout(this.timer);
    this.unlisten();
    this.socket.pause();
    return this.framing.takeAll();
  }
}
