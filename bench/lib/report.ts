/** The Markdown report: login table, RETR table, and the targets as ratios. */
import type { MachineInfo } from './machine.js';
import type { LoginRun, RetrRun } from './phases.js';
import { fmt, median, minMax, table } from './stats.js';

export interface ReportInput {
  readonly date: string;
  readonly command: string;
  readonly machine: MachineInfo;
  readonly backend: string;
  readonly build: string;
  readonly settings: string;
  readonly labels: readonly string[];
  /** label → how that Concierge was run (log level). */
  readonly notes: Readonly<Record<string, string>>;
  /** label → the target its ratios are taken against ("direct", or "direct-tls" for a TLS path); a label not here is a baseline itself. */
  readonly baselines: Readonly<Record<string, string>>;
  /** Heading after "POP3 benchmark: " (default "direct vs Concierge"). */
  readonly title?: string;
  readonly logins: readonly LoginRun[];
  readonly retr: readonly RetrRun[];
  readonly bigOctets: number;
}

export interface LoginSummary {
  readonly label: string;
  readonly sessionsPerS: number;
  /** Median over rounds of (this target's sessions/s ÷ its baseline's, same round); NaN for a baseline. */
  readonly vsDirect: number;
  readonly proxyCpuUs: number;
  readonly errors: number;
}

export interface RetrSummary {
  readonly label: string;
  readonly mbps: number;
  readonly vsDirect: number;
  readonly ok: number;
  readonly timed: number;
  readonly shaOk: boolean | undefined;
}

export function summarizeLogins(runs: readonly LoginRun[], labels: readonly string[], baselines: Readonly<Record<string, string>>): LoginSummary[] {
  return labels.map((label) => {
    const mine = runs.filter((r) => r.label === label);
    const base = new Map(runs.filter((r) => r.label === baselines[label]).map((r) => [r.round, r.sessionsPerS]));
    return {
      label,
      sessionsPerS: median(mine.map((r) => r.sessionsPerS)),
      vsDirect: median(mine.map((r) => r.sessionsPerS / (base.get(r.round) ?? Number.NaN))),
      proxyCpuUs: median(mine.map((r) => r.proxyCpuUsPerSession ?? Number.NaN)),
      errors: mine.reduce((a, r) => a + r.errors, 0),
    };
  });
}

export function summarizeRetr(runs: readonly RetrRun[], labels: readonly string[], baselines: Readonly<Record<string, string>>): RetrSummary[] {
  const med = (label: string | undefined) => median(runs.filter((r) => r.label === label && r.rep > 0 && r.ok).map((r) => r.mbps));
  return labels.map((label) => {
    const timed = runs.filter((r) => r.label === label && r.rep > 0);
    return {
      label,
      mbps: med(label),
      vsDirect: med(label) / med(baselines[label]),
      ok: timed.filter((r) => r.ok).length,
      timed: timed.length,
      shaOk: runs.find((r) => r.label === label && r.rep === 0)?.shaOk,
    };
  });
}

