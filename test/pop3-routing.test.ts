import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import Pop3Command from 'node-pop3';
import { PASSWORD_A, PASSWORD_B, startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { RawClient } from './support/raw-client.js';

/** Logs in with node-pop3 (a real POP3 client), retrieves message 1, quits. */
async function retrieveFirst(port: number, user: string, password: string): Promise<string> {
  const pop3 = new Pop3Command({ host: '127.0.0.1', port, user, password });
  const text = await pop3.RETR(1);
  await pop3.QUIT();
  return text;
}

describe('POP3 routing by login domain', () => {
  let env: TwoTenants;
  before(async () => {
    env = await startTwoTenants();
  });
  after(() => env.close());

  test('the same user name reaches each tenant’s own mailbox', async () => {
    assert.match(await retrieveFirst(env.port, 'alice@a.example', PASSWORD_A), /mail for alice at a/);
    assert.match(await retrieveFirst(env.port, 'alice@b.example', PASSWORD_B), /mail for alice at b/);
  });

  test('each backend sees its tenant’s source address and the local user name', async () => {
    const seenA = env.backendA.connections.length;
    const seenB = env.backendB.connections.length;
    await retrieveFirst(env.port, 'alice@a.example', PASSWORD_A);
    await retrieveFirst(env.port, 'alice@B.Example', PASSWORD_B);
    const a = env.backendA.connections.slice(seenA);
    const b = env.backendB.connections.slice(seenB);
    assert.deepEqual(a.map((r) => [r.remoteAddress, r.user, r.authenticated]), [['127.0.0.2', 'alice', true]]);
    assert.deepEqual(b.map((r) => [r.remoteAddress, r.user, r.authenticated]), [['127.0.0.3', 'alice', true]]);
  });

  test('an alias routes like its domain', async () => {
    assert.match(await retrieveFirst(env.port, 'alice@mail.a.example', PASSWORD_A), /mail for alice at a/);
  });

  test('Concierge greets and answers CAPA itself, without IMPLEMENTATION', async () => {
    const seen = env.backendA.connections.length + env.backendB.connections.length;
    const c = await RawClient.connect(env.port);
    assert.match(await c.line(), /^\+OK /);
    assert.match(await c.command('CAPA'), /^\+OK/);
    const caps = await c.multiline();
    assert.deepEqual(caps, ['USER', 'SASL PLAIN', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING']);
    assert.equal(await c.command('QUIT'), '+OK Bye');
    await c.closed;
    assert.equal(env.backendA.connections.length + env.backendB.connections.length, seen, 'no backend contacted before login');
  });

  test('AUTH PLAIN with an initial response is replayed as AUTH PLAIN', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    const response = Buffer.from(`\0alice@a.example\0${PASSWORD_A}`).toString('base64');
    assert.match(await c.command(`AUTH PLAIN ${response}`), /^\+OK/);
    const last = env.backendA.connections.at(-1)!;
    assert.equal(last.method, 'PLAIN');
    assert.equal(last.user, 'alice');
    assert.match(await c.command('STAT'), /^\+OK 1 \d+$/);
    assert.match(await c.command('QUIT'), /^\+OK/);
    await c.closed;
  });

  test('AUTH PLAIN with a continuation line, and "*" cancels', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    assert.equal(await c.command('AUTH PLAIN'), '+ ');
    assert.match(await c.command('*'), /^-ERR/);
    assert.equal(await c.command('AUTH PLAIN'), '+ ');
    assert.match(await c.command(Buffer.from(`\0alice@b.example\0${PASSWORD_B}`).toString('base64')), /^\+OK/);
    assert.match(await c.command('STAT'), /^\+OK 2 \d+$/);
    c.close();
  });

  test('commands pipelined after PASS are forwarded to the backend in order', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    c.send(`USER alice@b.example\r\nPASS ${PASSWORD_B}\r\nSTAT\r\nLIST\r\nQUIT\r\n`);
    assert.equal(await c.line(), '+OK');
    assert.match(await c.line(), /^\+OK/, 'the backend’s verdict');
    assert.match(await c.line(), /^\+OK 2 \d+$/);
    assert.match(await c.line(), /^\+OK/);
    assert.equal((await c.multiline()).length, 2);
    assert.match(await c.line(), /^\+OK/);
    await c.closed;
  });

  test('per-tenant traffic is counted when sessions close', async () => {
    await env.concierge.listeners[0]!.whenIdle();
    const a = env.concierge.traffic.get('a.example');
    assert.ok(a && a.sessions > 0 && a.bytesDown > a.bytesUp && a.bytesUp > 0);
  });
});

