/**
 * 100,000 tenants: how long tenants.json takes to load and validate, to build the tenant
 * directory, and to reload in a running instance (SIGHUP → "tenants reloaded" log line), with
 * the instance's memory before and after.
 *
 *   node --import tsx bench/tenants-scale.ts [--tenants 100000] [--reps 5]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { TenantDirectory } from '../src/tenants.js';
import { ensureBuilt, cliPath, repoRoot } from './lib/concierge.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({ options: { tenants: { type: 'string', default: '100000' }, reps: { type: 'string', default: '5' } } });
const TENANTS = Number(values.tenants);
const REPS = Number(values.reps);

/** A shared-host config: each tenant a domain, an alias, its own source address, POP3 and FTP backends. */
function generate(count: number, port: number): object {
  const tenants = Array.from({ length: count }, (_, i) => ({
    domain: `t${i}.example`,
    aliases: [`mail.t${i}.example`],
    sourceAddress: `127.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) || 1}`,
    backends: { pop3: [{ host: '127.0.0.1', port: 11_000 + (i % 100) }], ftp: [{ host: '127.0.0.1', port: 12_000 + (i % 100) }] },
  }));
  return { log: { level: 'info' }, listeners: [{ protocol: 'pop3', address: '127.0.0.1', port }], tenants };
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** Connects, waits for the POP3 greeting line, closes. */
async function greeting(port: number): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => d.includes(10) && resolve());
    socket.once('close', () => resolve());
  });
  socket.destroy();
}

async function main(): Promise<void> {
  ensureBuilt(true);
  const dir = await mkdtemp(path.join(tmpdir(), 'concierge-tenants-'));
  try {
    const file = path.join(dir, 'tenants.json');
    await writeFile(file, JSON.stringify(generate(TENANTS, 0)));
    const size = (await stat(file)).size;

    const load: number[] = [];
    const build: number[] = [];
    for (let i = 0; i < REPS; i++) {
      let t0 = process.hrtime.bigint();
      const config = await loadConfig(file);
      load.push(ms(t0));
      t0 = process.hrtime.bigint();
      new TenantDirectory(config);
      build.push(ms(t0));
    }

    // A running instance (the built CLI, as deployed), reloaded REPS times.
    const child = spawn(process.execPath, [cliPath, 'start', '--config', file], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    let partial = '';
    let wake = () => {};
    child.stdout.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
      wake();
    });
    const waitFor = async (message: string, count: number) => {
      for (;;) {
        if (lines.filter((l) => l.includes(`"message":"${message}"`)).length >= count) return;
        if (child.exitCode !== null) throw new Error(`concierge exited before ${message}`);
        await new Promise<void>((resolve) => (wake = resolve));
      }
    };
    const rss = async () => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
    const started = process.hrtime.bigint();
    await waitFor('listening', 1);
    const startMs = ms(started);
    const listenPort = Number(/"port":(\d+)/.exec(lines.find((l) => l.includes('"message":"listening"'))!)![1]);
    const rssStart = await rss();
    const reload: number[] = [];
    const stall: number[] = [];
    for (let i = 1; i <= REPS; i++) {
      const t0 = process.hrtime.bigint();
      child.kill('SIGHUP');
      const reloaded = waitFor('tenants reloaded', i).then(() => (done = true));
      // Meanwhile, one client after another: the slowest greeting shows how long the instance stalled.
      let done = false;
      let worst = 0;
      while (!done) {
        const g0 = process.hrtime.bigint();
        await greeting(listenPort);
        worst = Math.max(worst, ms(g0));
      }
      await reloaded;
      reload.push(ms(t0));
      stall.push(worst);
    }
    const rssAfter = await rss();
    child.kill('SIGTERM');
    await once(child, 'exit');

    const f = (xs: number[]) => `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
    process.stdout.write(
      [
        `| ${TENANTS} tenants, ${(size / 2 ** 20).toFixed(1)} MiB of JSON | median (min–max) of ${REPS} |`,
        '|---|---|',
        `| read + parse + validate (loadConfig) | ${f(load)} |`,
        `| build the tenant directory | ${f(build)} |`,
        `| \`concierge start\` to "listening" | ${startMs.toFixed(0)} ms (one run) |`,
        `| reload: SIGHUP → "tenants reloaded" | ${f(reload)} |`,
        `| slowest POP3 greeting during a reload (clients back to back) | ${f(stall)} |`,
        `| RSS of the instance: after start → after ${REPS} reloads | ${rssStart.toFixed(0)} → ${rssAfter.toFixed(0)} MiB |`,
      ].join('\n') + '\n',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
