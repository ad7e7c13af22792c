/**
 * POP3 benchmark: login sessions per second and RETR throughput, direct to a backend and
 * through Concierge, interleaved in one run. Prints Markdown tables with the ratios.
 *
 *   node --import tsx bench/pop3.ts [--backend demo|dovecot] [--duration 10] [--concurrency 32]
 *        [--rounds 3] [--retr-mib 64] [--reps 5] [--log-levels warn,info] [--cpu-prof] [--no-build]
 *        [--tls [--with-plain] [--tls-resume]]
 *
 * --tls (npm run bench:pop3s) measures POP3S instead: direct-with-TLS to the backend's POP3S
 * port, Concierge terminating TLS in front of the plain backend, and Concierge with TLS on both
 * sides, every TLS connection a full handshake against certificates made at run time.
 *
 * Exit status: 1 when a session or transfer failed (an error, never a slow figure); 2 on bad usage.
 * See bench/README.md.
 */
import { mkdir, mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startBackend, type BackendKind } from './lib/backends.js';
import { makeBenchTls, SERVER_NAME } from './lib/certificates.js';
import { cleanupAll, removeDirOnCleanup } from './lib/cleanup.js';
import { ensureBuilt, repoRoot, SOURCE_ADDRESS, startConcierge, type ConciergeProcess, type LogLevel } from './lib/concierge.js';
import { machineInfo } from './lib/machine.js';
import { bigMessage, bulkAccount, loginAccounts, SMALL_MESSAGES } from './lib/mail-data.js';
import { show } from './lib/net-util.js';
import { loginPhase, retrPhase, type LoginRun, type RetrRun, type Target } from './lib/phases.js';
import { renderReport } from './lib/report.js';
import { socketCounts, type SocketCounts } from './lib/time-wait.js';

const USAGE = `usage: node --import tsx bench/pop3.ts [options]   (npm run bench -- [options])
  --backend demo|dovecot   POP3 backend behind both paths (default demo)
  --duration S             seconds per login run (default 10)
  --concurrency N          concurrent login clients (default 32)
  --rounds N               interleaved login rounds; 0 skips the login test (default 3)
  --retr-mib N             size of the big message in MiB (default 64)
  --reps N                 timed RETR transfers per target; 0 skips RETR (default 5)
  --log-levels L[,L]       one Concierge per log level, each a target (default warn,info)
  --workers W[,W]          one Concierge per workers value (1, N or auto) and log level (default 1)
  --timeout MS             a session or transfer taking longer fails (default 10000 / 120000 for RETR)
  --pause MS               pause between login runs (default 1000)
  --tls                    POP3S (implicit TLS): direct-tls, concierge-tls (TLS → plain backend) and
                           concierge-tls-tls (TLS on both sides); log levels default to warn
  --with-plain             with --tls: also the plain direct and concierge targets, for the TLS cost
  --tls-resume             with --tls: login clients offer their last TLS session (resumption)
  --cpu-prof               run Concierge with --cpu-prof; profiles go to bench/run/profiles/
  --no-build               do not rebuild a stale dist/
  --out FILE               raw results as JSON (default bench/run/results/<time>-<backend>.json)`;

function options() {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'demo' },
      duration: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '3' },
      'retr-mib': { type: 'string', default: '64' },
      reps: { type: 'string', default: '5' },
      'log-levels': { type: 'string' },
      tls: { type: 'boolean', default: false },
      'with-plain': { type: 'boolean', default: false },
      'tls-resume': { type: 'boolean', default: false },
      workers: { type: 'string', default: '1' },
      timeout: { type: 'string', default: '10000' },
      pause: { type: 'string', default: '1000' },
      'cpu-prof': { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const num = (name: keyof typeof values, min: number) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < min) usage(`--${name} must be a number ≥ ${min}`);
    return n;
  };
  if (values.backend !== 'demo' && values.backend !== 'dovecot') usage('--backend must be demo or dovecot');
  if (values['with-plain'] && !values.tls) usage('--with-plain goes with --tls');
  if (values['tls-resume'] && !values.tls) usage('--tls-resume goes with --tls');
  const levels = (values['log-levels'] ?? (values.tls ? 'warn' : 'warn,info')).split(',').filter(Boolean) as LogLevel[];
  if (levels.length === 0 || levels.some((l) => !['error', 'warn', 'info', 'debug'].includes(l))) usage('--log-levels: a list of error, warn, info, debug');
  const workers = values.workers.split(',').filter(Boolean).map((w) => (w === 'auto' ? 'auto' : Number(w)));
  if (workers.length === 0 || workers.some((w) => w !== 'auto' && !(Number.isInteger(w) && w >= 1))) usage('--workers: a list of process counts or auto');
  return {
    workers: [...new Set(workers)] as Array<number | 'auto'>,
    backend: values.backend as BackendKind,
    durationS: num('duration', 0.1),
    concurrency: Math.floor(num('concurrency', 1)),
    rounds: Math.floor(num('rounds', 0)),
    retrMib: num('retr-mib', 0.001),
    reps: Math.floor(num('reps', 0)),
    levels: [...new Set(levels)],
    timeoutMs: num('timeout', 100),
    pauseMs: num('pause', 0),
    tls: values.tls,
    withPlain: values['with-plain'],
    tlsResume: values['tls-resume'],
    cpuProf: values['cpu-prof'],
    build: !values['no-build'],
    out: values.out,
  };
}

