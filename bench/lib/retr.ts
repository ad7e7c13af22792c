/**
 * One RETR of the big message over a raw socket: login, RETR 1, read to the ".\r\n"
 * terminator, QUIT. Timed from the RETR command to the terminator (the transfer alone; the
 * whole session time is kept too). Body bytes are counted on every transfer; `verify` also keeps
 * the body, un-dot-stuffs it and compares its SHA-256 with the stored message's.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { TLSSocket } from 'node:tls';
import { unstuff, type Account, type BigMessage } from './mail-data.js';
import { connectTo, type Endpoint } from './net-util.js';

export interface RetrResult {
  readonly ok: boolean;
  readonly error?: string;
  /** RETR response body octets received, terminator included (must equal big.wireOctets). */
  readonly octets: number;
  /** RETR sent → terminator received. */
  readonly retrS: number;
  /** connect() → server close. */
  readonly sessionS: number;
  /** 10^6 octets per second over retrS. */
  readonly mbps: number;
  /** Only with verify: did the un-stuffed body hash to the message's SHA-256? */
  readonly shaOk?: boolean;
  /** Over TLS: the protocol and cipher the client negotiated, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384". */
  readonly tls?: string;
}

const TERM = Buffer.from('\r\n.\r\n', 'latin1');

export function retrOnce(target: Endpoint, account: Account, big: BigMessage, verify: boolean, timeoutMs: number): Promise<RetrResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let tRetr = 0;
    let tEnd = 0;
    const socket = connectTo(target);
    let negotiated: string | undefined;
    if (socket instanceof TLSSocket) socket.once('secureConnect', () => (negotiated = `${socket.getProtocol()} ${socket.getCipher().name}`));
    let step = 0; // 0 greeting, 1 USER, 2 PASS, 3 RETR status, 4 body, 5 QUIT reply, 6 closing
    let pending: Buffer = Buffer.alloc(0);
    let octets = 0;
    // the last bytes seen, to find the terminator across chunk edges; starts as the status line's CRLF
    let tail: Buffer = Buffer.from('\r\n', 'latin1');
    const kept: Buffer[] = [];
    let error: string | undefined;
    let settled = false;

    const fail = (why: string) => {
      error ??= why;
      socket.destroy();
    };
    const timer = setTimeout(() => fail(`timeout after ${timeoutMs} ms (step ${step}, ${octets} octets)`), timeoutMs);

    const body = (chunk: Buffer) => {
      octets += chunk.length;
      if (verify) kept.push(chunk);
      tail = chunk.length >= TERM.length ? chunk.subarray(chunk.length - TERM.length) : Buffer.concat([tail, chunk]).subarray(-TERM.length);
      if (tail.length === TERM.length && tail.equals(TERM)) {
        tEnd = performance.now();
        step = 5;
        socket.write('QUIT\r\n');
      }
    };

    const line = (text: string) => {
      if (!text.startsWith('+OK')) return fail(`step ${step}: ${text.slice(0, 80)}`);
      switch (step) {
        case 0:
          socket.write(`USER ${account.login}\r\n`);
          break;
        case 1:
          socket.write(`PASS ${account.password}\r\n`);
          break;
        case 2:
          tRetr = performance.now();
          socket.write('RETR 1\r\n');
          break;
        case 3:
          break; // the body follows
        case 5:
          break; // QUIT answered; wait for the close
      }
      step++;
    };

    socket.on('data', (chunk: Buffer) => {
      if (step === 4) return body(chunk);
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const nl = pending.indexOf(0x0a);
        if (nl < 0) {
          if (pending.length > 4096) fail('reply line too long');
          return;
        }
        const text = pending.toString('latin1', 0, nl > 0 && pending[nl - 1] === 0x0d ? nl - 1 : nl);
        pending = pending.subarray(nl + 1);
        line(text);
        if (error !== undefined) return;
        if (step === 4) {
          const rest = pending;
          pending = Buffer.alloc(0);
          if (rest.length > 0) body(rest);
          return;
        }
        if (step === 6 && pending.length > 0) return fail('data after the QUIT reply');
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    socket.on('close', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const sessionS = (performance.now() - t0) / 1000;
      if (error === undefined && step !== 6) error = `closed at step ${step}`;
      if (error === undefined && octets !== big.wireOctets) error = `received ${octets} body octets, expected ${big.wireOctets}`;
      const retrS = (tEnd - tRetr) / 1000;
      let shaOk: boolean | undefined;
      if (verify && error === undefined) {
        const all = Buffer.concat(kept);
        const message = unstuff(all.subarray(0, all.length - 3)); // drop ".\r\n"
        shaOk = createHash('sha256').update(message).digest('hex') === big.sha256;
        if (!shaOk) error = 'SHA-256 mismatch';
      }
      resolve({ ok: error === undefined, error, octets, retrS, sessionS, mbps: error === undefined ? big.wireOctets / 1e6 / retrS : Number.NaN, shaOk, ...(negotiated ? { tls: negotiated } : {}) });
    });
  });
}
