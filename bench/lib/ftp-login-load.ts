/**
 * Closed-loop FTP login load: C clients, each looping connect → 220 → USER → 331 → PASS → 230 →
 * PWD → 257 → QUIT → 221 → close, for D seconds. Raw sockets and one small state machine per
 * session keep the generator's own CPU low (it shares the 2 cores with the proxy and vsftpd).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from './net-util.js';

export interface FtpLoginLoadResult {
  readonly sessions: number;
  readonly errors: number;
  readonly elapsedS: number;
  readonly perS: number;
  readonly p50: number;
  readonly p99: number;
}

const REPLIES = ['220', '331', '230', '257', '221'];

/** Runs the loop against `target` as `user` (any password: vsftpd's anonymous login). */
export function ftpLoginLoad(target: Endpoint, user: string, concurrency: number, durationS: number): Promise<FtpLoginLoadResult> {
  const sends = [`USER ${user}\r\n`, 'PASS bench@bench.test\r\n', 'PWD\r\n', 'QUIT\r\n'];
  const times: number[] = [];
  let errors = 0;
  const end = performance.now() + durationS * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const s = net.connect({ host: target.host, port: target.port, noDelay: true });
      let step = 0;
      let buf = '';
      let failed = false;
      const fail = () => {
        failed = true;
        s.destroy();
      };
      s.on('error', fail);
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (/^\d{3}-/.test(line) || !/^\d{3}/.test(line)) continue; // inside a multi-line reply
          if (!line.startsWith(REPLIES[step]!)) return fail();
          if (step < sends.length) s.write(sends[step]!);
          step++;
        }
      });
      s.on('close', () => {
        if (failed || step !== REPLIES.length) errors++;
        else times.push(performance.now() - t0);
        resolve();
      });
    });
  const worker = async () => {
    while (performance.now() < end) await one();
  };
  const started = performance.now();
  return Promise.all(Array.from({ length: concurrency }, worker)).then(() => {
    const elapsedS = (performance.now() - started) / 1000;
    const sorted = [...times].sort((a, b) => a - b);
    return { sessions: times.length, errors, elapsedS, perS: times.length / elapsedS, p50: sorted[sorted.length >> 1] ?? NaN, p99: sorted[Math.floor(sorted.length * 0.99)] ?? NaN };
  });
}