export function renderReport(i: ReportInput): string {
  const out: string[] = [];
  const m = i.machine;
  const isBase = (label: string) => i.baselines[label] === undefined;
  const ratio = (label: string, r: number) => (isBase(label) ? '1.00×' : Number.isFinite(r) ? `${r.toFixed(3)}× ${i.baselines[label]}` : '—');
  out.push(`## POP3 benchmark: ${i.title ?? 'direct vs Concierge'} (${i.date})`, '');
  out.push(`- command: \`${i.command}\``);
  out.push(`- machine: ${m.nproc} CPU (${m.cpuModel}), ${m.memMiB} MiB RAM, Linux ${m.kernel}, Node ${m.node}; load average at start ${m.loadavg.join(' ')}`);
  out.push(`- code: ${m.git}; ${i.build}`);
  out.push(`- backend: ${i.backend}`);
  out.push(`- settings: ${i.settings}`);
  for (const [label, note] of Object.entries(i.notes)) out.push(`- ${label}: ${note}`);
  out.push('');

  if (i.logins.length > 0) {
    const sums = summarizeLogins(i.logins, i.labels, i.baselines);
    out.push('### Login sessions (connect, greeting, USER, PASS, STAT, QUIT, server close)', '');
    const rows = i.labels.map((label, k) => {
      const mine = i.logins.filter((r) => r.label === label);
      const [lo, hi] = minMax(mine.map((r) => r.sessionsPerS));
      const s = sums[k]!;
      const kinds: Record<string, number> = {};
      for (const r of mine) for (const [e, n] of Object.entries(r.errorKinds)) kinds[e] = (kinds[e] ?? 0) + n;
      return [
        label,
        fmt(s.sessionsPerS),
        ratio(label, s.vsDirect),
        `${fmt(lo)}–${fmt(hi)}`,
        fmt(median(mine.map((r) => r.p50Ms)), 1),
        fmt(median(mine.map((r) => r.p99Ms)), 1),
        isBase(label) ? '—' : `${fmt(s.proxyCpuUs)} (sys ${fmt(median(mine.map((r) => r.proxySysUsPerSession ?? Number.NaN)))})`,
        fmt(median(mine.map((r) => r.backendCpuUsPerSession))),
        s.errors === 0 ? '0' : `${s.errors} ${JSON.stringify(kinds)}`,
        fmt(median(mine.map((r) => r.loadgenCpuPct))),
        fmt(median(mine.map((r) => r.otherCpuPct))),
        fmt(median(mine.map((r) => r.stealPct))),
      ];
    });
    out.push(
      table(
        ['target', 'sessions/s', 'vs direct', 'range (min–max)', 'p50 ms', 'p99 ms', 'proxy CPU µs/session (kernel part)', 'backend CPU µs/session', 'errors', 'loadgen CPU %', 'other CPU %', 'steal %'],
        rows,
      ),
      '',
    );
    out.push('Medians over rounds; "vs direct" is the median of the per-round ratios against the target named. Per round:', '');
    const rounds = [...new Set(i.logins.map((r) => r.round))];
    out.push(
      table(
        ['round', ...i.labels.map((l) => `${l} /s`), ...i.labels.filter((l) => !isBase(l)).map((l) => `${l} µs/session`)],
        rounds.map((round) => {
          const of = (l: string) => i.logins.find((r) => r.round === round && r.label === l);
          return [
            String(round),
            ...i.labels.map((l) => fmt(of(l)?.sessionsPerS)),
            ...i.labels.filter((l) => !isBase(l)).map((l) => fmt(of(l)?.proxyCpuUsPerSession)),
          ];
        }),
      ),
      '',
    );
  }

  if (i.retr.length > 0) {
    const sums = summarizeRetr(i.retr, i.labels, i.baselines);
    out.push(`### RETR of one ${(i.bigOctets / 1048576).toFixed(1)} MiB message (one transfer at a time)`, '');
    out.push(
      table(
        ['target', 'MB/s (median)', 'vs direct', 'range (min–max)', 'proxy CPU ms/transfer (kernel part)', 'transfers ok', 'SHA-256 check'],
        sums.map((s) => {
          const timed = i.retr.filter((r) => r.label === s.label && r.rep > 0 && r.ok);
          const [lo, hi] = minMax(timed.map((r) => r.mbps));
          return [
            s.label,
            fmt(s.mbps, 1),
            ratio(s.label, s.vsDirect),
            `${fmt(lo, 1)}–${fmt(hi, 1)}`,
            isBase(s.label)
              ? '—'
              : `${fmt(median(timed.map((r) => (r.proxyCpuS ?? Number.NaN) * 1000)))} (sys ${fmt(median(timed.map((r) => (r.proxySysS ?? Number.NaN) * 1000)))})`,
            `${s.ok}/${s.timed}`,
            s.shaOk === undefined ? 'not run' : s.shaOk ? 'ok' : 'MISMATCH',
          ];
        }),
      ),
      '',
    );
    out.push('MB = 10^6 octets of the RETR response body (dot-stuffed message + terminator); time = RETR sent → terminator received. "vs direct" is the ratio of the medians against the target named.', '');
  }

  // Issue 5 (TLS) sets no bars of its own: TLS paths are held to the plain ones, against direct-with-TLS.
  const tlsPaths = Object.values(i.baselines).includes('direct-tls');
  out.push(`### Against the targets (issue 2${tlsPaths ? '; TLS paths against direct-with-TLS' : ''})`, '');
  const rows: string[][] = [];
  const lsum = i.logins.length > 0 ? summarizeLogins(i.logins, i.labels, i.baselines) : [];
  const rsum = i.retr.length > 0 ? summarizeRetr(i.retr, i.labels, i.baselines) : [];
  const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
  for (const label of i.labels.filter((l) => !isBase(l))) {
    const direct = lsum.find((s) => s.label === i.baselines[label]);
    const rdirect = rsum.find((s) => s.label === i.baselines[label]);
    const l = lsum.find((s) => s.label === label);
    if (l && direct) {
      rows.push([`logins/s, ${label} vs ${i.baselines[label]}`, fmt(direct.sessionsPerS), fmt(l.sessionsPerS), `${fmt(l.vsDirect, 3)}×`, '≥ 0.95×', verdict(l.vsDirect >= 0.95)]);
      rows.push([`proxy CPU µs/session, ${label}`, '—', fmt(l.proxyCpuUs), '—', '≤ 400 µs', verdict(l.proxyCpuUs <= 400)]);
    }
    const r = rsum.find((s) => s.label === label);
    if (r && rdirect) rows.push([`RETR MB/s, ${label} vs ${i.baselines[label]}`, fmt(rdirect.mbps, 1), fmt(r.mbps, 1), `${fmt(r.vsDirect, 3)}×`, '≥ 0.97×', verdict(r.vsDirect >= 0.97)]);
  }
  out.push(table(['measure', 'baseline', 'concierge', 'ratio', 'target', 'verdict'], rows), '');
  return out.join('\n');
}