interface TargetPlan {
  readonly label: string;
  /** The target this one's ratios are taken against; none for a baseline (a direct target). */
  readonly baseline?: string;
  /** A Concierge at this log level; none: the backend itself. */
  readonly level?: LogLevel;
  readonly clientTls: boolean;
  readonly backendTls: boolean;
  /** The Concierge's `workers` (1: one process). */
  readonly workers?: number | 'auto';
}

/** The targets of one run, in measuring order (rotated per round). */
function planTargets(o: ReturnType<typeof options>): TargetPlan[] {
  const suffix = (level: LogLevel, workers: number | 'auto' = 1) => (level === 'warn' ? '' : `-${level}`) + (workers === 1 ? '' : `-w${workers}`);
  const plain = (levels: readonly LogLevel[], workersList: ReadonlyArray<number | 'auto'>): TargetPlan[] => [
    { label: 'direct', clientTls: false, backendTls: false },
    ...workersList.flatMap((workers) => levels.map((level) => ({ label: `concierge${suffix(level, workers)}`, baseline: 'direct', level, workers, clientTls: false, backendTls: false }))),
  ];
  if (!o.tls) return plain(o.levels, o.workers);
  const first = o.levels[0]!;
  const workers = o.workers[0]!;
  return [
    { label: 'direct-tls', clientTls: true, backendTls: false },
    ...o.levels.map((level) => ({ label: `concierge-tls${suffix(level, workers)}`, baseline: 'direct-tls', level, workers, clientTls: true, backendTls: false })),
    { label: `concierge-tls-tls${suffix(first, workers)}`, baseline: 'direct-tls', level: first, workers, clientTls: true, backendTls: true },
    ...(o.withPlain ? plain([first], [workers]) : []),
  ];
}

