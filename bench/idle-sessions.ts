/**
 * Memory per idle logged-in POP3 session: opens N sessions through Concierge to the demo POP3
 * backend (one mailbox each: the demo server locks a mailbox per session), leaves them idle, and
 * reads Concierge's RSS and V8 heap after a full GC, before and after. With --census, heap
 * snapshots before and after are compared to show which objects the bytes go to.
 *
 *   node --import tsx bench/idle-sessions.ts [--sessions 9900] [--census 1000] [--snapshots DIR]
 *
 * --snapshots keeps the two heap snapshots of the census in DIR (for Chrome DevTools' Memory tab).
 *
 * Concierge holds two sockets per session (client, backend): 10,000 sessions need 20,000 fds plus
 * its own, over this machine's hard limit of 20,000 per process, hence the default of 9,900.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFile, mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startBackend } from './lib/backends.js';
import { cleanupAll, onCleanup, removeDirOnCleanup } from './lib/cleanup.js';
import { ensureBuilt, repoRoot, SOURCE_ADDRESS } from './lib/concierge.js';
import { bigMessage, DOMAIN, loginAccounts, type Account } from './lib/mail-data.js';
import type { Endpoint } from './lib/net-util.js';

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '9900' }, census: { type: 'string', default: '0' }, snapshots: { type: 'string' }, concurrency: { type: 'string', default: '64' } } });
const SESSIONS = Number(values.sessions);
const CENSUS = Number(values.census);
const CONCURRENCY = Number(values.concurrency);

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  sessions: number;
}

/** One logged-in session left open; resolves with its socket after +OK to PASS. */
function openSession(target: Endpoint, account: Account): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port });
    let text = '';
    let step = 0;
    socket.setTimeout(30_000, () => socket.destroy(new Error('session timed out')));
    socket.on('error', reject);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      for (let end = text.indexOf('\r\n'); end >= 0; end = text.indexOf('\r\n')) {
        const line = text.slice(0, end);
        text = text.slice(end + 2);
        if (!line.startsWith('+OK')) return socket.destroy(new Error(`step ${step}: ${line}`));
        if (step === 0) socket.write(`USER ${account.login}\r\n`);
        else if (step === 1) socket.write(`PASS ${account.password}\r\n`);
        else {
          socket.setTimeout(0);
          socket.removeAllListeners('data');
          return resolve(socket);
        }
        step++;
      }
    });
  });
}

async function openMany(target: Endpoint, accounts: readonly Account[]): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let next = 0;
  const worker = async () => {
    while (next < accounts.length) sockets.push(await openSession(target, accounts[next++]!));
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return sockets;
}

async function closeAll(sockets: net.Socket[]): Promise<void> {
  await Promise.all(sockets.map((s) => (s.destroyed ? undefined : (s.destroy(), once(s, 'close')))));
}

