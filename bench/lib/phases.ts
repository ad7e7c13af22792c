/**
 * The two measurements, each interleaved over the targets with the order rotated per round:
 * login sessions (with CPU per session from /proc) and RETR of the big message.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { runLoginLoad, type LoginLoadResult } from './login-load.js';
import type { Account, BigMessage } from './mail-data.js';
import { show, type Endpoint } from './net-util.js';
import { cpuDelta, snapshot, type ProcSpec } from './procfs.js';
import { retrOnce, type RetrResult } from './retr.js';
import type { SocketCounts } from './time-wait.js';

export interface Target {
  readonly label: string;
  readonly endpoint: Endpoint;
  /** The proxy's own process (undefined for direct). */
  readonly proxyPid?: number;
  /** Count the proxy's whole process tree (a primary and its cluster workers). */
  readonly proxyTree?: boolean;
}

export interface LoginRun extends LoginLoadResult {
  readonly label: string;
  readonly round: number;
  /** Proxy CPU (user+system, from /proc/PID/stat) over the run / completed sessions. */
  readonly proxyCpuUsPerSession?: number;
  /** The kernel (stime) part of proxyCpuUsPerSession. */
  readonly proxySysUsPerSession?: number;
  readonly proxyCpuPct?: number;
  readonly backendCpuUsPerSession: number;
  readonly backendCpuPct: number;
  readonly loadgenCpuPct: number;
  /** Whole machine, all CPUs (200% = 2 cores busy). */
  readonly machineBusyPct: number;
  /** Busy time not used by the generator, the backend or any Concierge: other work on the box. */
  readonly otherCpuPct: number;
  readonly stealPct: number;
  /** TCP sockets on the machine when the run started (see time-wait.ts). */
  readonly socketsAtStart?: SocketCounts;
}

export interface LoginPhaseOptions {
  readonly targets: readonly Target[];
  readonly backend: ProcSpec;
  readonly accounts: readonly Account[];
  readonly concurrency: number;
  readonly durationS: number;
  readonly rounds: number;
  readonly expectStat: number;
  readonly timeoutMs: number;
  readonly pauseMs: number;
  /** Counts TCP sockets (TIME_WAIT on the tenant's source address, on the machine), for the report. */
  readonly sockets?: () => SocketCounts | undefined;
  /** TLS targets: clients offer their last session for resumption. */
  readonly resumeTls?: boolean;
}

/** Order of the targets in round r (1-based): rotated so nobody is always first or last. */
export function rotated<T>(items: readonly T[], round: number): T[] {
  return items.map((_, i) => items[(i + round - 1) % items.length]!);
}

const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