function usage(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<number> {
  const o = options();
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
  const command = `node --import tsx bench/pop3.ts ${process.argv.slice(2).join(' ')}`.trim();
  const machine = machineInfo(repoRoot);
  const build = ensureBuilt(o.build);

  const dir = await mkdtemp(path.join(tmpdir(), 'concierge-bench-'));
  removeDirOnCleanup(dir);
  const accounts = loginAccounts(Math.max(32, o.concurrency));
  // Without RETR the bulk mailbox still exists, with a token message.
  const mib = o.reps > 0 ? o.retrMib : 0.01;
  process.stderr.write(`generating a ${mib} MiB message and ${accounts.length} + 1 mailboxes under ${dir}\n`);
  const big = bigMessage(mib);

  const tlsFiles = o.tls ? await makeBenchTls() : undefined;
  const backend = await startBackend(o.backend, { dir, accounts, big, ...(tlsFiles ? { tls: tlsFiles } : {}) });
  process.stderr.write(`backend: ${backend.description} on ${show(backend.endpoint)}${backend.tlsEndpoint ? ` and ${show(backend.tlsEndpoint)}` : ''}\n`);

  const profDir = path.join(repoRoot, 'bench', 'run', 'profiles', stamp);
  if (o.cpuProf) await mkdir(profDir, { recursive: true });
  const notes: Record<string, string> = {};
  const baselines: Record<string, string> = {};
  const targets: Target[] = [];
  const concierges: ConciergeProcess[] = [];
  for (const plan of planTargets(o)) {
    if (plan.baseline !== undefined) baselines[plan.label] = plan.baseline;
    if (plan.level === undefined) {
      const endpoint = plan.clientTls ? backend.tlsEndpoint : backend.endpoint;
      if (!endpoint) throw new Error(`${backend.description} has no POP3S endpoint`);
      targets.push({ label: plan.label, endpoint });
      continue;
    }
    const c = await startConcierge({
      label: plan.label,
      dir,
      backend: plan.backendTls ? backend.tlsEndpoint! : backend.endpoint,
      logLevel: plan.level,
      workers: plan.workers,
      nodeFlags: o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `${plan.label}.cpuprofile`] : [],
      ...(plan.clientTls && tlsFiles ? { listenTls: tlsFiles } : {}),
      ...(plan.backendTls && tlsFiles ? { backendTls: { ca: tlsFiles.caFile, servername: SERVER_NAME } } : {}),
    });
    concierges.push(c);
    targets.push({ label: c.label, endpoint: c.endpoint, proxyPid: c.pid, proxyTree: plan.workers !== 1 });
    const sides = plan.clientTls ? `; implicit TLS from clients, ${plan.backendTls ? 'implicit TLS (verified) to the backend' : 'plain to the backend'}` : '';
    notes[plan.label] = `Concierge child pid ${c.pid} on ${show(c.endpoint)}, log level "${plan.level}", workers ${plan.workers} (stdout to a file)${sides}`;
    process.stderr.write(`${plan.label}: pid ${c.pid} on ${show(c.endpoint)}, log level ${plan.level}, workers ${plan.workers}\n`);
  }
  if (tlsFiles) {
    notes.tls =
      `${o.tlsResume ? 'login clients offer their last TLS session for resumption (RETR and the backend dials do not)' : 'every TLS connection is a full handshake (no session resumption)'}, ` +
      `Node ${process.version} defaults (TLS 1.3, X25519), one P-256 ECDSA certificate for ${SERVER_NAME} made by openssl at run time; ` +
      'clients send SNI and verify it against the bench CA';
  }

  let logins: LoginRun[] = [];
  let retr: RetrRun[] = [];
  if (o.rounds > 0) {
    logins = await loginPhase({
      targets,
      backend: { name: 'backend', pid: backend.pid, tree: backend.tree },
      accounts,
      concurrency: o.concurrency,
      durationS: o.durationS,
      rounds: o.rounds,
      expectStat: SMALL_MESSAGES,
      timeoutMs: o.timeoutMs,
      pauseMs: o.pauseMs,
      sockets: () => socketCounts(SOURCE_ADDRESS),
      resumeTls: o.tlsResume,
    });
    const counts = logins.flatMap((r) => (r.socketsAtStart ? [r.socketsAtStart] : []));
    if (counts.length > 0) {
      const range = (f: (c: SocketCounts) => number) => `${Math.min(...counts.map(f))}–${Math.max(...counts.map(f))}`;
      notes['TCP sockets'] =
        `at the start of the login runs, ${range((c) => c.timeWaitFromSource)} in TIME_WAIT from ${SOURCE_ADDRESS} (the tenant source address), ` +
        `${range((c) => c.timeWait)} in TIME_WAIT and ${range((c) => c.all)} in all on the machine; ` +
        'many make the port search of the bind before each backend dial cost the proxy kernel time';
    }
    const resumption = targets.flatMap((t) => {
      const mine = logins.filter((r) => r.label === t.label && r.tlsHandshakes > 0);
      if (mine.length === 0) return [];
      return [`${t.label} ${mine.reduce((a, r) => a + r.tlsResumed, 0)}/${mine.reduce((a, r) => a + r.tlsHandshakes, 0)}`];
    });
    if (resumption.length > 0) notes['TLS handshakes resumed by the server (login test)'] = resumption.join(', ');
  }
  if (o.reps > 0) {
    retr = await retrPhase({ targets, account: bulkAccount, big, reps: o.reps, timeoutMs: Math.max(o.timeoutMs, 120_000) });
  }

  for (const c of concierges) await c.stop();
  await backend.stop();
  for (const c of concierges) notes[c.label] += `; it wrote ${(await stat(c.logFile)).size} bytes of log`;

  const report = renderReport({
    date: new Date().toISOString(),
    command,
    machine,
    backend: backend.description,
    build,
    settings:
      (o.rounds > 0 ? `logins: ${o.rounds} round(s) × ${o.durationS} s per target, ${o.concurrency} clients (users u1..u${accounts.length}@bench.test, one per client); ` : 'no login test; ') +
      (o.reps > 0 ? `RETR: ${big.bytes.length} octets (${big.dotLines} lines starting with '.'), 1 verified + ${o.reps} timed transfers per target; ` : 'no RETR test; ') +
      'targets interleaved, order rotated per round',
    labels: targets.map((t) => t.label),
    notes,
    baselines,
    ...(o.tls ? { title: 'POP3S (implicit TLS), direct-with-TLS vs Concierge' } : {}),
    logins,
    retr,
    bigOctets: big.bytes.length,
  });
  process.stdout.write(`${report}\n`);

  const out = o.out ?? path.join(repoRoot, 'bench', 'run', 'results', `${stamp}-${o.backend}${o.tls ? '-tls' : ''}.json`);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify({ command, machine, backend: backend.description, build, options: o, logins, retr, report }, null, 2));
  process.stderr.write(`raw results: ${path.relative(process.cwd(), out)}\n`);
  if (o.cpuProf) process.stderr.write(`CPU profiles: ${path.relative(process.cwd(), profDir)} (summarize: node --import tsx bench/cpu-profile.ts FILE)\n`);

  const failures = logins.reduce((a, r) => a + r.errors, 0) + retr.filter((r) => !r.ok).length;
  if (failures > 0) process.stderr.write(`${failures} failed session(s)/transfer(s): exit status 1\n`);
  return failures > 0 ? 1 : 0;
}

main().then(
  async (code) => {
    await cleanupAll();
    process.exit(code);
  },
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
