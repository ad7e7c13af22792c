import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from 'basic-ftp';
import { TestCa, type IssuedCertificate } from './support/certificates.js';
import { FTP_PASSWORD_A, FTP_PASSWORD_B, startFtpTwoTenants, type FtpTwoTenants } from './support/ftp-fixtures.js';
import { epsvPort, ftpCommand, readFtpReply } from './support/ftp-raw.js';
import { RawClient } from './support/raw-client.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A few MiB of random bytes: many TLS records, no pattern a relay bug could hide in. */
const FILE = randomBytes(3 * 1024 * 1024 + 12_345);

async function download(client: Client, file: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (chunk: Buffer, _enc, done) => (chunks.push(chunk), done()) }), file);
  return Buffer.concat(chunks);
}

async function curl(args: string[]): Promise<Buffer> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '30', ...args], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** A control connection upgraded with AUTH TLS, logged in, with PBSZ 0 and `prot` set. */
async function loginTls(port: number, ca: string, user: string, password: string, prot?: 'P' | 'C'): Promise<RawClient> {
  const plain = await RawClient.connect(port);
  await readFtpReply(plain);
  assert.match(await ftpCommand(plain, 'AUTH TLS'), /^234 /);
  const c = await plain.startTls({ ca, servername: 'ftp.host.example' });
  if (prot) {
    assert.equal(await ftpCommand(c, 'PBSZ 0'), '200 PBSZ=0');
    assert.match(await ftpCommand(c, `PROT ${prot}`), /^200 /);
  }
  assert.match(await ftpCommand(c, `USER ${user}`), /^331 /);
  assert.match(await ftpCommand(c, `PASS ${password}`), /^230/);
  return c;
}

/** Connects to a passive data port in the clear and collects everything until it closes (nothing when refused). */
async function readPlain(port: number): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  socket.on('end', () => socket.end());
  await new Promise((resolve) => socket.once('close', resolve)); // events.once would reject on the refusal
  return Buffer.concat(chunks);
}

