import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FTP_PASSWORD_A, startFtpTwoTenants, type FtpTwoTenants } from './support/ftp-fixtures.js';
import { epsvPort, ftpCommand, ftpLogin, readAll, readFtpReply } from './support/ftp-raw.js';

describe('FTP data-channel commands', () => {
  let env: FtpTwoTenants;
  before(async () => {
    env = await startFtpTwoTenants({ base: 21500, listener: { passiveAddress: '192.0.2.44' }, limits: { dataConnectTimeoutMs: 300 } });
  });
  after(() => env.close());

  test('227 carries passiveAddress (NAT) and Concierge’s own port from its range', async () => {
    const { c } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    const m = /^227 Entering Passive Mode \(192,0,2,44,(\d+),(\d+)\)\.$/.exec(await ftpCommand(c, 'PASV'));
    assert.ok(m, 'the configured address, not the backend’s');
    const port = Number(m[1]) * 256 + Number(m[2]);
    const { from, to } = env.listener.passivePorts!.range;
    assert.ok(port >= from && port <= to);
    c.close();
  });

  test('EPSV ALL: only EPSV afterwards, and EPSV still works; STOU stores under a new name', async () => {
    const { c } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    assert.equal(await ftpCommand(c, 'EPSV ALL'), '200 EPSV ALL ok.');
    assert.equal(await ftpCommand(c, 'PASV'), '503 PASV not allowed after EPSV ALL.');
    assert.equal(await ftpCommand(c, 'PORT 127,0,0,1,78,32'), '503 PORT not allowed after EPSV ALL.');
    assert.equal(await ftpCommand(c, 'EPSV 2'), '522 Network protocol not supported, use (1)');
    const port = epsvPort(await ftpCommand(c, 'EPSV 1'));
    const net = await import('node:net');
    const data = net.connect({ host: '127.0.0.1', port });
    await new Promise((resolve) => data.once('connect', resolve));
    // ftp-srv wants a name for STOU and makes it unique when taken (RFC 959's STOU has no argument).
    assert.match(await ftpCommand(c, 'STOU only-at-a.txt'), /^150 /);
    data.end('stored uniquely\n');
    assert.match(await readFtpReply(c), /^226 /);
    const again = epsvPort(await ftpCommand(c, 'EPSV'));
    const listing = readAll(again);
    assert.match(await ftpCommand(c, 'NLST'), /^150 /);
    assert.match(await readFtpReply(c), /^226 /);
    assert.equal((await listing).toString().split(/\r?\n/).filter(Boolean).length, 2, 'the original file and the STOU one');
    await ftpCommand(c, 'QUIT');
    await c.closed;
  });

  test('a passive port nobody connects to is closed after dataConnectTimeoutMs, its port given back', async () => {
    const { c } = await ftpLogin(env.port, 'alice@a.example', FTP_PASSWORD_A);
    const port = epsvPort(await ftpCommand(c, 'EPSV'));
    assert.equal(env.listener.passivePorts!.inUse, 1);
    await new Promise<void>((resolve) => {
      const poll = () => (env.listener.passivePorts!.inUse === 0 ? resolve() : setTimeout(poll, 20));
      poll();
    });
    const net = await import('node:net');
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(false)));
      s.once('error', () => resolve(true));
    });
    assert.ok(refused, 'nothing listens on the port any more');
    assert.ok(env.logs.records().some((r) => r.message === 'data connection timeout'));
    assert.match(await ftpCommand(c, 'NOOP'), /^200/);
    c.close();
  });

  test('no socket or passive port is left behind', async () => {
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
  });
});