export async function loginPhase(o: LoginPhaseOptions): Promise<LoginRun[]> {
  const runs: LoginRun[] = [];
  const procs: ProcSpec[] = [o.backend, ...o.targets.filter((t) => t.proxyPid !== undefined).map((t) => ({ name: t.label, pid: t.proxyPid!, tree: t.proxyTree ?? false }))];
  for (let round = 1; round <= o.rounds; round++) {
    for (const t of rotated(o.targets, round)) {
      await delay(o.pauseMs); // let the previous run's connections finish closing
      const socketsAtStart = o.sockets?.();
      const before = snapshot(procs);
      const r = await runLoginLoad({ target: t.endpoint, accounts: o.accounts, concurrency: o.concurrency, durationS: o.durationS, expectStat: o.expectStat, timeoutMs: o.timeoutMs, resumeTls: o.resumeTls });
      const d = cpuDelta(before, snapshot(procs));
      const per = (s: number) => (r.sessions > 0 ? (s / r.sessions) * 1e6 : Number.NaN);
      const pct = (s: number) => (s / d.elapsedS) * 100;
      const backendS = d.procs.get(o.backend.name)?.total ?? Number.NaN;
      let oursS = d.selfS + backendS;
      for (const p of procs) if (p.name !== o.backend.name) oursS += d.procs.get(p.name)?.total ?? 0;
      const proxy = t.proxyPid !== undefined ? d.procs.get(t.label) : undefined;
      const run: LoginRun = {
        ...r,
        label: t.label,
        round,
        ...(proxy !== undefined ? { proxyCpuUsPerSession: per(proxy.total), proxySysUsPerSession: per(proxy.sys), proxyCpuPct: pct(proxy.total) } : {}),
        backendCpuUsPerSession: per(backendS),
        backendCpuPct: pct(backendS),
        loadgenCpuPct: pct(d.selfS),
        machineBusyPct: pct(d.machineBusyS),
        otherCpuPct: Math.max(0, pct(d.machineBusyS - oursS)),
        stealPct: pct(d.stealS),
        ...(socketsAtStart !== undefined ? { socketsAtStart } : {}),
      };
      runs.push(run);
      const errs = r.errors ? ` errors ${r.errors} ${JSON.stringify(r.errorKinds)}` : '';
      log(
        `round ${round} logins ${t.label.padEnd(16)} ${r.sessionsPerS.toFixed(0).padStart(5)}/s  p50 ${r.p50Ms.toFixed(1)} ms  p99 ${r.p99Ms.toFixed(1)} ms` +
          (run.proxyCpuUsPerSession !== undefined ? `  proxy ${run.proxyCpuUsPerSession.toFixed(0)} µs/session (sys ${run.proxySysUsPerSession?.toFixed(0)})` : '') +
          `  backend ${run.backendCpuUsPerSession.toFixed(0)} µs/session  loadgen ${run.loadgenCpuPct.toFixed(0)}%  other ${run.otherCpuPct.toFixed(0)}%` +
          (r.tlsHandshakes > 0 ? `  TLS resumed ${r.tlsResumed}/${r.tlsHandshakes}` : '') +
          (socketsAtStart !== undefined ? `  TIME_WAIT ${socketsAtStart.timeWaitFromSource} (machine ${socketsAtStart.timeWait} of ${socketsAtStart.all} TCP)` : '') +
          errs,
      );
    }
  }
  return runs;
}

export interface RetrRun extends RetrResult {
  readonly label: string;
  /** 0 for the untimed verification transfer. */
  readonly rep: number;
  /** Proxy CPU seconds during the transfer (whole session), and the kernel part. */
  readonly proxyCpuS?: number;
  readonly proxySysS?: number;
}

export interface RetrPhaseOptions {
  readonly targets: readonly Target[];
  readonly account: Account;
  readonly big: BigMessage;
  readonly reps: number;
  readonly timeoutMs: number;
}

export async function retrPhase(o: RetrPhaseOptions): Promise<RetrRun[]> {
  const runs: RetrRun[] = [];
  const one = async (t: Target, rep: number) => {
    const procs: ProcSpec[] = t.proxyPid !== undefined ? [{ name: 'proxy', pid: t.proxyPid, tree: t.proxyTree ?? false }] : [];
    const before = snapshot(procs);
    const r = await retrOnce(t.endpoint, o.account, o.big, rep === 0, o.timeoutMs);
    const d = cpuDelta(before, snapshot(procs));
    const run: RetrRun = { ...r, label: t.label, rep, ...(t.proxyPid !== undefined ? { proxyCpuS: d.procs.get('proxy')?.total, proxySysS: d.procs.get('proxy')?.sys } : {}) };
    runs.push(run);
    log(
      `${rep === 0 ? 'verify' : `rep ${rep}  `} RETR ${t.label.padEnd(16)} ${r.ok ? `${r.mbps.toFixed(1)} MB/s (${(r.retrS * 1000).toFixed(0)} ms)${rep === 0 ? `, SHA-256 ${r.shaOk ? 'ok' : 'MISMATCH'}${r.tls ? `, ${r.tls}` : ''}` : ''}` : `FAILED: ${r.error}`} [${show(t.endpoint)}]`,
    );
  };
  // One untimed transfer per target first: checks the content and warms caches.
  for (const t of o.targets) await one(t, 0);
  for (let rep = 1; rep <= o.reps; rep++) for (const t of rotated(o.targets, rep)) await one(t, rep);
  return runs;
}
