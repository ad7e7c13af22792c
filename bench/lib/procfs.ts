/**
 * CPU time from /proc (Linux): one process, a process tree (dovecot forks helpers), and the
 * whole machine. Times are in seconds; the kernel counts them in clock ticks (CLK_TCK, 100 on
 * Linux), so a figure over a 10 s run is good to about 0.1%.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number.parseInt(execFileSync('getconf', ['CLK_TCK']).toString(), 10) || 100;
  } catch {
    return 100;
  }
})();

interface Stat {
  ppid: number;
  /** utime + stime of the process itself, in ticks. */
  own: number;
  /** cutime + cstime: children it has already reaped, in ticks. */
  reaped: number;
  /** stime: the kernel part of own, in ticks. */
  ownSys: number;
  /** cstime: the kernel part of reaped, in ticks. */
  reapedSys: number;
}

/** CPU seconds, all (user + system) and the system (kernel) part. */
export interface Cpu {
  readonly total: number;
  readonly sys: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: the fields start after the LAST ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(f[i] ?? 0);
  // after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
  return { ppid: n(1), own: n(11) + n(12), reaped: n(13) + n(14), ownSys: n(12), reapedSys: n(14) };
}

/** CPU seconds of one process (its own threads; reaped children not counted). Undefined if it is gone. */
export function processCpuSeconds(pid: number): Cpu | undefined {
  const st = readStat(pid);
  return st ? { total: st.own / CLK_TCK, sys: st.ownSys / CLK_TCK } : undefined;
}

/**
 * CPU seconds of a process and all its live descendants, plus what they have reaped
 * (so short-lived per-session children still count once their parent has waited for them).
 */
export function treeCpuSeconds(root: number): Cpu {
  const stats = new Map<number, Stat>();
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = readStat(pid);
    if (!st) continue;
    stats.set(pid, st);
    const list = children.get(st.ppid);
    if (list) list.push(pid);
    else children.set(st.ppid, [pid]);
  }
  let ticks = 0;
  let sys = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    const st = stats.get(pid);
    if (st) {
      ticks += st.own + st.reaped;
      sys += st.ownSys + st.reapedSys;
    }
    stack.push(...(children.get(pid) ?? []));
  }
  return { total: ticks / CLK_TCK, sys: sys / CLK_TCK };
}

/** Whole-machine busy and steal seconds, summed over CPUs (from the first line of /proc/stat). */
export function machineCpuSeconds(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const at = (i: number) => f[i] ?? 0;
  // user nice system idle iowait irq softirq steal
  return { busy: (at(0) + at(1) + at(2) + at(5) + at(6)) / CLK_TCK, steal: at(7) / CLK_TCK };
}

/** A CPU meter over an interval for a set of processes (each measured as a tree or alone). */
export interface CpuSnapshot {
  readonly at: bigint;
  readonly self: NodeJS.CpuUsage;
  readonly machine: { busy: number; steal: number };
  readonly procs: ReadonlyMap<string, Cpu>;
}

export type ProcSpec = { name: string; pid: number; tree: boolean };

export function snapshot(procs: readonly ProcSpec[]): CpuSnapshot {
  const m = new Map<string, Cpu>();
  for (const p of procs) m.set(p.name, p.tree ? treeCpuSeconds(p.pid) : (processCpuSeconds(p.pid) ?? { total: Number.NaN, sys: Number.NaN }));
  return { at: process.hrtime.bigint(), self: process.cpuUsage(), machine: machineCpuSeconds(), procs: m };
}

/** CPU seconds used between two snapshots, per named process, plus this process and the machine. */
export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot): {
  elapsedS: number;
  selfS: number;
  machineBusyS: number;
  stealS: number;
  procs: Map<string, Cpu>;
} {
  const procs = new Map<string, Cpu>();
  for (const [name, v] of b.procs) {
    const was = a.procs.get(name) ?? { total: Number.NaN, sys: Number.NaN };
    procs.set(name, { total: v.total - was.total, sys: v.sys - was.sys });
  }
  return {
    elapsedS: Number(b.at - a.at) / 1e9,
    selfS: (b.self.user + b.self.system - a.self.user - a.self.system) / 1e6,
    machineBusyS: b.machine.busy - a.machine.busy,
    stealS: b.machine.steal - a.machine.steal,
    procs,
  };
}
