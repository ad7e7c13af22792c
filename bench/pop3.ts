/**
 * POP3 benchmark: login sessions per second and RETR throughput, direct to a backend and
 * through Concierge, interleaved in one run. Prints Markdown tables with the ratios.
 *
 *   node --import tsx bench/pop3.ts [--backend demo|dovecot] [--duration 10] [--concurrency 32]
 *        [--rounds 3] [--retr-mib 64] [--reps 5] [--log-levels warn,info] [--cpu-prof] [--no-build]
 *
 * Exit status: 1 when a session or transfer failed (an error, never a slow figure); 2 on bad usage.
 * See bench/README.md.
 */
import { mkdir, mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startBackend, type BackendKind } from './lib/backends.js';
import { cleanupAll, removeDirOnCleanup } from './lib/cleanup.js';
import { ensureBuilt, repoRoot, startConcierge, type ConciergeProcess, type LogLevel } from './lib/concierge.js';
import { machineInfo } from './lib/machine.js';
import { bigMessage, bulkAccount, loginAccounts, SMALL_MESSAGES } from './lib/mail-data.js';
import { show } from './lib/net-util.js';
import { loginPhase, retrPhase, type LoginRun, type RetrRun, type Target } from './lib/phases.js';
import { renderReport } from './lib/report.js';

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
      'log-levels': { type: 'string', default: 'warn,info' },
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
  const levels = values['log-levels'].split(',').filter(Boolean) as LogLevel[];
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
    cpuProf: values['cpu-prof'],
    build: !values['no-build'],
    out: values.out,
  };
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

  const backend = await startBackend(o.backend, { dir, accounts, big });
  process.stderr.write(`backend: ${backend.description} on ${show(backend.endpoint)}\n`);

  const profDir = path.join(repoRoot, 'bench', 'run', 'profiles', stamp);
  if (o.cpuProf) await mkdir(profDir, { recursive: true });
  const concierges: ConciergeProcess[] = [];
  const notes: Record<string, string> = {};
  const workersOf = new Map<string, number | 'auto'>();
  for (const workers of o.workers) {
    for (const level of o.levels) {
      const label = (level === 'warn' ? 'concierge' : `concierge-${level}`) + (workers === 1 ? '' : `-w${workers}`);
      const c = await startConcierge({
        label,
        dir,
        backend: backend.endpoint,
        logLevel: level,
        workers,
        nodeFlags: o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `${label}.cpuprofile`] : [],
      });
      concierges.push(c);
      workersOf.set(label, workers);
      notes[label] = `Concierge child pid ${c.pid} on ${show(c.endpoint)}, log level "${level}", workers ${workers} (stdout to a file)`;
      process.stderr.write(`${label}: pid ${c.pid} on ${show(c.endpoint)}, log level ${level}, workers ${workers}\n`);
    }
  }

  const targets: Target[] = [
    { label: 'direct', endpoint: backend.endpoint },
    ...concierges.map((c) => ({ label: c.label, endpoint: c.endpoint, proxyPid: c.pid, proxyTree: workersOf.get(c.label) !== 1 })),
  ];
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
    });
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
    logins,
    retr,
    bigOctets: big.bytes.length,
  });
  process.stdout.write(`${report}\n`);

  const out = o.out ?? path.join(repoRoot, 'bench', 'run', 'results', `${stamp}-${o.backend}.json`);
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
