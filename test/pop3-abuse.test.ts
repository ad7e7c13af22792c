import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PASSWORD_A, startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { RawClient } from './support/raw-client.js';

/** Logs in over a raw socket; returns the reply to PASS and how long it took. */
async function tryLogin(port: number, user: string, password: string): Promise<{ reply: string; ms: number; client: RawClient }> {
  const client = await RawClient.connect(port);
  await client.line();
  await client.command(`USER ${user}`);
  const started = performance.now();
  const reply = await client.command(`PASS ${password}`);
  return { reply, ms: performance.now() - started, client };
}

describe('POP3 failed logins reveal nothing', () => {
  let env: TwoTenants;
  before(async () => {
    // Every failure here comes from 127.0.0.1: the auth penalty (tenant-limits.test.ts) is capped at the base delay.
    env = await startTwoTenants({ patch: (raw) => Object.assign(raw.limits, { authFailDelayMs: 300, authPenaltyMaxMs: 300 }) });
  });
  after(() => env.close());

  test('unknown domain, unknown user and wrong password get the same bytes after the same delay', async () => {
    const cases = [
      ['alice@nowhere.example', PASSWORD_A],
      ['nobody@a.example', PASSWORD_A],
      ['alice@a.example', 'wrong password'],
    ] as const;
    const results = [];
    for (const [user, password] of cases) {
      const r = await tryLogin(env.port, user, password);
      r.client.close();
      results.push(r);
    }
    for (const r of results) {
      assert.equal(r.reply, '-ERR [AUTH] Authentication failed');
      assert.ok(r.ms >= 290, `answered after ${r.ms} ms, before the 300 ms failure delay`);
    }
    const reasons = env.logs.records().filter((r) => r.message === 'login failed').map((r) => r.reason);
    assert.deepEqual(reasons.slice(-3), ['unknownTenant', 'authFailed', 'authFailed'], 'the log tells them apart');
  });

  test('after maxLoginAttempts failures the client is disconnected', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    for (let i = 1; i <= 3; i++) {
      await c.command('USER alice@a.example');
      assert.equal(await c.command('PASS nope'), '-ERR [AUTH] Authentication failed');
    }
    await c.closed;
  });

  test('a wrong password then the right one logs in', async () => {
    const r = await tryLogin(env.port, 'alice@a.example', 'nope');
    assert.match(r.reply, /^-ERR \[AUTH\]/);
    await r.client.command('USER alice@a.example');
    assert.match(await r.client.command(`PASS ${PASSWORD_A}`), /^\+OK/);
    r.client.close();
  });
});

describe('POP3 hostile input before login', () => {
  let env: TwoTenants;
  before(async () => {
    env = await startTwoTenants();
  });
  after(() => env.close());

  test('a 4 KiB line gets -ERR, is not executed, and the session goes on', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    assert.equal(await c.command(`USER ${'x'.repeat(4096)}`), '-ERR Line too long');
    assert.equal(await c.command('USER alice@a.example'), '+OK');
    assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
    c.close();
  });

  test('NUL or a bare CR inside a line gets -ERR and never reaches a backend', async () => {
    const before = env.backendA.connections.length;
    const c = await RawClient.connect(env.port);
    await c.line();
    assert.equal(await c.command('USER alice\0@a.example'), '-ERR Syntax error');
    assert.equal(await c.command('USER alice@a.example\rDELE 1'), '-ERR Syntax error');
    assert.equal(await c.command(`PASS ${PASSWORD_A}`), '-ERR Command not valid in this state', 'no USER was accepted');
    c.close();
    assert.equal(env.backendA.connections.length, before);
  });

  test('"USER a DELE 1" style injection is refused as a syntax error', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    assert.equal(await c.command('USER alice@a.example DELE 1'), '-ERR Syntax error');
    c.close();
  });

  test('transaction commands before login get -ERR', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    assert.equal(await c.command('STAT'), '-ERR Command not valid in this state');
    assert.equal(await c.command('RETR 1'), '-ERR Command not valid in this state');
    assert.equal(await c.command('PASS x'), '-ERR Command not valid in this state');
    assert.equal(await c.command('HELO'), '-ERR Syntax error');
    assert.equal(await c.command('AUTH CRAM-MD5'), '-ERR Unsupported authentication mechanism');
    assert.equal(await c.command('AUTH PLAIN !!!notbase64'), '-ERR Syntax error');
    assert.equal(await c.command('AUTH PLAIN one two'), '-ERR Syntax error');
    c.close();
  });

  test('maxErrors bad commands end the session with a goodbye', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    for (let i = 1; i < 10; i++) assert.equal(await c.command('BOGUS'), '-ERR Syntax error');
    assert.equal(await c.command('BOGUS'), '-ERR Too many errors, closing connection');
    await c.closed;
  });

  test('a line sent in pieces is one command', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    c.send('US');
    c.send('ER alice@a.exa');
    c.send('mple');
    assert.equal(await c.command(''), '+OK');
    c.close();
  });

  test('the debug log never holds a password or a SASL payload', async () => {
    const plain = Buffer.from(`\0alice@a.example\0${PASSWORD_A}`).toString('base64');
    const c = await RawClient.connect(env.port);
    await c.line();
    await c.command('USER alice@a.example');
    await c.command(`PASS ${PASSWORD_A}x`);
    await c.command('AUTH PLAIN');
    assert.match(await c.command(plain), /^\+OK/);
    c.close();
    await env.concierge.listeners[0]!.whenIdle();
    const text = env.logs.lines().join('\n');
    assert.ok(text.includes('PASS [redacted]'), 'debug lines were written');
    assert.ok(!text.includes(PASSWORD_A), 'password in the log');
    assert.ok(!text.includes(plain), 'SASL payload in the log');
  });
});

describe('POP3 timeouts', () => {
  let env: TwoTenants;
  before(async () => {
    env = await startTwoTenants({
      patch: (raw) => Object.assign(raw.limits, { loginTimeoutMs: 400, idleTimeoutMs: 400, connectTimeoutMs: 200, backendReplyTimeoutMs: 200, authFailDelayMs: 10 }),
    });
  });
  after(() => env.close());

  test('the login timeout says goodbye and closes', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    assert.equal(await c.line(), '-ERR Timeout, closing connection');
    await c.closed;
  });

  test('the idle timeout closes a spliced session and its backend connection', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    await c.command('USER alice@a.example');
    assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
    await c.closed;
    await env.concierge.listeners[0]!.whenIdle();
    const closed = env.logs.records().filter((r) => r.message === 'session closed').at(-1);
    assert.equal(closed?.reason, 'idle timeout');
  });
});
