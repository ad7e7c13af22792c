/**
 * Relay benchmark: messages per second accepted into the queue (file, record and folder fsynced
 * before each 250) and delivered to a local sink (smtp-server), for 1 KiB and 1 MiB messages
 * from 1 and 10 tenants; the same client sending straight to the sink is the "direct" baseline.
 * Everything runs in this one process (client, relay, sink), on loopback, with the spool on the
 * repository's disk (bench/run/relay-spool), never on tmpfs.
 *
 *   node --import tsx bench/relay.ts [--small N] [--large N] [--connections N]   (npm run bench:relay)
 *
 * Exit status: 1 when a message is refused or lost (never for a slow figure); 2 on bad usage.
 */
import { mkdir, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SMTPServer } from 'smtp-server';
import { readReply } from '../proxies/smtp/reply-reader.js';
import { parseConfig } from '../src/config.js';
import { startConcierge } from '../src/concierge.js';
import { LineChannel } from '../src/line-channel.js';
import { createSilentLogger } from '../src/log.js';

const root = path.join(import.meta.dirname, '..');

function options() {
  try {
    const { values } = parseArgs({ options: { small: { type: 'string', default: '2000' }, large: { type: 'string', default: '60' }, connections: { type: 'string', default: '10' } } });
    return { small: Number(values.small), large: Number(values.large), connections: Number(values.connections) };
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage: node --import tsx bench/relay.ts [--small N] [--large N] [--connections N]\n`);
    process.exit(2);
  }
}

/** A sink that counts messages and wakes whoever waits for a count. */
async function startSink(): Promise<{ port: number; count: () => number; until: (n: number) => Promise<void>; close: () => Promise<void> }> {
  let count = 0;
  let waiters: Array<() => void> = [];
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    size: 64 * 1024 * 1024,
    onData(stream, _session, callback) {
      stream.on('data', () => {});
      stream.on('end', () => {
        count++;
        for (const w of waiters.splice(0)) w();
        callback(null, 'OK');
      });
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as AddressInfo).port,
    count: () => count,
    until: async (n) => {
      while (count < n) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Sends `n` messages of `body` on one connection, one transaction after the other (MAIL/RCPT/DATA pipelined). */
async function sendMany(port: number, localAddress: string, from: string, n: number, body: Buffer): Promise<void> {
  // noDelay: with Nagle, the end mark written after the body waits for a delayed ACK (~40 ms a message).
  const socket = net.connect({ host: '127.0.0.1', port, localAddress, noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const channel = new LineChannel(socket, 'backend', 8192);
  const expect = async (code: number, step: string) => {
    const reply = await readReply(channel, 60_000, step);
    if (reply.code !== code) throw new Error(`${step}: ${reply.text.trim()}`);
  };
  await expect(220, 'greeting');
  channel.writeLine('EHLO bench.client');
  await expect(250, 'EHLO');
  for (let i = 0; i < n; i++) {
    channel.write(`MAIL FROM:<${from}>\r\nRCPT TO:<sink@far.example>\r\nDATA\r\n`);
    await expect(250, 'MAIL');
    await expect(250, 'RCPT');
    await expect(354, 'DATA');
    await channel.writeBytes(body);
    channel.write('.\r\n');
    await expect(250, 'end of data');
  }
  channel.writeLine('QUIT');
  await expect(221, 'QUIT');
  socket.destroy();
}

/** A body of about `size` octets: headers, then 76-character lines. */
function bodyOf(size: number): Buffer {
  const head = 'From: bench@t0.example\r\nTo: sink@far.example\r\nSubject: relay bench\r\n\r\n';
  const line = `${'x'.repeat(76)}\r\n`;
  return Buffer.from(head + line.repeat(Math.max(1, Math.round((size - head.length) / line.length))), 'latin1');
}

interface Run {
  readonly acceptedPerS: number;
  readonly deliveredPerS: number;
}

/**
 * A server that accepts connections and never greets: delivery toward it waits (one connection,
 * idle) while intake is measured alone.
 */
async function startSilentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Sends `total` messages over `connections` connections spread over `tenants` tenants: through the
 * relay, direct to the sink, or into the relay's queue only (delivery stalled on a silent server).
 */
async function run(kind: 'relay' | 'direct' | 'intake', tenants: number, total: number, size: number, connections: number): Promise<Run> {
  const sink = await startSink();
  const silent = kind === 'intake' ? await startSilentServer() : undefined;
  const spool = path.join(root, 'bench', 'run', 'relay-spool');
  await rm(spool, { recursive: true, force: true });
  await mkdir(spool, { recursive: true });
  const names = Array.from({ length: tenants }, (_, i) => `t${i}.example`);
  const config = parseConfig({
    log: { level: 'warn' },
    listeners: [{ protocol: 'smtp', mode: 'relay', address: '127.0.0.1', port: 0, hostname: 'relay.bench', identifyBy: ['address'], maxMessageSize: 32 * 1024 * 1024 }],
    relay: { spool, transports: { '*': `127.0.0.1:${silent?.port ?? sink.port}` }, maxConnectionsPerDestination: silent ? 1 : 20, maxDeliveriesPerTenant: 10 },
    tenants: names.map((domain, i) => ({ domain, sourceAddress: `127.0.0.${20 + i}`, relayFrom: [`127.0.1.${20 + i}`] })),
  });
  const concierge = kind !== 'direct' ? await startConcierge(config, { logger: createSilentLogger() }) : undefined;
  const port = concierge ? concierge.listeners[0]!.address().port : sink.port;
  const body = bodyOf(size);
  const perConnection = Math.ceil(total / connections);
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: connections }, (_, c) => {
      const t = c % tenants;
      return sendMany(port, `127.0.1.${20 + t}`, `bench@${names[t]}`, perConnection, body);
    }),
  );
  const acceptedAt = process.hrtime.bigint();
  const sent = perConnection * connections;
  if (!silent) await sink.until(sent);
  const deliveredAt = process.hrtime.bigint();
  if (concierge) {
    if (!silent) await concierge.relay!.runner.whenIdle();
    await concierge.close(0);
  }
  await silent?.close();
  await sink.close();
  const seconds = (t: bigint) => Number(t - started) / 1e9;
  return { acceptedPerS: sent / seconds(acceptedAt), deliveredPerS: sent / seconds(deliveredAt) };
}

async function main(): Promise<void> {
  const o = options();
  const rows: string[] = [];
  process.stdout.write(`# Relay bench: ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, Node ${process.version}, ${o.connections} client connections\n\n`);
  rows.push(
    '| message | tenants | messages | direct to sink msg/s | relay accepted msg/s, no delivery (fsync) | relay accepted msg/s, delivering | relay delivered msg/s | queue only vs direct | delivered vs direct |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const [label, size, total] of [['1 KiB', 1024, o.small], ['1 MiB', 1024 * 1024, o.large]] as const) {
    for (const tenants of [1, 10]) {
      const direct = await run('direct', tenants, total, size, o.connections);
      const intake = await run('intake', tenants, total, size, o.connections);
      const relay = await run('relay', tenants, total, size, o.connections);
      const f = (x: number) => x.toFixed(x < 100 ? 1 : 0);
      rows.push(
        `| ${label} | ${tenants} | ${total} | ${f(direct.deliveredPerS)} | ${f(intake.acceptedPerS)} | ${f(relay.acceptedPerS)} | ${f(relay.deliveredPerS)} | ${(intake.acceptedPerS / direct.deliveredPerS).toFixed(2)}× | ${(relay.deliveredPerS / direct.deliveredPerS).toFixed(2)}× |`,
      );
      process.stdout.write(`${rows.at(-1)}\n`);
    }
  }
  process.stdout.write(`\n${rows.join('\n')}\n`);
  await rm(path.join(root, 'bench', 'run', 'relay-spool'), { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