/** Self bytes per "type:name" of a V8 heap snapshot. */
async function census(file: string): Promise<Map<string, { bytes: number; count: number }>> {
  const snap = JSON.parse(await readFile(file, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const types = snap.snapshot.meta.node_types[0];
  const out = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    // Strings and code are grouped by type: their names are their contents.
    const name = type === 'object' || type === 'closure' || type === 'native' ? snap.strings[snap.nodes[i + nameAt]!]! : '';
    const key = `${type}:${name}`;
    const entry = out.get(key) ?? { bytes: 0, count: 0 };
    entry.bytes += snap.nodes[i + sizeAt]!;
    entry.count++;
    out.set(key, entry);
  }
  return out;
}

async function main(): Promise<void> {
  process.stderr.write(`${ensureBuilt(true)}\n`);
  const dir = await mkdtemp(path.join(tmpdir(), 'concierge-idle-'));
  removeDirOnCleanup(dir);
  const count = Math.max(SESSIONS, CENSUS);
  const accounts = loginAccounts(count + 1);
  process.stderr.write(`writing ${accounts.length} mailboxes under ${dir}\n`);
  const backend = await startBackend('demo', { dir, accounts, big: bigMessage(0.001) });

  const config = path.join(dir, 'tenants.json');
  await writeFile(
    config,
    JSON.stringify({
      log: { level: 'warn' },
      listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }],
      tenants: [{ domain: DOMAIN, sourceAddress: SOURCE_ADDRESS, backendUser: 'full', backends: { pop3: [{ host: backend.endpoint.host, port: backend.endpoint.port }] } }],
    }),
  );
  const child = fork(path.join(repoRoot, 'bench', 'lib', 'memory-child.mjs'), [config], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  onCleanup('memory child', () => {
    child.kill('SIGTERM');
  });
  const reply = async <T>(message: unknown): Promise<T> => {
    const answer = once(child, 'message') as Promise<[T]>;
    child.send(message as string);
    return (await answer)[0];
  };
  const [{ port }] = (await once(child, 'message')) as [{ port: number }];
  const target = { host: '127.0.0.1', port };
  // Warm-up: one session in and out, so lazily loaded code and first-use caches are in the baseline.
  await closeAll(await openMany(target, accounts.slice(count)));
  const settle = async (sessions: number) => {
    for (;;) {
      const m = await reply<Memory>('measure');
      if (m.sessions === sessions) return m;
      await new Promise((resolve) => setTimeout(resolve, 100)); // polling the child's count: the bench's own pacing, not a test
    }
  };
  const lines: string[] = [];
  const KiB = (n: number) => (n / 1024).toFixed(2);

  if (SESSIONS > 0) {
    const before = await settle(0);
    const started = Date.now();
    const sockets = await openMany(target, accounts.slice(0, SESSIONS));
    const openedMs = Date.now() - started;
    const after = await settle(SESSIONS);
    const per = (k: keyof Memory) => (after[k] - before[k]) / SESSIONS;
    lines.push(
      `| sessions | RSS per session | V8 heap per session | external per session | RSS before → after | opened in |`,
      `|---:|---:|---:|---:|---|---:|`,
      `| ${SESSIONS} | ${KiB(per('rss'))} KiB | ${KiB(per('heapUsed'))} KiB | ${KiB(per('external'))} KiB | ${(before.rss / 2 ** 20).toFixed(1)} → ${(after.rss / 2 ** 20).toFixed(1)} MiB | ${(openedMs / 1000).toFixed(1)} s |`,
    );
    await closeAll(sockets);
    await settle(0);
  }

  if (CENSUS > 0) {
    const snapDir = values.snapshots ? path.resolve(values.snapshots) : path.join(dir, 'snapshots');
    await mkdir(snapDir, { recursive: true });
    await reply('measure');
    await reply({ snapshot: path.join(snapDir, 'before.heapsnapshot') });
    const sockets = await openMany(target, accounts.slice(0, CENSUS));
    await settle(CENSUS);
    await reply({ snapshot: path.join(snapDir, 'after.heapsnapshot') });
    const [a, b] = [await census(path.join(snapDir, 'before.heapsnapshot')), await census(path.join(snapDir, 'after.heapsnapshot'))];
    const rows = [...b.entries()]
      .map(([key, v]) => ({ key, bytes: (v.bytes - (a.get(key)?.bytes ?? 0)) / CENSUS, count: (v.count - (a.get(key)?.count ?? 0)) / CENSUS }))
      .filter((r) => r.bytes >= 16)
      .sort((x, y) => y.bytes - x.bytes);
    const total = rows.reduce((t, r) => t + r.bytes, 0);
    lines.push('', `Heap census, ${CENSUS} idle sessions (self bytes per session by V8 type:constructor, ≥ 16 B; sum of shown rows ${total.toFixed(0)} B):`, '', '| object | bytes/session | objects/session |', '|---|---:|---:|');
    for (const r of rows.slice(0, 25)) lines.push(`| \`${r.key}\` | ${r.bytes.toFixed(0)} | ${r.count.toFixed(2)} |`);
    await closeAll(sockets);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  await backend.stop();
}

main().then(
  async () => {
    await cleanupAll();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
