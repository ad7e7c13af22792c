/**
 * FTP benchmark, direct vs Concierge in one run against one private vsftpd (anonymous, read-only):
 *
 *   npm run bench:ftp -- [--retr-mib 512] [--reps 5] [--concurrency 16] [--duration 10] [--no-build] [--tls]
 *
 * CONCIERGE_DATA_PATH (js, splice; unset: splice when the addon loaded) passes on to Concierge.
 *
 * 1. RETR: curl, passive (EPSV), of a --retr-mib file, --reps runs per target interleaved
 *    (direct, Concierge, direct, …); each run's byte count is checked, MB/s (10^6 bytes per
 *    second, curl's speed_download). Median per target and the ratio.
 * 2. Logins: --concurrency clients in a closed loop for --duration s per target:
 *    connect → 220 → USER → 331 → PASS → 230 → PWD → 257 → QUIT → 221 → close.
 *
 * --tls: FTPS on both hops (RETR only). vsftpd with ssl_enable (AUTH TLS, TLS required of
 * anonymous logins and data, require_ssl_reuse), Concierge with an AUTH TLS listener and the
 * backend as an AUTH TLS backend, certificate verification on; curl --ssl-reqd (PROT P) to
 * both. Certificates come from a throw-away CA made with openssl.
 *
 * Concierge is the built CLI (dist/, rebuilt when stale) in a child process at log level "warn",
 * tenant bench.test with sourceAddress 127.0.0.2. Needs vsftpd and curl (.ci/install-interop.sh).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { TestCa } from '../test/support/certificates.js';
import { DATA_PATH_ENV } from '../src/data-path.js';
import { startVsftpd } from '../test/interop/vsftpd.js';
import { spawnChild } from './lib/children.js';
import { ftpLoginLoad, type FtpLoginLoadResult } from './lib/ftp-login-load.js';
import { cliPath, ensureBuilt, repoRoot } from './lib/concierge.js';
import { machineInfo } from './lib/machine.js';
import { freePort, type Endpoint } from './lib/net-util.js';
import { processCpuSeconds } from './lib/procfs.js';
import { fmt, median, table } from './lib/stats.js';

const run = promisify(execFile);

const { values: opts } = parseArgs({
  options: {
    'retr-mib': { type: 'string', default: '512' },
    reps: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    'no-build': { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
  },
});
const TLS = opts.tls;
const RETR_MIB = Number(opts['retr-mib']);
const REPS = Number(opts.reps);
const CONCURRENCY = Number(opts.concurrency);
const DURATION_S = Number(opts.duration);

/** Waits for a 220 greeting on `target`. */
async function waitFor220(target: Endpoint, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(target.port, target.host);
      s.once('data', (d: Buffer) => (s.destroy(), resolve(d.toString('latin1').startsWith('220'))));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no 220 from ${target.host}:${target.port}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One curl RETR to /dev/null: bytes and MB/s. `caFile`: FTPS (AUTH TLS, PROT P), verified with that CA. */
async function retr(target: Endpoint, user: string, caFile?: string): Promise<{ bytes: number; mbps: number }> {
  const tlsArgs = caFile ? ['--ssl-reqd', '--cacert', caFile] : [];
  const { stdout } = await run('curl', ['-sS', '--max-time', '300', ...tlsArgs, '-o', '/dev/null', '-w', '%{size_download} %{speed_download}', '-u', `${user}:bench@bench.test`, `ftp://${target.host}:${target.port}/pub/big.bin`]);
  const [bytes, speed] = stdout.trim().split(' ').map(Number) as [number, number];
  return { bytes, mbps: speed / 1e6 };
}

async function main(): Promise<void> {
  const buildNote = ensureBuilt(!opts['no-build']);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-bench-ftp-'));
  const vsftpPort = await freePort();
  const ca = TLS ? await TestCa.create('Concierge Bench CA') : undefined;
  const backendCert = await ca?.issue(['vsftpd.bench.test', '127.0.0.1']);
  const frontCert = await ca?.issue(['ftp.bench.test', '127.0.0.1']);
  const vsftpd = await startVsftpd({ port: vsftpPort, pasv: { min: 23000, max: 23099 }, files: { 'big.bin': randomBytes(RETR_MIB * 1024 * 1024) }, ...(backendCert ? { tls: backendCert } : {}) });
  const conciergePort = await freePort();
  const listenerTls = frontCert ? { tls: 'starttls', certificate: { cert: frontCert.cert, key: frontCert.key } } : {};
  const backendTls = ca ? { tls: 'starttls', ca: ca.certFile, servername: 'vsftpd.bench.test' } : {};
  const configFile = path.join(dir, 'tenants.json');
  await writeFile(
    configFile,
    JSON.stringify({
      log: { level: 'warn' },
      listeners: [{ protocol: 'ftp', address: '127.0.0.1', port: conciergePort, passivePorts: { from: 23100, to: 23199 }, ...listenerTls }],
      tenants: [{ domain: 'bench.test', sourceAddress: '127.0.0.2', backends: { ftp: [{ host: '127.0.0.1', port: vsftpPort, ...backendTls }] } }],
    }),
  );
  const logFile = path.join(dir, 'concierge.log');
  const fd = openSync(logFile, 'a');
  const child = spawnChild('concierge', process.execPath, [...(process.env.CONCIERGE_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), cliPath, 'start', '--config', configFile], { cwd: repoRoot, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const targets = [
    { label: 'direct', endpoint: { host: '127.0.0.1', port: vsftpPort }, user: 'anonymous' },
    { label: 'concierge', endpoint: { host: '127.0.0.1', port: conciergePort }, user: 'anonymous@bench.test' },
  ];
  try {
    await waitFor220(targets[1]!.endpoint, 15_000);
    const want = RETR_MIB * 1024 * 1024;
    const speeds: Record<string, number[]> = { direct: [], concierge: [] };
    let retrCpuS = 0;
    for (let rep = 0; rep < REPS; rep++) {
      for (const t of rep % 2 === 0 ? targets : [...targets].reverse()) {
        const cpuBefore = processCpuSeconds(child.pid)?.total ?? NaN;
        const r = await retr(t.endpoint, t.user, ca?.certFile);
        if (t.label === 'concierge') retrCpuS += (processCpuSeconds(child.pid)?.total ?? NaN) - cpuBefore;
        if (r.bytes !== want) throw new Error(`${t.label}: RETR got ${r.bytes} bytes, expected ${want}`);
        speeds[t.label]!.push(r.mbps);
        process.stderr.write(`RETR ${t.label} #${rep + 1}: ${r.mbps.toFixed(0)} MB/s\n`);
      }
    }
    const m = machineInfo(repoRoot);
    const direct = median(speeds.direct!);
    const proxied = median(speeds.concierge!);
    const retrTable = table(
      ['target', 'median MB/s', 'runs (MB/s)', 'ratio to direct'],
      targets.map((t) => [t.label, fmt(median(speeds[t.label]!)), speeds[t.label]!.map((x) => x.toFixed(0)).join(', '), fmt(median(speeds[t.label]!) / direct, 2)]),
    );
    if (TLS) {
      const out = [
        `# FTPS benchmark (${new Date().toISOString()})`,
        '',
        `${m.nproc} cores, ${m.cpuModel}, node ${m.node}, git ${m.git}; ${buildNote}. Backend: vsftpd with ssl_enable (AUTH TLS, require_ssl_reuse), Concierge at log level warn with an AUTH TLS listener and the backend over AUTH TLS (verified), tenant source 127.0.0.2.`,
        '',
        `## RETR ${RETR_MIB} MiB over FTPS (curl --ssl-reqd: AUTH TLS, PROT P, EPSV), ${REPS} interleaved runs each`,
        '',
        'direct: curl ⇄ vsftpd, one TLS hop. concierge: curl ⇄ Concierge ⇄ vsftpd, two TLS hops (Concierge decrypts and re-encrypts every byte).',
        '',
        retrTable,
        '',
        `RETR ratio ${fmt(proxied / direct, 2)}.`,
      ];
      process.stdout.write(`${out.join('\n')}\n`);
      return;
    }
    const logins: Record<string, FtpLoginLoadResult> = {};
    let proxyCpuUs = NaN;
    for (const t of targets) {
      const before = processCpuSeconds(child.pid)?.total ?? NaN;
      logins[t.label] = await ftpLoginLoad(t.endpoint, t.user, CONCURRENCY, DURATION_S);
      if (t.label === 'concierge') proxyCpuUs = (((processCpuSeconds(child.pid)?.total ?? NaN) - before) * 1e6) / logins[t.label]!.sessions;
      process.stderr.write(`logins ${t.label}: ${logins[t.label]!.perS.toFixed(0)}/s, ${logins[t.label]!.errors} errors\n`);
    }
    const out = [
      `# FTP benchmark (${new Date().toISOString()})`,
      '',
      `${m.nproc} cores, ${m.cpuModel}, node ${m.node}, git ${m.git}; ${buildNote}. Backend: vsftpd (anonymous), Concierge at log level warn, tenant source 127.0.0.2, ${DATA_PATH_ENV}=${process.env[DATA_PATH_ENV] ?? '(unset)'}.`,
      '',
      `## RETR ${RETR_MIB} MiB, passive (curl EPSV), ${REPS} interleaved runs each`,
      '',
      retrTable,
      '',
      `Concierge CPU per GiB relayed: ${fmt((retrCpuS * 1e3) / ((REPS * RETR_MIB) / 1024))} ms (user + kernel, all threads, from /proc).`,
      '',
      `## Logins (USER, PASS, PWD, QUIT), ${CONCURRENCY} clients, ${DURATION_S} s closed loop`,
      '',
      table(
        ['target', 'sessions/s', 'sessions', 'errors', 'p50 ms', 'p99 ms', 'ratio to direct'],
        targets.map((t) => {
          const l = logins[t.label]!;
          return [t.label, fmt(l.perS), String(l.sessions), String(l.errors), fmt(l.p50, 1), fmt(l.p99, 1), fmt(l.perS / logins.direct!.perS, 2)];
        }),
      ),
      '',
      `Concierge CPU per login session: ${fmt(proxyCpuUs)} µs (user + kernel, from /proc).`,
      '',
      `RETR ratio ${fmt(proxied / direct, 2)} (target ≥ 0.75); logins ratio ${fmt(logins.concierge!.perS / logins.direct!.perS, 2)} (target ≥ 0.90).`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await child.stop(5_000);
    await vsftpd.stop();
    await rm(dir, { recursive: true, force: true });
    await ca?.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/ftp: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
