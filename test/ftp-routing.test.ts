import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { FTP_PASSWORD_A, FTP_PASSWORD_B, startFtpTwoTenants, type FtpTwoTenants } from './support/ftp-fixtures.js';
import { ftpCommand, readFtpReply } from './support/ftp-raw.js';
import { RawClient } from './support/raw-client.js';

const run = promisify(execFile);

/** curl against Concierge (async: the proxy runs in this process). */
async function curl(port: number, user: string, password: string, pathAndArgs: { path: string; args?: string[] }): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '20', ...(pathAndArgs.args ?? []), '-u', `${user}:${password}`, `ftp://127.0.0.1:${port}/${pathAndArgs.path}`], { encoding: 'utf8' });
  return stdout;
}

/** Downloads a file with basic-ftp (EPSV passive) into a string. */
async function basicDownload(client: Client, file: string): Promise<string> {
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (chunk: Buffer, _enc, done) => (chunks.push(chunk), done()) }), file);
  return Buffer.concat(chunks).toString('utf8');
}

async function basicLogin(port: number, user: string, password: string): Promise<Client> {
  const client = new Client(10_000);
  await client.access({ host: '127.0.0.1', port, user, password });
  return client;
}

describe('FTP routing by login domain (ftp-srv backends)', () => {
  let env: FtpTwoTenants;
  before(async () => {
    env = await startFtpTwoTenants({ base: 21000, greetingA: ['Welcome to tenant A', 'second greeting line'] });
  });
  after(() => env.close());

  test('basic-ftp (passive): each tenant lists and reads only its own files', async () => {
    const a = await basicLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    const b = await basicLogin(env.port, 'alice@b.example', FTP_PASSWORD_B);
    try {
      assert.deepEqual((await a.list()).map((f) => f.name), ['only-at-a.txt']);
      assert.deepEqual((await b.list()).map((f) => f.name), ['only-at-b.txt']);
      assert.equal(await basicDownload(a, 'only-at-a.txt'), 'file of tenant a\n');
      assert.equal(await basicDownload(b, 'only-at-b.txt'), 'file of tenant b\n');
      await assert.rejects(basicDownload(a, 'only-at-b.txt'), /550|551/);
    } finally {
      a.close();
      b.close();
    }
  });

  test('curl passive (EPSV and PASV) and active (EPRT and PORT with -P 127.0.0.1) reach the right tenant', async () => {
    for (const args of [[], ['--disable-epsv'], ['-P', '127.0.0.1'], ['-P', '127.0.0.1', '--disable-eprt']]) {
      assert.equal(await curl(env.port, 'alice@a.example', FTP_PASSWORD_A, { path: 'only-at-a.txt', args }), 'file of tenant a\n', args.join(' '));
      assert.equal(await curl(env.port, 'alice@b.example', FTP_PASSWORD_B, { path: 'only-at-b.txt', args }), 'file of tenant b\n', args.join(' '));
      assert.match(await curl(env.port, 'alice@b.example', FTP_PASSWORD_B, { path: '', args }), /only-at-b\.txt/, `LIST ${args.join(' ')}`);
    }
  });

  test('ftp-srv sees each tenant’s source address on control and data connections', async () => {
    const loginsA = env.backendA.logins.length;
    const transfersB = env.backendB.transfers.length;
    await curl(env.port, 'alice@a.example', FTP_PASSWORD_A, { path: 'only-at-a.txt' });
    await curl(env.port, 'alice@b.example', FTP_PASSWORD_B, { path: 'only-at-b.txt', args: ['-P', '127.0.0.1'] });
    assert.deepEqual(env.backendA.logins.slice(loginsA), [{ ip: '127.0.0.2', user: 'alice', ok: true }]);
    assert.deepEqual(env.backendA.logins.every((l) => l.ip === '127.0.0.2'), true);
    assert.deepEqual(env.backendB.logins.every((l) => l.ip === '127.0.0.3'), true);
    const t = env.backendB.transfers.slice(transfersB);
    assert.deepEqual(t.map((r) => [r.kind, r.controlIp, r.dataIp, r.error]), [['RETR', '127.0.0.3', '127.0.0.3', undefined]]);
    assert.ok(env.backendA.transfers.every((r) => r.dataIp === '127.0.0.2'));
  });

  test('Concierge greets, answers FEAT / SYST / NOOP / OPTS before login and contacts no backend', async () => {
    const seen = env.backendA.logins.length + env.backendB.logins.length;
    const c = await RawClient.connect(env.port);
    assert.equal(await readFtpReply(c), '220 FTP server ready');
    assert.equal(await ftpCommand(c, 'FEAT'), '211-Features:\n EPRT\n EPSV\n PASV\n UTF8\n211 End');
    assert.equal(await ftpCommand(c, 'SYST'), '215 UNIX Type: L8');
    assert.equal(await ftpCommand(c, 'NOOP'), '200 NOOP ok.');
    assert.equal(await ftpCommand(c, 'OPTS UTF8 ON'), '200 Always in UTF8 mode.');
    assert.equal(await ftpCommand(c, 'PWD'), '530 Please login with USER and PASS.');
    assert.equal(await ftpCommand(c, 'PASS early'), '503 Login with USER first.');
    assert.equal(await ftpCommand(c, 'QUIT'), '221 Goodbye.');
    await c.closed;
    assert.equal(env.backendA.logins.length + env.backendB.logins.length, seen);
  });

  test('a multi-line backend greeting is read whole; the client hears the backend’s 230, then talks to it', async () => {
    const c = await RawClient.connect(env.port);
    await readFtpReply(c);
    assert.equal(await ftpCommand(c, 'USER alice@a.example'), '331 Password required.');
    assert.match(await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`), /^230 /);
    assert.match(await ftpCommand(c, 'PWD'), /^257 "\/"/);
    assert.match(await ftpCommand(c, 'SIZE only-at-a.txt'), /^213 17$/);
    assert.match(await ftpCommand(c, 'QUIT'), /^221/);
    await c.closed;
  });

  test('MLSD passes through: ftp-srv’s refusal reaches the client and the prepared data link is released', async () => {
    const c = await RawClient.connect(env.port);
    await readFtpReply(c);
    await ftpCommand(c, 'USER alice@a.example');
    await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`);
    assert.match(await ftpCommand(c, 'EPSV'), /^229 /);
    assert.match(await ftpCommand(c, 'MLSD'), /^502 /);
    assert.match(await ftpCommand(c, 'NOOP'), /^200/);
    await ftpCommand(c, 'QUIT');
    await c.closed;
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
  });

  test('commands pipelined after PASS are answered in order', async () => {
    const c = await RawClient.connect(env.port);
    await readFtpReply(c);
    c.send(`USER alice@b.example\r\nPASS ${FTP_PASSWORD_B}\r\nPWD\r\nTYPE I\r\nQUIT\r\n`);
    assert.equal(await readFtpReply(c), '331 Password required.');
    assert.match(await readFtpReply(c), /^230 /);
    assert.match(await readFtpReply(c), /^257 /);
    assert.match(await readFtpReply(c), /^200 /);
    assert.match(await readFtpReply(c), /^221 /);
    await c.closed;
  });

  test('no socket or passive port is left behind', async () => {
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
  });
});

describe('FTP with backendDataMode "active"', () => {
  let env: FtpTwoTenants;
  before(async () => {
    env = await startFtpTwoTenants({ base: 21100, listener: { backendDataMode: 'active' } });
  });
  after(() => env.close());

  test('client passive and active both work while the backend connects to the tenant’s address', async () => {
    for (const args of [[], ['--disable-epsv'], ['-P', '127.0.0.1']]) {
      assert.equal(await curl(env.port, 'alice@a.example', FTP_PASSWORD_A, { path: 'only-at-a.txt', args }), 'file of tenant a\n', args.join(' '));
    }
    const client = await basicLogin(env.port, 'alice@b.example', FTP_PASSWORD_B);
    try {
      assert.equal(await basicDownload(client, 'only-at-b.txt'), 'file of tenant b\n');
    } finally {
      client.close();
    }
    assert.ok(env.backendA.transfers.length === 3 && env.backendA.transfers.every((t) => t.dataIp === '127.0.0.2' && !t.error));
    assert.deepEqual(env.backendB.transfers.map((t) => t.dataIp), ['127.0.0.3']);
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
  });
});
