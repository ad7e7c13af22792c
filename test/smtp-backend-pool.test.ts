import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sampleValue } from './support/prometheus.js';
import { greeted, say } from './support/smtp-dialog.js';
import { startSmtpTenants, type SmtpEnv } from './support/smtp-fixtures.js';

/** One whole client session: a message to `to`, then QUIT; the final replies. */
async function deliver(env: SmtpEnv, to: string, body = 'Subject: pool\r\n\r\nhello\r\n'): Promise<string> {
  const { c } = await greeted(env.port);
  assert.match(await say(c, 'MAIL FROM:<s@sender.example>'), /^250 /);
  const rcpt = await say(c, `RCPT TO:<${to}>`);
  if (!rcpt.startsWith('250')) {
    await say(c, 'QUIT');
    return rcpt;
  }
  assert.match(await say(c, 'DATA'), /^354 /);
  const final = await say(c, `${body}.`);
  assert.match(await say(c, 'QUIT'), /^221 /);
  await c.closed;
  return final;
}

async function withTenants(options: Parameters<typeof startSmtpTenants>[0], body: (env: SmtpEnv) => Promise<void>): Promise<void> {
  const env = await startSmtpTenants(options);
  try {
    await body(env);
  } finally {
    await env.close();
  }
}

describe('SMTP mx: backend connections kept between client sessions (backendPool)', () => {
  test('sessions of one tenant, one after another, reuse one backend connection from the tenant’s address', () =>
    withTenants({}, async (env) => {
      for (let i = 0; i < 3; i++) assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(3);
      assert.deepEqual(env.a.connections, ['127.0.0.2']);
      assert.equal(new Set(env.a.messages.map((m) => m.session.id)).size, 1);
      assert.ok(env.a.messages.every((m) => m.session.remoteAddress === '127.0.0.2' && m.session.helo === 'mx.concierge.test'));
      assert.equal(env.a.closed, 0, 'the connection stays open between sessions');
      const text = await env.concierge.metrics.text();
      assert.equal(sampleValue(text, 'concierge_backend_reuses_total', { protocol: 'smtp' }), 2);
      assert.equal(sampleValue(text, 'concierge_backend_idle_connections', { protocol: 'smtp' }), 1);
    }));

  test('a client that hangs up without QUIT between transactions leaves the connection reusable; one that hangs up inside a transaction does not', () =>
    withTenants({}, async (env) => {
      const { c } = await greeted(env.port);
      assert.match(await say(c, 'MAIL FROM:<s@sender.example>'), /^250 /);
      assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250 /);
      assert.match(await say(c, 'DATA'), /^354 /);
      assert.match(await say(c, 'Subject: no quit\r\n\r\nbye\r\n.'), /^250 /);
      c.close(); // no QUIT
      await c.closed;
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      assert.equal(env.a.connections.length, 1);

      const d = (await greeted(env.port)).c;
      assert.match(await say(d, 'MAIL FROM:<s@sender.example>'), /^250 /);
      assert.match(await say(d, 'RCPT TO:<alice@a.example>'), /^250 /);
      d.close(); // mid-transaction: that backend connection is not handed on
      await d.closed;
      await env.a.waitForClosed(1);
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(3);
      assert.equal(env.a.messages.length, 3);
      assert.equal(env.a.connections.length, 2);
    }));

  test('a connection whose backend refused something in the session is not handed on (servers count errors per connection)', () =>
    withTenants({ backendA: { unknownUsers: ['nobody@a.example'] } }, async (env) => {
      const { c } = await greeted(env.port);
      assert.match(await say(c, 'MAIL FROM:<s@sender.example>'), /^250 /);
      assert.match(await say(c, 'RCPT TO:<nobody@a.example>'), /^550 /);
      assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250 /);
      assert.match(await say(c, 'DATA'), /^354 /);
      assert.match(await say(c, 'Subject: one refused\r\n\r\nhi\r\n.'), /^250 /);
      assert.match(await say(c, 'QUIT'), /^221 /);
      await c.closed;
      await env.a.waitForClosed(1);
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(3);
      assert.equal(env.a.connections.length, 2, 'a fresh connection, then that clean one reused');
    }));

  test('two tenants on one backend server never share a connection', () =>
    withTenants(
      { tenantPatch: (tenants) => (tenants[1]!.backends.smtp = tenants[0]!.backends.smtp) },
      async (env) => {
        for (const to of ['alice@a.example', 'bob@b.example', 'alice@a.example', 'bob@b.example']) assert.match(await deliver(env, to), /^250 /);
        await env.a.waitForMessages(4);
        assert.deepEqual([...env.a.connections].sort(), ['127.0.0.2', '127.0.0.3']);
        for (const m of env.a.messages) assert.equal(m.session.remoteAddress, m.to[0] === 'alice@a.example' ? '127.0.0.2' : '127.0.0.3');
      },
    ));

  test('a connection the backend closed while parked is not reused', () =>
    withTenants({ backendA: { socketTimeoutMs: 300 } }, async (env) => {
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForClosed(1); // smtp-server's idle timeout: 421 and close
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(2);
      assert.equal(env.a.connections.length, 2);
    }));

  test('a parked connection that turns out stale (421 to MAIL) is replaced unseen by the client', () =>
    withTenants({ backendA: { mailReply: (transaction) => (transaction > 1 ? 421 : undefined) } }, async (env) => {
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(2);
      assert.equal(env.a.connections.length, 2);
      assert.notEqual(env.a.messages[0]!.session.id, env.a.messages[1]!.session.id);
      assert.ok(env.logs.records().some((r) => r.message === 'pooled backend connection gone stale'));
    }));

  test('a parked connection that defers MAIL (4xx: a messages-per-connection limit) is replaced unseen by the client', () =>
    withTenants({ backendA: { mailReply: (transaction) => (transaction > 1 ? 452 : undefined) } }, async (env) => {
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(2);
      assert.equal(env.a.connections.length, 2);
      assert.ok(env.logs.records().some((r) => r.message === 'pooled backend connection deferred MAIL' && r.reply === 452));
    }));

  test('idle connections are closed after idleTimeoutMs', () =>
    withTenants({ listener: { backendPool: { idleTimeoutMs: 200 } } }, async (env) => {
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForClosed(1);
      assert.equal(env.a.connections.length, 1);
    }));

  test('a connection serves at most maxReuses sessions', () =>
    withTenants({ listener: { backendPool: { maxReuses: 2 } } }, async (env) => {
      for (let i = 0; i < 4; i++) assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(4);
      assert.equal(env.a.connections.length, 2);
    }));

  test('maxIdle 0 turns pooling off; backends with xclient are never pooled', async () => {
    await withTenants({ listener: { backendPool: { maxIdle: 0 } } }, async (env) => {
      for (let i = 0; i < 2; i++) assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForClosed(2);
      assert.equal(env.a.connections.length, 2);
    });
    await withTenants({ backendA: { xclient: true }, optionsA: { xclient: true } }, async (env) => {
      for (let i = 0; i < 2; i++) assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(2);
      assert.equal(env.a.connections.length, 2);
      assert.ok(env.a.messages.every((m) => m.session.xclient.ADDR === '127.0.0.1'));
    });
  });

  test('a reload closes parked connections (backends may have changed); the next session dials afresh', () =>
    withTenants({}, async (env) => {
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.concierge.reloadTenants(env.config);
      await env.a.waitForClosed(1);
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      await env.a.waitForMessages(2);
      assert.equal(env.a.connections.length, 2);
    }));

  test('shutdown closes parked connections', async () => {
    const env = await startSmtpTenants({});
    try {
      assert.match(await deliver(env, 'alice@a.example'), /^250 /);
      assert.equal(env.a.closed, 0);
      await env.concierge.close(0);
      await env.a.waitForClosed(1);
    } finally {
      await env.close();
    }
  });
});
