import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { DATA_PATH_ENV, dataPath } from '../src/data-path.js';
import { FTP_PASSWORD_A, startFtpTwoTenants, type FtpTwoTenants } from './support/ftp-fixtures.js';
import { epsvPort, ftpCommand, ftpLogin, readAll, readFtpReply } from './support/ftp-raw.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const LOGIN = `alice@a.example:${FTP_PASSWORD_A}`;
const BIG = randomBytes(64 * 1024 * 1024);

/** The pipes and eventfds this process holds: the addon makes one of each per relay direction, and must close them. */
function addonFds(): { pipes: number; eventfds: number } {
  let pipes = 0;
  let eventfds = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory's own fd, closed by now
    }
    if (target.startsWith('pipe:')) pipes++;
    else if (target === 'anon_inode:[eventfd]') eventfds++;
  }
  return { pipes, eventfds };
}

async function curl(port: number, args: string[]): Promise<Buffer> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '60', '-u', LOGIN, ...args.map((a) => a.replace('PORT', String(port)))], { encoding: 'buffer', maxBuffer: 128 * 1024 * 1024 });
  return stdout;
}

/** Debug lines saying a relay ran on kernel pumps. */
const kernelRelays = (env: FtpTwoTenants) => env.logs.records().filter((r) => r.message === 'data relay on kernel pumps').length;

/** Logged in as alice@a.example in binary mode, with a passive data connection open (its errors ignored). */
async function loggedInWithData(port: number): Promise<{ c: Awaited<ReturnType<typeof ftpLogin>>['c']; data: net.Socket }> {
  const { c } = await ftpLogin(port, 'alice@a.example', FTP_PASSWORD_A);
  await ftpCommand(c, 'TYPE I');
  const data = net.connect({ host: '127.0.0.1', port: epsvPort(await ftpCommand(c, 'EPSV')) });
  data.on('error', () => {});
  await once(data, 'connect');
  return { c, data };
}

