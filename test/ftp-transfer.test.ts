import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from 'basic-ftp';
import { BROKEN_PREFIX } from './support/ftp-backend.js';
import { FTP_PASSWORD_A, FTP_PASSWORD_B, startFtpTwoTenants, type FtpTwoTenants } from './support/ftp-fixtures.js';
import { epsvPort, ftpCommand, ftpLogin, readAll, readFtpReply } from './support/ftp-raw.js';
import { sampleValue } from './support/prometheus.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The size, in passive mode (about 3 s here); active mode uses 20 MiB to keep the suite quick. */
const HUGE = randomBytes(100 * 1024 * 1024);
const BIG = HUGE.subarray(0, 20 * 1024 * 1024);
const SMALL = randomBytes(2 * 1024 * 1024);

async function curl(port: number, login: string, args: string[]): Promise<Buffer> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '60', '-u', login, ...args.map((a) => a.replace('PORT', String(port)))], { encoding: 'buffer', maxBuffer: 512 * 1024 * 1024 });
  return stdout;
}

async function download(client: Client, file: string, startAt = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (chunk: Buffer, _enc, done) => (chunks.push(chunk), done()) }), file, startAt);
  return Buffer.concat(chunks);
}

describe('FTP transfers through Concierge', () => {
  let env: FtpTwoTenants;
  let tmp: string;
  before(async () => {
    env = await startFtpTwoTenants({ base: 21200, filesA: { 'huge.bin': HUGE, 'big.bin': BIG, 'small.bin': SMALL }, filesB: { 'small.bin': SMALL } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'concierge-ftp-client-'));
    await writeFile(path.join(tmp, 'huge.bin'), HUGE);
    await writeFile(path.join(tmp, 'big.bin'), BIG);
  });
  after(async () => {
    await env.close();
    await rm(tmp, { recursive: true, force: true });
  });

  for (const [mode, args, name, original] of [['passive', [], 'huge.bin', HUGE], ['active', ['-P', '127.0.0.1'], 'big.bin', BIG]] as const) {
    test(`curl ${mode}: ${original.length >> 20} MiB download and upload are byte-identical (SHA-256)`, async () => {
      const login = `alice@a.example:${FTP_PASSWORD_A}`;
      const got = await curl(env.port, login, [...args, `ftp://127.0.0.1:PORT/${name}`]);
      assert.equal(got.length, original.length);
      assert.equal(sha256(got), sha256(original));
      await curl(env.port, login, [...args, '-T', path.join(tmp, name), `ftp://127.0.0.1:PORT/up-${mode}.bin`]);
      const stored = await readFile(path.join(env.backendA.root, `up-${mode}.bin`));
      assert.equal(stored.length, original.length);
      assert.equal(sha256(stored), sha256(original));
    });
  }

  test('basic-ftp: upload, list, download, REST resume and APPE', async () => {
    const client = new Client(20_000);
    await client.access({ host: '127.0.0.1', port: env.port, user: 'alice@b.example', password: FTP_PASSWORD_B });
    try {
      await client.uploadFrom(Readable.from([SMALL]), 'copy.bin');
      assert.deepEqual((await client.list()).map((f) => [f.name, f.size]).sort(), [['copy.bin', SMALL.length], ['small.bin', SMALL.length]]);
      assert.equal(sha256(await download(client, 'copy.bin')), sha256(SMALL));
      const offset = 1_234_567;
      const rest = await download(client, 'small.bin', offset);
      assert.equal(sha256(rest), sha256(SMALL.subarray(offset)), 'REST + RETR resumes at the offset');
      await client.appendFrom(Readable.from([SMALL.subarray(0, 1000)]), 'copy.bin');
      assert.equal(await client.size('copy.bin'), SMALL.length + 1000);
    } finally {
      client.close();
    }
    const stored = await readFile(path.join(env.backendB.root, 'copy.bin'));
    assert.equal(sha256(stored), sha256(Buffer.concat([SMALL, SMALL.subarray(0, 1000)])));
  });

  test('curl REST resume of a download (-C)', async () => {
    const got = await curl(env.port, `alice@a.example:${FTP_PASSWORD_A}`, ['-C', '1000000', 'ftp://127.0.0.1:PORT/small.bin']);
    assert.equal(sha256(got), sha256(SMALL.subarray(1_000_000)));
  });

  test('many sequential transfers in one session', async () => {
    const client = new Client(20_000);
    await client.access({ host: '127.0.0.1', port: env.port, user: 'alice@a.example', password: FTP_PASSWORD_A });
    try {
      for (let i = 0; i < 10; i++) assert.equal((await download(client, 'small.bin')).length, SMALL.length);
    } finally {
      client.close();
    }
  });

  test('20 concurrent sessions each transferring', async () => {
    const sessions = Array.from({ length: 20 }, async (_, i) => {
      const [user, password] = i % 2 === 0 ? ['alice@a.example', FTP_PASSWORD_A] : ['alice@b.example', FTP_PASSWORD_B];
      const client = new Client(30_000);
      await client.access({ host: '127.0.0.1', port: env.port, user, password });
      try {
        const got = await download(client, 'small.bin');
        await client.uploadFrom(Readable.from([got]), `concurrent-${i}.bin`);
        return sha256(got);
      } finally {
        client.close();
      }
    });
    const hashes = await Promise.all(sessions);
    assert.ok(hashes.every((h) => h === sha256(SMALL)));
    for (let i = 0; i < 20; i++) {
      const root = i % 2 === 0 ? env.backendA.root : env.backendB.root;
      assert.equal(sha256(await readFile(path.join(root, `concurrent-${i}.bin`))), sha256(SMALL));
    }
  });

  test('ABOR mid-transfer leaves the session usable', async () => {
    const { c, reply } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    assert.match(reply, /^230/);
    await ftpCommand(c, 'TYPE I');
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    const data = await import('node:net').then((net) => net.connect({ host: '127.0.0.1', port }));
    data.on('error', () => {}); // the aborted data connection is reset
    await new Promise((resolve) => data.once('connect', resolve));
    assert.match(await ftpCommand(c, 'RETR big.bin'), /^150 /);
    await new Promise((resolve) => data.once('data', resolve));
    data.pause();
    // Telnet IP + Synch before ABOR, as RFC 959 §4.1.3 describes.
    c.send(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
    const transferReply = await readFtpReply(c);
    assert.match(transferReply, /^(426|451|551) /, 'the transfer is not reported complete');
    assert.match(await readFtpReply(c), /^22[56] /, 'ABOR acknowledged');
    data.destroy();
    assert.match(await ftpCommand(c, 'NOOP'), /^200/);
    const again = epsvPort(await ftpCommand(c, 'EPSV'));
    const body = readAll(again);
    assert.match(await ftpCommand(c, 'RETR small.bin'), /^150 /);
    assert.equal(sha256(await body), sha256(SMALL));
    assert.match(await readFtpReply(c), /^226 /);
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('a backend that drops the data connection midway: the client gets its error, not 226', async () => {
    const { c } = await ftpLogin(env.port, 'alice@b.example', FTP_PASSWORD_B);
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    const body = readAll(port);
    assert.match(await ftpCommand(c, 'RETR broken.bin'), /^150 /);
    const final = await readFtpReply(c);
    assert.match(final, /^(426|451|551) /);
    assert.ok((await body).length <= BROKEN_PREFIX);
    assert.match(await ftpCommand(c, 'NOOP'), /^200/);
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('a client that vanishes mid-transfer leaves nothing behind', async () => {
    const { c } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    const net = await import('node:net');
    const data = net.connect({ host: '127.0.0.1', port });
    data.on('error', () => {});
    c.send('RETR big.bin\r\n');
    await new Promise((resolve) => data.once('data', resolve));
    data.destroy();
    c.close();
    setTimeout(() => { for (const [id, h] of (globalThis as any).__open ?? []) console.log('OPEN', id, h.constructor.name, h.destroyed, h.listening, h.connecting, h.remotePort, h.localPort, h.readableEnded, h.writableFinished); }, 3000).unref();
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
  });

  test('no socket or passive port is left behind; data bytes count toward the tenant’s traffic', async () => {
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
    const a = env.concierge.traffic.get('a.example')!;
    assert.ok(a.bytesDown > HUGE.length + BIG.length && a.bytesUp > HUGE.length + BIG.length, JSON.stringify(a));
    // The Prometheus counters carry the same sums, data connections included.
    const metrics = await env.concierge.metrics.text();
    assert.equal(sampleValue(metrics, 'concierge_backend_to_client_bytes_total', { tenant: 'a.example', protocol: 'ftp' }), a.bytesDown);
    assert.equal(sampleValue(metrics, 'concierge_client_to_backend_bytes_total', { tenant: 'a.example', protocol: 'ftp' }), a.bytesUp);
  });
});