describe('POP3 tenant by local address and backendUser', () => {
  let env: TwoTenants;
  before(async () => {
    env = await startTwoTenants({
      patch: (raw) => (raw.listeners = [{ protocol: 'pop3', address: '0.0.0.0', port: 0 }]),
      tenantPatch: (t) => {
        t[0]!.localAddresses = ['127.0.0.10'];
        t[1]!.localAddresses = ['127.0.0.11'];
        t[1]!.backendUser = 'full';
      },
      usersB: { 'alice@b.example': { password: PASSWORD_B, messages: ['Subject: full name\r\n\r\nfor the full login\r\n'] } },
    });
  });
  after(() => env.close());

  test('a bare user name is routed by the address the client dialled', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.10', port: env.port, user: 'alice', password: PASSWORD_A });
    assert.match(await pop3.RETR(1), /mail for alice at a/);
    await pop3.QUIT();
    assert.equal(env.backendA.connections.at(-1)!.remoteAddress, '127.0.0.2');
  });

  test('backendUser "full" sends user@domain to the backend', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.11', port: env.port, user: 'alice', password: PASSWORD_B });
    assert.match(await pop3.RETR(1), /for the full login/);
    await pop3.QUIT();
    assert.equal(env.backendB.connections.at(-1)!.user, 'alice@b.example');
  });

  test('a bare user name on an address no tenant owns fails like a wrong password', async () => {
    const c = await RawClient.connect(env.port, { host: '127.0.0.12' });
    await c.line();
    await c.command('USER alice');
    assert.equal(await c.command(`PASS ${PASSWORD_A}`), '-ERR [AUTH] Authentication failed');
    c.close();
  });
});

describe('POP3 large message', () => {
  test('a 20 MiB message is retrieved byte-identical through the proxy', async () => {
    // Lines of varied length, some starting with "." to exercise dot-stuffing end to end.
    const lines: string[] = ['Subject: big', ''];
    let size = 0;
    for (let i = 0; size < 20 * 1024 * 1024; i++) {
      const line = (i % 7 === 0 ? '.' : '') + `line ${i} `.padEnd(40 + (i % 50), String.fromCharCode(97 + (i % 26)));
      lines.push(line);
      size += line.length + 2;
    }
    const original = Buffer.from(lines.join('\r\n') + '\r\n');
    const env = await startTwoTenants({ usersA: { alice: { password: PASSWORD_A, messages: [original] } } });
    try {
      const c = await RawClient.connect(env.port);
      await c.line();
      await c.command('USER alice@a.example');
      assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
      c.send('RETR 1\r\nQUIT\r\n');
      assert.match(await c.line(), /^\+OK/);
      const body = (await c.rest()).toString('latin1');
      const end = body.lastIndexOf('\r\n.\r\n');
      assert.ok(end > 0, 'terminated multi-line reply');
      const unstuffed = Buffer.from(body.slice(0, end + 2).replace(/^\./gm, ''), 'latin1');
      assert.equal(unstuffed.length, original.length);
      assert.equal(createHash('sha256').update(unstuffed).digest('hex'), createHash('sha256').update(original).digest('hex'));
    } finally {
      await env.close();
    }
  });
});