describe('FTP data relay on the splice(2) addon', () => {
  let env: FtpTwoTenants;
  let tmp: string;
  before(async () => {
    delete process.env[DATA_PATH_ENV];
    env = await startFtpTwoTenants({ base: 21600, filesA: { 'big.bin': BIG }, limits: { idleTimeoutMs: 2_000, dataConnectTimeoutMs: 1_000, loginTimeoutMs: 2_000, backendReplyTimeoutMs: 1_500 } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'concierge-ftp-kernel-'));
    await writeFile(path.join(tmp, 'big.bin'), BIG);
  });
  afterEach(() => delete process.env[DATA_PATH_ENV]);
  after(async () => {
    await env.close();
    await rm(tmp, { recursive: true, force: true });
  });

  test('the addon is built and chosen; the start says so in one line', () => {
    assert.equal(dataPath().kind, 'splice', `native/splice not built or not loaded: ${dataPath().reason} (npm ci needs g++, make and python3)`);
    const lines = env.logs.records().filter((r) => r.message === 'FTP data path');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.kind, 'splice');
  });

  test('64 MiB RETR and STOR through kernel pumps are byte-identical and count toward the tenant', async () => {
    const relaysBefore = kernelRelays(env);
    const got = await curl(env.port, ['ftp://127.0.0.1:PORT/big.bin']);
    assert.equal(got.length, BIG.length);
    assert.equal(sha256(got), sha256(BIG));
    await curl(env.port, ['-T', path.join(tmp, 'big.bin'), 'ftp://127.0.0.1:PORT/up.bin']);
    const stored = await readFile(path.join(env.backendA.root, 'up.bin'));
    assert.equal(stored.length, BIG.length);
    assert.equal(sha256(stored), sha256(BIG));
    // Both data connections (and each curl's directory listing, none here) went through the addon.
    assert.equal(kernelRelays(env) - relaysBefore, 2);
    await env.listener.whenIdle();
    const a = env.concierge.traffic.get('a.example')!;
    assert.ok(a.bytesDown >= BIG.length && a.bytesUp >= BIG.length, JSON.stringify(a));
  });

  test('active mode (Concierge dials the client, through its read hook): RETR on kernel pumps, byte-exact', async () => {
    const relaysBefore = kernelRelays(env);
    const got = await curl(env.port, ['-P', '127.0.0.1', 'ftp://127.0.0.1:PORT/big.bin']);
    assert.equal(sha256(got), sha256(BIG));
    assert.equal(kernelRelays(env) - relaysBefore, 1);
  });

  test('a transfer slower than idleTimeoutMs overall, but never idle that long, is not cut', async () => {
    const { c } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    await ftpCommand(c, 'TYPE I');
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    const data = net.connect({ host: '127.0.0.1', port, highWaterMark: 64 * 1024 } as net.NetConnectOpts);
    // A reader that takes 3.5 s for the file (idleTimeoutMs is 2 s): Node sees no traffic on the relay's sockets meanwhile.
    const chunks: Buffer[] = [];
    let received = 0;
    const started = Date.now();
    data.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      const due = started + (received / BIG.length) * 3_500;
      if (due > Date.now()) {
        data.pause();
        setTimeout(() => data.resume(), due - Date.now());
      }
    });
    data.on('end', () => data.end());
    assert.match(await ftpCommand(c, 'RETR big.bin'), /^150 /);
    await once(data, 'close');
    assert.equal(sha256(Buffer.concat(chunks)), sha256(BIG));
    assert.match(await readFtpReply(c), /^226 /);
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('ABOR mid-transfer stops the threads: session usable, no pipe or eventfd left', async () => {
    await env.listener.whenIdle();
    const fdsBefore = addonFds();
    const { c, data } = await loggedInWithData(env.port); // the aborted data connection is reset: errors ignored
    const relaysBefore = kernelRelays(env);
    assert.match(await ftpCommand(c, 'RETR big.bin'), /^150 /);
    await once(data, 'data');
    data.pause(); // the thread now waits in poll for room in the client's socket
    assert.equal(kernelRelays(env) - relaysBefore, 1);
    assert.deepEqual(addonFds(), { pipes: fdsBefore.pipes + 4, eventfds: fdsBefore.eventfds + 2 }, 'one pipe (two fds) and one eventfd per direction');
    c.send('ABOR\r\n');
    assert.match(await readFtpReply(c), /^(426|451|551) /, 'the transfer is not reported complete');
    assert.match(await readFtpReply(c), /^22[56] /, 'ABOR acknowledged');
    data.destroy();
    assert.match(await ftpCommand(c, 'NOOP'), /^200/);
    const again = epsvPort(await ftpCommand(c, 'EPSV'));
    const body = readAll(again);
    assert.match(await ftpCommand(c, 'RETR big.bin'), /^150 /);
    assert.equal(sha256(await body), sha256(BIG));
    assert.match(await readFtpReply(c), /^226 /);
    await ftpCommand(c, 'QUIT');
    await c.closed;
    await env.listener.whenIdle();
    assert.deepEqual(addonFds(), fdsBefore);
  });

  for (const direction of ['RETR', 'STOR'] as const) {
    test(`a client that vanishes mid-${direction} leaves no socket, port, pipe or eventfd behind`, async () => {
      await env.listener.whenIdle();
      const fdsBefore = addonFds();
      const { c, data } = await loggedInWithData(env.port);
      if (direction === 'RETR') {
        c.send('RETR big.bin\r\n');
        await once(data, 'data');
      } else {
        assert.match(await ftpCommand(c, 'STOR vanished.bin'), /^150 /);
        await new Promise<void>((resolve) => data.write(BIG.subarray(0, 8 * 1024 * 1024), () => resolve()));
      }
      data.destroy();
      c.close();
      await env.listener.whenIdle();
      assert.equal(env.listener.passivePorts!.inUse, 0);
      assert.deepEqual(addonFds(), fdsBefore);
    });
  }

  test(`${DATA_PATH_ENV}=js: the same transfer on the JavaScript relay, no kernel pump`, async () => {
    process.env[DATA_PATH_ENV] = 'js';
    assert.equal(dataPath().kind, 'js');
    const relaysBefore = kernelRelays(env);
    const got = await curl(env.port, ['ftp://127.0.0.1:PORT/big.bin']);
    assert.equal(sha256(got), sha256(BIG));
    assert.equal(kernelRelays(env), relaysBefore);
  });
});
