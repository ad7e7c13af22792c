import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { closedPort } from './support/fake-backend.js';
import { FTP_PASSWORD_A, FTP_PASSWORD_B, startFtpTwoTenants, type FtpTwoTenants } from './support/ftp-fixtures.js';
import { epsvPort, ftpCommand, ftpLogin, readAll, readFtpReply } from './support/ftp-raw.js';
import { RawClient } from './support/raw-client.js';

describe('FTP abuse and failures', () => {
  let env: FtpTwoTenants;
  let downPort: number;
  before(async () => {
    downPort = await closedPort();
    env = await startFtpTwoTenants({
      base: 21300,
      limits: { authFailDelayMs: 300 },
      tenantPatch: (t) => {
        // c.example: nothing listens; d.example: a dead backend first, then b's real one.
        t.push({ domain: 'c.example', sourceAddress: '127.0.0.4', backends: { ftp: [{ host: '127.0.0.1', port: downPort }] } });
        t.push({ domain: 'd.example', sourceAddress: '127.0.0.3', backends: { ftp: [{ host: '127.0.0.1', port: downPort }, { ...t[1]!.backends.ftp[0] }] } });
      },
    });
  });
  after(() => env.close());

  test('PORT / EPRT toward another address, or a privileged port, is refused (no FTP bounce)', async () => {
    const { c, reply } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    assert.match(reply, /^230/);
    assert.equal(await ftpCommand(c, 'PORT 127,0,0,9,78,32'), '500 Illegal PORT command.');
    assert.equal(await ftpCommand(c, 'EPRT |1|127.0.0.9|20000|'), '500 Illegal EPRT command.');
    assert.equal(await ftpCommand(c, 'PORT 127,0,0,1,0,25'), '500 Illegal PORT command.');
    assert.equal(await ftpCommand(c, 'PORT 1,2,3'), '501 Syntax error in parameters or arguments.');
    assert.match(await ftpCommand(c, 'NOOP'), /^200/);
    await ftpCommand(c, 'QUIT');
    await c.closed;
    const refused = env.logs.records().filter((r) => r.message === 'data connection to a third party refused');
    assert.deepEqual(refused.map((r) => r.host), ['127.0.0.9', '127.0.0.9', '127.0.0.1']);
  });

  test('a connection to a passive port from another address is dropped; the real client still gets its data', async () => {
    const { c } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    const thief = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.5' });
    thief.on('error', () => {});
    const stolen: Buffer[] = [];
    thief.on('data', (chunk: Buffer) => stolen.push(chunk));
    await once(thief, 'close');
    const body = readAll(port);
    assert.match(await ftpCommand(c, 'RETR only-at-a.txt'), /^150 /);
    assert.equal((await body).toString(), 'file of tenant a\n');
    assert.match(await readFtpReply(c), /^226 /);
    assert.equal(Buffer.concat(stolen).length, 0);
    const refused = env.logs.records().filter((r) => r.message === 'data connection refused');
    assert.deepEqual(refused.map((r) => [r.from, r.expected]), [['127.0.0.5', '127.0.0.1']]);
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('backend down: the next backend is tried, and with none left the client hears 421', async () => {
    const down = await ftpLogin(env.port, 'alice@c.example', 'whatever');
    assert.equal(down.reply, '421 Service not available, closing control connection.');
    await down.c.closed;
    const failover = await ftpLogin(env.port, 'alice@d.example', FTP_PASSWORD_B);
    assert.match(failover.reply, /^230 /);
    assert.match(await ftpCommand(failover.c, 'PWD'), /^257 /, 'a session on the second backend works');
    assert.equal(env.backendB.logins.at(-1)!.ip, '127.0.0.3');
    failover.c.close();
  });

  test('unknown domain, unknown user and wrong password: same bytes after the same delay', async () => {
    const results = [];
    for (const [user, password] of [['alice@nowhere.example', FTP_PASSWORD_A], ['nobody@a.example', FTP_PASSWORD_A], ['alice@a.example', 'wrong']] as const) {
      const started = performance.now();
      const { c, reply } = await ftpLogin(env.port, user, password);
      results.push({ reply, ms: performance.now() - started });
      c.close();
    }
    for (const r of results) {
      assert.equal(r.reply, '530 Login incorrect.', 'ftp-srv’s own text never reaches the client');
      assert.ok(r.ms >= 290, `answered after ${r.ms} ms`);
    }
  });

  test('an over-long line gets 500 and the session goes on, before and after login', async () => {
    const c = await RawClient.connect(env.port);
    await readFtpReply(c);
    assert.equal(await ftpCommand(c, `NOOP ${'x'.repeat(5000)}`), '500 Command line too long.');
    assert.equal(await ftpCommand(c, 'USER alice@a.example'), '331 Password required.');
    assert.match(await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`), /^230/);
    assert.equal(await ftpCommand(c, `CWD ${'y'.repeat(5000)}`), '500 Command line too long.');
    assert.match(await ftpCommand(c, 'PWD'), /^257/);
    c.close();
  });

  test('CR, LF or NUL smuggled into USER never reaches a backend', async () => {
    const logins = env.backendA.logins.length;
    const c = await RawClient.connect(env.port);
    await readFtpReply(c);
    assert.equal(await ftpCommand(c, 'USER alice@a.example\rPASS x'), '500 Syntax error, command unrecognized.');
    assert.equal(await ftpCommand(c, 'USER ali\0ce@a.example'), '500 Syntax error, command unrecognized.');
    assert.equal(await ftpCommand(c, 'USER alice @a.example'), '501 Invalid user name.');
    // A bare LF ends the line: what follows is a command of its own, and it needs a login.
    c.send('USER alice@a.example\nDELE only-at-a.txt\r\n');
    assert.equal(await readFtpReply(c), '331 Password required.');
    assert.equal(await readFtpReply(c), '530 Please login with USER and PASS.');
    c.close();
    assert.equal(env.backendA.logins.length, logins);
  });

  test('too many bad commands end the session with 421', async () => {
    const c = await RawClient.connect(env.port);
    await readFtpReply(c);
    for (let i = 1; i < 10; i++) assert.equal(await ftpCommand(c, 'LIST'), '530 Please login with USER and PASS.');
    assert.equal(await ftpCommand(c, 'LIST'), '421 Too many errors, closing control connection.');
    await c.closed;
  });

  test('PASV to a passive range that is exhausted gets 425, and the session goes on', async () => {
    const held: net.Server[] = [];
    const { from, to } = env.listener.passivePorts!.range;
    const { c } = await ftpLogin(env.port, 'alice@b.example', FTP_PASSWORD_B);
    try {
      for (let p = from; p <= to; p++) {
        const s = net.createServer();
        await new Promise<void>((resolve) => s.once('error', () => resolve()).listen(p, '127.0.0.1', resolve));
        held.push(s);
      }
      assert.equal(await ftpCommand(c, 'PASV'), '425 Cannot open data connection.');
    } finally {
      await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))));
    }
    assert.match(await ftpCommand(c, 'PASV'), /^227 Entering Passive Mode \(127,0,0,1,\d+,\d+\)\.$/);
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('no socket or passive port is left behind', async () => {
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
  });
});
