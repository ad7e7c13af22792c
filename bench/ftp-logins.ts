/**
 * FTP logins per second, A/B: direct and one Concierge per built `dist/` folder, against one
 * private vsftpd, in interleaved rounds (the order rotates each round), on a shared machine
 * where only interleaving tells two builds apart.
 *
 *   node --import tsx bench/ftp-logins.ts [--dist DIR]... [--rounds 5] [--duration 6] [--concurrency 16]
 *
 * Without --dist, the worktree's own dist/ (built when stale). Each session: connect → 220 →
 * USER → 331 → PASS → 230 → PWD → 257 → QUIT → 221 → close. Per run: sessions/s, the ratio to
 * the same round's direct run, Concierge's CPU µs per session (utime + stime from /proc, and the
 * kernel part), vsftpd's (its process tree, reaped per-session children included), the load
 * generator's own, and the whole machine's busy time (other work on a shared machine and
 * softirq time no process is charged for included). CONCIERGE_NODE_FLAGS
 * (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p") is passed to every Concierge.
 */
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startVsftpd } from '../test/interop/vsftpd.js';
import { spawnChild, type Child } from './lib/children.js';
import { cliPath, ensureBuilt, repoRoot } from './lib/concierge.js';
import { ftpLoginLoad } from './lib/ftp-login-load.js';
import { machineInfo } from './lib/machine.js';
import { freePort, type Endpoint } from './lib/net-util.js';
import { machineCpuSeconds, processCpuSeconds, treeCpuSeconds } from './lib/procfs.js';
import { fmt, median, table } from './lib/stats.js';

const { values: opts } = parseArgs({
  options: {
    dist: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '6' },
    concurrency: { type: 'string', default: '16' },
  },
});
const ROUNDS = Number(opts.rounds);
const DURATION_S = Number(opts.duration);
const CONCURRENCY = Number(opts.concurrency);

interface Target {
  readonly label: string;
  readonly endpoint: Endpoint;
  readonly user: string;
  readonly child?: Child;
}

/** The vsftpd master: our child whose command is vsftpd (startVsftpd does not expose it). */
function vsftpdPid(): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && stat.includes('(vsftpd)')) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('vsftpd process not found');
}