describe('FTPS toward clients: AUTH TLS, implicit FTPS, PBSZ / PROT, protected data channels', () => {
  let ca: TestCa;
  let hostCert: IssuedCertificate;
  let tenantCert: IssuedCertificate;
  /** AUTH TLS with requireTls and requireProtP. */
  let strict: FtpTwoTenants;
  /** Implicit FTPS (the port 990 role), PROT C allowed. */
  let implicit: FtpTwoTenants;
  let tmp: string;

  before(async () => {
    ca = await TestCa.create();
    hostCert = await ca.issue(['ftp.host.example', '127.0.0.1']);
    const certificate = { cert: hostCert.cert, key: hostCert.key };
    strict = await startFtpTwoTenants({
      base: 21600,
      filesA: { 'file.bin': FILE },
      listener: { tls: 'starttls', requireTls: true, requireProtP: true, certificate },
      // A backend configured for AUTH TLS that does not offer it (this ftp-srv has no TLS: 502).
      tenantPatch: (tenants) => tenants.push({ domain: 'c.example', sourceAddress: '127.0.0.4', backends: { ftp: [{ ...tenants[0]!.backends.ftp[0], tls: 'starttls', insecureSkipVerify: true }] } }),
    });
    tenantCert = await ca.issue(['a.example', '*.a.example']);
    implicit = await startFtpTwoTenants({
      base: 21700,
      filesA: { 'file.bin': FILE },
      listener: { tls: 'implicit', certificate },
      tenantPatch: (tenants) => {
        tenants[0]!.certificate = { cert: tenantCert.cert, key: tenantCert.key };
      },
    });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'concierge-ftps-client-'));
    await writeFile(path.join(tmp, 'file.bin'), FILE);
  });
  after(async () => {
    if (process.env.SHOW_LOGS) console.log([...strict.logs.lines(), ...implicit.logs.lines()].join('\n'));
    await Promise.all([strict.close(), implicit.close()]);
    await rm(tmp, { recursive: true, force: true });
    await ca.remove();
  });

  test('basic-ftp with AUTH TLS and PROT P: upload, LIST and download are byte-identical; data connections resume the control session', async () => {
    const client = new Client(20_000);
    await client.access({ host: '127.0.0.1', port: strict.port, user: 'alice@a.example', password: FTP_PASSWORD_A, secure: true, secureOptions: { ca: ca.pem, servername: 'ftp.host.example' } });
    try {
      await client.uploadFrom(Readable.from([FILE]), 'up.bin');
      assert.deepEqual((await client.list()).map((f) => [f.name, f.size]).sort(), [['file.bin', FILE.length], ['up.bin', FILE.length]]);
      assert.equal(sha256(await download(client, 'file.bin')), sha256(FILE));
    } finally {
      client.close();
    }
    assert.equal(sha256(await readFile(path.join(strict.backendA.root, 'up.bin'))), sha256(FILE));
    await strict.listener.whenIdle();
    const data = strict.logs.records().filter((l) => l.message === 'data tls established' && l.side === 'client');
    assert.ok(data.length >= 3, 'every data connection was TLS');
    assert.ok(data.some((l) => l.reused === true), 'a data connection resumed the control connection’s TLS session');
  });

  test('basic-ftp with implicit FTPS: LIST and download', async () => {
    const client = new Client(20_000);
    await client.access({ host: '127.0.0.1', port: implicit.port, user: 'alice@a.example', password: FTP_PASSWORD_A, secure: 'implicit', secureOptions: { ca: ca.pem, servername: 'ftp.host.example' } });
    try {
      assert.ok((await client.list()).some((f) => f.name === 'file.bin'));
      assert.equal(sha256(await download(client, 'file.bin')), sha256(FILE));
    } finally {
      client.close();
    }
    assert.equal(implicit.backendA.logins.at(-1)?.ip, '127.0.0.2');
  });

  test('curl ftps:// (implicit) and ftp:// --ssl-reqd (AUTH TLS) download and upload, verifying the certificate', async () => {
    const common = ['--cacert', ca.certFile, '-u', `alice@a.example:${FTP_PASSWORD_A}`];
    assert.equal(sha256(await curl([...common, `ftps://127.0.0.1:${implicit.port}/file.bin`])), sha256(FILE));
    assert.equal(sha256(await curl([...common, '--ssl-reqd', `ftp://127.0.0.1:${strict.port}/file.bin`])), sha256(FILE));
    await curl([...common, '--ssl-reqd', '-T', path.join(tmp, 'file.bin'), `ftp://127.0.0.1:${strict.port}/curl-up.bin`]);
    assert.equal(sha256(await readFile(path.join(strict.backendA.root, 'curl-up.bin'))), sha256(FILE));
  });

  test('active mode under PROT P: Concierge dials the client and is the TLS server on that connection', async () => {
    const c = await loginTls(strict.port, ca.pem, 'alice@a.example', FTP_PASSWORD_A, 'P');
    const session = (c.socket as tls.TLSSocket).getSession();
    let server!: net.Server;
    const received = new Promise<Buffer>((resolve, reject) => {
      server = net.createServer((socket) => {
        server.close();
        const secure = tls.connect({ socket, ca: ca.pem, servername: 'ftp.host.example', session });
        const chunks: Buffer[] = [];
        secure.on('data', (chunk: Buffer) => chunks.push(chunk));
        secure.on('error', reject);
        secure.on('end', () => (secure.end(), resolve(Buffer.concat(chunks))));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    assert.match(await ftpCommand(c, `EPRT |1|127.0.0.1|${(server.address() as net.AddressInfo).port}|`), /^200 /);
    assert.match(await ftpCommand(c, 'RETR file.bin'), /^150 /);
    assert.equal(sha256(await received), sha256(FILE));
    assert.match(await readFtpReply(c), /^226 /);
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('FEAT lists AUTH TLS, PBSZ and PROT; requireTls refuses USER in the clear with 530', async () => {
    const logins = strict.backendA.logins.length;
    const c = await RawClient.connect(strict.port);
    await readFtpReply(c);
    const feat = await ftpCommand(c, 'FEAT');
    for (const f of ['AUTH TLS', 'PBSZ', 'PROT']) assert.ok(feat.split('\n').includes(` ${f}`), f);
    assert.equal(await ftpCommand(c, 'USER alice@a.example'), '530 TLS required: send AUTH TLS first.');
    assert.match(await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`), /^503 /);
    assert.match(await ftpCommand(c, 'PBSZ 0'), /^503 /, 'PBSZ needs TLS');
    assert.match(await ftpCommand(c, 'AUTH KERBEROS_V4'), /^504 /);
    assert.match(await ftpCommand(c, 'QUIT'), /^221 /);
    await c.closed;
    assert.equal(strict.backendA.logins.length, logins, 'nothing reached the backend');
  });

  test('requireProtP: PROT C is refused (534), a transfer without PROT P gets 521; PBSZ / PROT after login are answered by Concierge', async () => {
    const c = await loginTls(strict.port, ca.pem, 'alice@a.example', FTP_PASSWORD_A);
    assert.match(await ftpCommand(c, 'PROT P'), /^503 /, 'PROT before PBSZ');
    assert.equal(await ftpCommand(c, 'PBSZ 1024'), '200 PBSZ=0');
    assert.match(await ftpCommand(c, 'PROT C'), /^534 /);
    assert.match(await ftpCommand(c, 'PROT S'), /^536 /);
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    assert.match(await ftpCommand(c, 'RETR file.bin'), /^521 /);
    assert.equal((await readPlain(port)).length, 0, 'the passive port is closed: nothing in the clear');
    assert.match(await ftpCommand(c, 'AUTH TLS'), /^503 /);
    assert.match(await ftpCommand(c, 'CCC'), /^534 /);
    assert.match(await ftpCommand(c, 'PROT P'), /^200 /);
    assert.match(await ftpCommand(c, 'TYPE I'), /^200/);
    const again = epsvPort(await ftpCommand(c, 'EPSV'));
    const data = tls.connect({ host: '127.0.0.1', port: again, ca: ca.pem, servername: 'ftp.host.example', session: (c.socket as tls.TLSSocket).getSession() });
    const chunks: Buffer[] = [];
    data.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(data, 'secureConnect');
    assert.match(await ftpCommand(c, 'RETR file.bin'), /^150 /);
    await once(data, 'end');
    assert.match(await readFtpReply(c), /^226 /);
    assert.equal(sha256(Buffer.concat(chunks)), sha256(FILE));
    data.end();
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('SNI names the tenant: its certificate on the control and data connections, the data connection resuming the control session', async () => {
    const c = await RawClient.connectTls(implicit.port, { ca: ca.pem, servername: 'ftp.a.example' });
    const names = (s: tls.TLSSocket) => new X509Certificate(s.getPeerCertificate().raw).subjectAltName ?? '';
    assert.match(names(c.socket as tls.TLSSocket), /DNS:a\.example/);
    await readFtpReply(c);
    await ftpCommand(c, 'PBSZ 0');
    await ftpCommand(c, 'PROT P');
    assert.match(await ftpCommand(c, 'USER alice'), /^331 /, 'a bare user name: the tenant SNI named');
    assert.match(await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`), /^230/);
    await ftpCommand(c, 'TYPE I');
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    // A full handshake on the data connection shows the tenant's certificate…
    const data = tls.connect({ host: '127.0.0.1', port, ca: ca.pem, servername: 'ftp.a.example' });
    const chunks: Buffer[] = [];
    data.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(data, 'secureConnect');
    assert.match(names(data), /DNS:a\.example/);
    assert.match(await ftpCommand(c, 'RETR file.bin'), /^150 /);
    await once(data, 'end');
    data.end();
    assert.match(await readFtpReply(c), /^226 /);
    assert.equal(sha256(Buffer.concat(chunks)), sha256(FILE));
    // …and one offering the control connection's session resumes it (the context is the control's).
    const again = epsvPort(await ftpCommand(c, 'EPSV'));
    const resumed = tls.connect({ host: '127.0.0.1', port: again, ca: ca.pem, servername: 'ftp.a.example', session: (c.socket as tls.TLSSocket).getSession() });
    const listing: Buffer[] = [];
    resumed.on('data', (chunk: Buffer) => listing.push(chunk));
    await once(resumed, 'secureConnect');
    assert.equal(resumed.isSessionReused(), true);
    assert.match(await ftpCommand(c, 'NLST'), /^150 /);
    await once(resumed, 'end');
    resumed.end();
    assert.match(await readFtpReply(c), /^226 /);
    assert.match(Buffer.concat(listing).toString(), /file\.bin/);
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('PROT C keeps data in the clear where it is allowed', async () => {
    const plain = await RawClient.connectTls(implicit.port, { ca: ca.pem, servername: 'ftp.host.example' });
    await readFtpReply(plain);
    assert.equal(await ftpCommand(plain, 'PBSZ 0'), '200 PBSZ=0');
    assert.match(await ftpCommand(plain, 'PROT C'), /^200 /);
    assert.match(await ftpCommand(plain, 'USER alice@a.example'), /^331 /);
    assert.match(await ftpCommand(plain, `PASS ${FTP_PASSWORD_A}`), /^230/);
    await ftpCommand(plain, 'TYPE I');
    const port = epsvPort(await ftpCommand(plain, 'EPSV'));
    const body = readPlain(port);
    assert.match(await ftpCommand(plain, 'RETR file.bin'), /^150 /);
    assert.equal(sha256(await body), sha256(FILE));
    assert.match(await readFtpReply(plain), /^226 /);
    await ftpCommand(plain, 'QUIT');
    await plain.closed;
  });

  test('commands pipelined after AUTH TLS, before the handshake, are dropped unexecuted', async () => {
    const logins = strict.backendA.logins.length;
    const plain = await RawClient.connect(strict.port);
    await readFtpReply(plain);
    plain.send(`AUTH TLS\r\nUSER alice@a.example\r\nPASS ${FTP_PASSWORD_A}\r\n`);
    assert.match(await readFtpReply(plain), /^234 /);
    const c = await plain.startTls({ ca: ca.pem, servername: 'ftp.host.example' });
    assert.match(await ftpCommand(c, 'NOOP'), /^200 /, 'the first reply inside TLS answers a command sent inside TLS');
    assert.match(await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`), /^503 /, 'no USER was remembered');
    c.close();
    await c.closed;
    await strict.listener.whenIdle();
    assert.equal(strict.backendA.logins.length, logins, 'no backend login from injected commands');
    assert.ok(strict.logs.records().some((l) => l.message === 'bytes after the TLS upgrade command dropped' && Number(l.bytes) > 0));
  });

  test('a plaintext data connection under PROT P is closed, the transfer fails cleanly and the session goes on', async () => {
    const c = await loginTls(strict.port, ca.pem, 'alice@a.example', FTP_PASSWORD_A, 'P');
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    const data = net.connect({ host: '127.0.0.1', port });
    data.on('error', () => {});
    await once(data, 'connect');
    data.write('this is not a TLS ClientHello\r\n');
    c.send('STOR sneaky.bin\r\n');
    await once(data, 'close');
    const replies = [await readFtpReply(c)];
    if (replies[0]!.startsWith('1')) replies.push(await readFtpReply(c));
    // Concierge resets the backend's side too; ftp-srv then reports its read error (550), others 426.
    assert.match(replies.at(-1)!, /^[45]\d\d /, 'the transfer is not reported complete');
    assert.match(await ftpCommand(c, 'NOOP'), /^200 /);
    await ftpCommand(c, 'QUIT');
    await c.closed;
    await strict.listener.whenIdle();
    assert.ok(strict.logs.records().some((l) => l.message === 'data tls handshake failed' && l.side === 'client'));
  });

  test('a backend that refuses AUTH TLS is a failed backend: never a plaintext login, the client gets 421', async () => {
    const logins = strict.backendA.logins.length;
    const plain = await RawClient.connect(strict.port);
    await readFtpReply(plain);
    assert.match(await ftpCommand(plain, 'AUTH TLS'), /^234 /);
    const t = await plain.startTls({ ca: ca.pem, servername: 'ftp.host.example' });
    assert.match(await ftpCommand(t, 'USER alice@c.example'), /^331 /);
    assert.match(await ftpCommand(t, `PASS ${FTP_PASSWORD_A}`), /^421 /);
    await t.closed;
    assert.equal(strict.backendA.logins.length, logins, 'no login reached the backend in the clear');
    assert.ok(strict.logs.records().some((l) => l.message === 'backend failed' && l.code === 'BACKEND_TLS' && l.tenant === 'c.example'));
  });

  test('a client that does not trust the certificate gets no session (curl refuses it)', async () => {
    await assert.rejects(curl(['-u', `alice@a.example:${FTP_PASSWORD_A}`, `ftps://127.0.0.1:${implicit.port}/file.bin`]), (err: { code?: number }) => err.code === 60);
  });
});

describe('FTPS toward backends: AUTH TLS and implicit TLS replayed, PROT mirrored, TLS data from the tenant’s address', () => {
  let ca: TestCa;
  let env: FtpTwoTenants;

  before(async () => {
    ca = await TestCa.create();
    const hostCert = await ca.issue(['ftp.host.example', '127.0.0.1']);
    const backendCert = await ca.issue(['ftp.backend.example']);
    const backendTls = { cert: backendCert.cert, key: backendCert.key };
    env = await startFtpTwoTenants({
      base: 21800,
      filesA: { 'file.bin': FILE },
      filesB: { 'file.bin': FILE },
      tlsA: backendTls,
      tlsB: { ...backendTls, implicit: true },
      listener: { tls: 'starttls', certificate: { cert: hostCert.cert, key: hostCert.key } },
      tenantPatch: (tenants) => {
        const a = tenants[0]!.backends.ftp[0];
        const b = tenants[1]!.backends.ftp[0];
        const verified = { ca: ca.certFile, servername: 'ftp.backend.example' };
        // A backend whose certificate does not carry the expected name comes first: it fails, the next one serves.
        tenants[0]!.backends.ftp = [
          { ...a, tls: 'starttls', ca: ca.certFile, servername: 'wrong.example' },
          { ...a, tls: 'starttls', ...verified },
        ];
        tenants[1]!.backends.ftp = [{ ...b, tls: 'implicit', ...verified }];
        tenants.push({ domain: 'c.example', sourceAddress: '127.0.0.4', backends: { ftp: [{ ...a, tls: 'starttls', ca: ca.certFile, servername: 'wrong.example' }] } });
      },
    });
  });
  after(async () => {
    if (process.env.SHOW_LOGS) console.log(env.logs.lines().join('\n'));
    await env.close();
    await ca.remove();
  });

  for (const [tenant, password, mode] of [
    ['a.example', FTP_PASSWORD_A, 'AUTH TLS'],
    ['b.example', FTP_PASSWORD_B, 'implicit TLS'],
  ] as const) {
    test(`${mode} backend: basic-ftp upload and download with PROT P are byte-identical, from the tenant’s address`, async () => {
      const backend = tenant === 'a.example' ? env.backendA : env.backendB;
      const client = new Client(20_000);
      await client.access({ host: '127.0.0.1', port: env.port, user: `alice@${tenant}`, password, secure: true, secureOptions: { ca: ca.pem, servername: 'ftp.host.example' } });
      try {
        await client.uploadFrom(Readable.from([FILE]), 'up.bin');
        assert.equal(sha256(await download(client, 'file.bin')), sha256(FILE));
        assert.ok((await client.list()).some((f) => f.name === 'up.bin'));
      } finally {
        client.close();
      }
      assert.equal(sha256(await readFile(path.join(backend.root, 'up.bin'))), sha256(FILE));
      const source = tenant === 'a.example' ? '127.0.0.2' : '127.0.0.3';
      assert.equal(backend.logins.at(-1)?.ip, source);
      const transfers = backend.transfers.slice(-2);
      // ftp-srv reads a data socket's address when the transfer ends: a finished TLS upload's is gone by then.
      assert.deepEqual(transfers.map((t) => [t.kind, t.kind === 'RETR' ? t.dataIp : source, t.error]), [['STOR', source, undefined], ['RETR', source, undefined]]);
      await env.listener.whenIdle();
      assert.ok(env.logs.records().some((l) => l.message === 'data tls established' && l.side === 'backend'));
    });
  }

  test('a backend certificate for another name fails verification: the next backend serves, and with none left the client gets 421', async () => {
    assert.ok(env.logs.records().some((l) => l.message === 'backend failed' && l.code === 'BACKEND_TLS' && l.tenant === 'a.example'), 'the wrong-name backend was tried and failed');
    const plain = await RawClient.connect(env.port);
    await readFtpReply(plain);
    assert.match(await ftpCommand(plain, 'AUTH TLS'), /^234 /);
    const c = await plain.startTls({ ca: ca.pem, servername: 'ftp.host.example' });
    assert.match(await ftpCommand(c, 'USER alice@c.example'), /^331 /);
    assert.match(await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`), /^421 /);
    await c.closed;
  });
});
