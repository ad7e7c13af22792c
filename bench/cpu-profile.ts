/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): top functions by self time and by total
 * (inclusive) time, and self time per area (node internals, each node_modules package, each
 * Concierge source file). Percentages are of the busy samples ((idle) excluded).
 *
 *   node --import tsx bench/cpu-profile.ts FILE.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { table } from './lib/stats.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
const file = positionals[0];
if (!file) {
  process.stderr.write('usage: node --import tsx bench/cpu-profile.ts FILE.cpuprofile [--top N]\n');
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Where a frame lives, shortened: node:internal/..., winston, src/session.js, ... */
function where(url: string): string {
  if (url === '') return '';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 14).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (u.startsWith('node:')) return u;
  const dist = u.indexOf('/dist/');
  return dist >= 0 ? u.slice(dist + 6) : path.basename(u);
}
function key(n: ProfileNode): string {
  const f = n.callFrame;
  const name = f.functionName || '(anonymous)';
  const w = where(f.url);
  return w ? `${name} ${w}:${f.lineNumber + 1}` : name;
}
function area(n: ProfileNode): string {
  const f = n.callFrame;
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : '(native / V8 builtins)';
  const w = where(f.url);
  if (w.startsWith('node:')) return 'node: internals';
  return f.url.includes('/node_modules/') ? `npm ${w}` : `concierge ${w}`;
}

// Each sample lasts until the next one; timeDeltas[i] is the gap before sample i.
const samples = profile.samples;
const deltas = profile.timeDeltas;
const dur = samples.map((_, i) => (i + 1 < deltas.length ? deltas[i + 1]! : 0));
const self = new Map<string, number>();
const total = new Map<string, number>();
const areas = new Map<string, number>();
let busy = 0;
let idle = 0;
samples.forEach((id, i) => {
  const d = dur[i]!;
  const n = byId.get(id)!;
  if (n.callFrame.functionName === '(idle)') {
    idle += d;
    return;
  }
  busy += d;
  self.set(key(n), (self.get(key(n)) ?? 0) + d);
  areas.set(area(n), (areas.get(area(n)) ?? 0) + d);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur)!);
    if (seen.has(k)) continue;
    seen.add(k);
    total.set(k, (total.get(k) ?? 0) + d);
  }
});

const ms = (us: number) => (us / 1000).toFixed(0);
const pct = (us: number) => ((us / busy) * 100).toFixed(1);
const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);

const out: string[] = [];
out.push(`### ${path.basename(file)}`, '');
out.push(`profile ${ms(profile.endTime - profile.startTime)} ms, busy ${ms(busy)} ms, idle ${ms(idle)} ms; percentages are of busy time`, '');
out.push('Self time by area:', '');
out.push(table(['area', 'self ms', 'self %'], sorted(areas).map(([k, v]) => [k, ms(v), pct(v)])), '');
out.push(`Top ${top} functions by self time:`, '');
out.push(table(['function (file:line)', 'self ms', 'self %', 'total %'], sorted(self).slice(0, top).map(([k, v]) => [`\`${k}\``, ms(v), pct(v), pct(total.get(k) ?? 0)])), '');
out.push(`Top ${top} functions by total (inclusive) time, Concierge and npm code only:`, '');
const own = sorted(total).filter(([k]) => !/^\(|node:/.test(k) && / \S+:\d+$/.test(k));
out.push(table(['function (file:line)', 'total ms', 'total %', 'self %'], own.slice(0, top).map(([k, v]) => [`\`${k}\``, ms(v), pct(v), pct(self.get(k) ?? 0)])), '');
process.stdout.write(`${out.join('\n')}\n`);