async function startConcierge(label: string, cli: string, dir: string, backendPort: number, passiveFrom: number): Promise<Target> {
  const port = await freePort();
  const configFile = path.join(dir, `tenants-${label}.json`);
  await writeFile(
    configFile,
    JSON.stringify({
      log: { level: 'warn' },
      listeners: [{ protocol: 'ftp', address: '127.0.0.1', port, passivePorts: { from: passiveFrom, to: passiveFrom + 49 } }],
      tenants: [{ domain: 'bench.test', sourceAddress: '127.0.0.2', backends: { ftp: [{ host: '127.0.0.1', port: backendPort }] } }],
    }),
  );
  const fd = openSync(path.join(dir, `concierge-${label}.log`), 'a');
  const flags = process.env.CONCIERGE_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const child = spawnChild(`concierge-${label}`, process.execPath, [...flags, cli, 'start', '--config', configFile], { cwd: repoRoot, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const endpoint = { host: '127.0.0.1', port };
  // Ready once a whole login goes through; the short loop also warms the JIT before the rounds.
  for (let i = 0; ; i++) {
    const r = await ftpLoginLoad(endpoint, 'anonymous@bench.test', 4, 0.5);
    if (r.sessions > 0 && r.errors === 0) break;
    if (child.hasExited() || i > 40) throw new Error(`${label}: no FTP login through ${cli}`);
  }
  return { label, endpoint, user: 'anonymous@bench.test', child };
}

async function main(): Promise<void> {
  const dists = opts.dist ?? [];
  const buildNote = dists.length === 0 ? ensureBuilt(true) : `dists: ${dists.join(', ')}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-bench-ftp-logins-'));
  const vsftpPort = await freePort();
  const vsftpd = await startVsftpd({ port: vsftpPort, pasv: { min: 23000, max: 23049 }, files: { 'small.txt': 'hello\n' } });
  const targets: Target[] = [{ label: 'direct', endpoint: { host: '127.0.0.1', port: vsftpPort }, user: 'anonymous' }];
  try {
    const vsftpdMaster = vsftpdPid();
    const clis = dists.length === 0 ? [{ label: 'concierge', cli: cliPath }] : dists.map((d) => ({ label: path.basename(path.resolve(d)), cli: path.resolve(d, 'src', 'cli.js') }));
    for (const [i, c] of clis.entries()) targets.push(await startConcierge(c.label, c.cli, dir, vsftpPort, 23100 + i * 50));
    type Run = { perS: number; ratio: number; proxyUs: number; proxySysUs: number; vsftpdUs: number; generatorUs: number; machineUs: number; errors: number };
    const runs = new Map<string, Run[]>(targets.map((t) => [t.label, []]));
    const rows: string[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      const got = new Map<string, Omit<Run, 'ratio'>>();
      for (const t of order) {
        const proxyBefore = t.child ? processCpuSeconds(t.child.pid) : undefined;
        const vsBefore = treeCpuSeconds(vsftpdMaster).total;
        const machineBefore = machineCpuSeconds().busy;
        const generatorBefore = process.cpuUsage();
        const r = await ftpLoginLoad(t.endpoint, t.user, CONCURRENCY, DURATION_S);
        const perSession = (s: number) => (s * 1e6) / r.sessions;
        got.set(t.label, {
          perS: r.perS,
          errors: r.errors,
          proxyUs: t.child ? perSession((processCpuSeconds(t.child.pid)?.total ?? NaN) - (proxyBefore?.total ?? NaN)) : NaN,
          proxySysUs: t.child ? perSession((processCpuSeconds(t.child.pid)?.sys ?? NaN) - (proxyBefore?.sys ?? NaN)) : NaN,
          vsftpdUs: perSession(treeCpuSeconds(vsftpdMaster).total - vsBefore),
          generatorUs: (() => {
            const g = process.cpuUsage(generatorBefore);
            return perSession((g.user + g.system) / 1e6);
          })(),
          machineUs: perSession(machineCpuSeconds().busy - machineBefore),
        });
        process.stderr.write(`round ${round + 1} ${t.label}: ${r.perS.toFixed(0)}/s, ${r.errors} errors\n`);
      }
      const direct = got.get('direct')!.perS;
      for (const t of targets) {
        const g = got.get(t.label)!;
        const run = { ...g, ratio: g.perS / direct };
        runs.get(t.label)!.push(run);
        rows.push([String(round + 1), t.label, fmt(run.perS), fmt(run.ratio, 2), fmt(run.proxyUs), fmt(run.proxySysUs), fmt(run.vsftpdUs), fmt(run.generatorUs), fmt(run.machineUs), String(run.errors)]);
      }
    }
    const m = machineInfo(repoRoot);
    const col = (label: string, k: keyof Run) => median(runs.get(label)!.map((r) => r[k]));
    const out = [
      `# FTP logins A/B (${new Date().toISOString()})`,
      '',
      `${m.nproc} cores, ${m.cpuModel}, node ${m.node}, git ${m.git}; ${buildNote}. vsftpd (anonymous), Concierge at log level warn, tenant source 127.0.0.2; ${CONCURRENCY} clients, ${DURATION_S} s per run, ${ROUNDS} rounds, order rotating.`,
      '',
      '## Per run',
      '',
      table(['round', 'target', 'sessions/s', 'vs direct', 'proxy µs/session', 'of which kernel', 'vsftpd µs/session', 'generator µs/session', 'machine busy µs/session', 'errors'], rows, 2),
      '',
      '## Medians',
      '',
      table(
        ['target', 'sessions/s', 'vs direct (per-round ratios)', 'proxy µs/session', 'of which kernel', 'vsftpd µs/session', 'generator µs/session', 'machine busy µs/session'],
        targets.map((t) => [t.label, fmt(col(t.label, 'perS')), fmt(col(t.label, 'ratio'), 2), fmt(col(t.label, 'proxyUs')), fmt(col(t.label, 'proxySysUs')), fmt(col(t.label, 'vsftpdUs')), fmt(col(t.label, 'generatorUs')), fmt(col(t.label, 'machineUs'))]),
      ),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    for (const t of targets) await t.child?.stop(5_000);
    await vsftpd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/ftp-logins: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
