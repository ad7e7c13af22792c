/**
 * Closed-loop POP3 login load: C clients, each looping connect (TCP, or TLS for POP3S) →
 * greeting → USER → PASS → STAT → QUIT → server close, for D seconds. Raw sockets and a small state machine per session
 * (no promises, no line-reader objects) keep the generator's own CPU per session low, since on
 * a 2-core machine it competes with the proxy and the backend.
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { TLSSocket } from 'node:tls';
import type { Account } from './mail-data.js';
import { connectTo, type Endpoint } from './net-util.js';

export interface LoginLoadOptions {
  readonly target: Endpoint;
  /** Client w always logs in as accounts[w % accounts.length] (the demo backend locks a mailbox per session). */
  readonly accounts: readonly Account[];
  readonly concurrency: number;
  readonly durationS: number;
  /** STAT must report this many messages: proof that the login reached the right mailbox. */
  readonly expectStat: number;
  readonly timeoutMs: number;
  /** TLS targets: each client offers the last session it was given, as a mail client that keeps its ticket does. */
  readonly resumeTls?: boolean;
}

export interface LoginLoadResult {
  readonly sessions: number;
  readonly errors: number;
  readonly errorKinds: Record<string, number>;
  readonly elapsedS: number;
  readonly sessionsPerS: number;
  /** Whole session, connect() to the server's close, in ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** TLS handshakes the server resumed (isSessionReused), of all that completed. */
  readonly tlsResumed: number;
  readonly tlsHandshakes: number;
}

const STEP_NAMES = ['greeting', 'USER', 'PASS', 'STAT', 'QUIT', 'close'] as const;
const GREETING = 0;
const USER = 1;
const PASS = 2;
const STAT = 3;
const QUIT = 4;
const CLOSING = 5;

/** What a TLS session reports, and the session it offers for resumption. */
interface TlsHooks {
  readonly offer: Buffer | undefined;
  readonly keep: ((session: Buffer) => void) | undefined;
  readonly handshake: (resumed: boolean) => void;
}

/** One running session; `finish` is called exactly once. */
class Session {
  readonly startedAt = performance.now();
  private step = GREETING;
  private buf = '';
  private failed: string | undefined;
  private done = false;
  readonly socket: net.Socket;

  constructor(
    target: Endpoint,
    private readonly account: Account,
    private readonly expectStat: number,
    private readonly finish: (error: string | undefined, startedAt: number) => void,
    tls?: TlsHooks,
  ) {
    const s = connectTo(target, tls?.offer);
    this.socket = s;
    if (tls && s instanceof TLSSocket) {
      s.once('secureConnect', () => tls.handshake(s.isSessionReused()));
      if (tls.keep) s.on('session', tls.keep);
    }
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? err.message));
    s.on('close', () => this.onClose());
  }

  fail(reason: string): void {
    this.failed ??= reason;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buf += chunk.toString('latin1');
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl > 0 && this.buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl);
      this.buf = this.buf.slice(nl + 1);
      if (!this.onLine(line)) return;
    }
  }

  /** Handles one reply line; false once the session has failed. */
  private onLine(line: string): boolean {
    const step = this.step;
    if (step >= CLOSING) {
      this.fail('data after the QUIT reply');
      return false;
    }
    if (!line.startsWith('+OK')) {
      this.fail(`${STEP_NAMES[step]}: ${line.slice(0, 60)}`);
      return false;
    }
    const s = this.socket;
    switch (step) {
      case GREETING:
        s.write(`USER ${this.account.login}\r\n`);
        break;
      case USER:
        s.write(`PASS ${this.account.password}\r\n`);
        break;
      case PASS:
        s.write('STAT\r\n');
        break;
      case STAT: {
        const count = Number.parseInt(line.slice(4), 10);
        if (count !== this.expectStat) {
          this.fail(`STAT: expected ${this.expectStat} messages, got "${line.slice(0, 60)}"`);
          return false;
        }
        s.write('QUIT\r\n');
        break;
      }
      case QUIT:
        break; // now wait for the server to close
    }
    this.step = step + 1;
    return true;
  }

  private onClose(): void {
    if (this.done) return;
    this.done = true;
    if (this.failed === undefined && this.step !== CLOSING) this.failed = `closed by the server before the ${STEP_NAMES[this.step]} reply`;
    this.finish(this.failed, this.startedAt);
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function runLoginLoad(o: LoginLoadOptions): Promise<LoginLoadResult> {
  return new Promise((resolve) => {
    let latencies = new Float64Array(1 << 16);
    let sessions = 0;
    let errors = 0;
    const errorKinds: Record<string, number> = {};
    const t0 = performance.now();
    const deadline = t0 + o.durationS * 1000;
    const current: Array<Session | undefined> = new Array(o.concurrency);
    let running = o.concurrency;
    let tlsHandshakes = 0;
    let tlsResumed = 0;
    const tickets: Array<Buffer | undefined> = new Array(o.concurrency);
    const tlsHooks = (w: number): TlsHooks | undefined =>
      o.target.tls
        ? {
            offer: o.resumeTls ? tickets[w] : undefined,
            keep: o.resumeTls ? (session) => (tickets[w] = session) : undefined,
            handshake: (resumed) => {
              tlsHandshakes++;
              if (resumed) tlsResumed++;
            },
          }
        : undefined;

    const watchdog = setInterval(() => {
      const now = performance.now();
      for (const s of current) if (s && now - s.startedAt > o.timeoutMs) s.fail('timeout');
    }, 250);

    const start = (w: number) => {
      if (performance.now() >= deadline) {
        current[w] = undefined;
        if (--running === 0) done();
        return;
      }
      current[w] = new Session(o.target, o.accounts[w % o.accounts.length]!, o.expectStat, (error, startedAt) => {
        if (error === undefined) {
          if (sessions === latencies.length) {
            const bigger = new Float64Array(latencies.length * 2);
            bigger.set(latencies);
            latencies = bigger;
          }
          latencies[sessions++] = performance.now() - startedAt;
          start(w);
        } else {
          errors++;
          errorKinds[error] = (errorKinds[error] ?? 0) + 1;
          setTimeout(() => start(w), 5); // never spin on a refusing target
        }
      }, tlsHooks(w));
    };

    const done = () => {
      clearInterval(watchdog);
      const elapsedS = (performance.now() - t0) / 1000;
      const sorted = latencies.subarray(0, sessions).sort();
      resolve({
        sessions,
        errors,
        errorKinds,
        elapsedS,
        sessionsPerS: sessions / elapsedS,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: sessions > 0 ? sorted[sessions - 1]! : Number.NaN,
        tlsResumed,
        tlsHandshakes,
      });
    };

    for (let w = 0; w < o.concurrency; w++) start(w);
  });
}
