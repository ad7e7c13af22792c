import assert from 'node:assert/strict';
import type net from 'node:net';
import { describe, test } from 'node:test';
import { parseConfig } from '../src/config.js';
import { closedPort, startFakeBackend } from './support/fake-backend.js';
import { PASSWORD_A, startTwoTenants, testConfig } from './support/fixtures.js';
import type { Listener } from '../src/listener.js';
import { RawClient } from './support/raw-client.js';

async function loggedIn(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  await client.line();
  await client.command('USER alice@a.example');
  assert.match(await client.command(`PASS ${PASSWORD_A}`), /^\+OK/);
  return client;
}

describe('POP3 session lifecycle', () => {
  test('a second attempt for an unknown domain is not logged under the first attempt’s tenant', async () => {
    const env = await startTwoTenants();
    try {
      const c = await RawClient.connect(env.port);
      await c.line();
      await c.command('USER alice@a.example');
      await c.command('PASS wrong');
      await c.command('USER alice@nowhere.example');
      await c.command('PASS wrong');
      c.close();
      await env.concierge.listeners[0]!.whenIdle();
      const failed = env.logs.records().filter((r) => r.message === 'login failed');
      assert.deepEqual(failed.map((r) => [r.tenant, r.reason]), [['a.example', 'authFailed'], [undefined, 'unknownTenant']]);
      assert.equal(env.concierge.traffic.get('a.example'), undefined, 'the session counts toward no tenant');
    } finally {
      await env.close();
    }
  });

  test('login ok names the tenant, the backend and the source address it was dialled from', async () => {
    const env = await startTwoTenants();
    try {
      const c = await loggedIn(env.port);
      await c.command('QUIT');
      const ok = env.logs.records().find((r) => r.message === 'login ok');
      assert.equal(ok?.tenant, 'a.example');
      assert.equal(ok?.source, '127.0.0.2');
      assert.equal(ok?.backend, `127.0.0.1:${env.backendA.port}`);
    } finally {
      await env.close();
    }
  });

  test('an unknown domain waits as long as the backends’ own refusals lately took', async () => {
    const REFUSAL_MS = 400;
    // A backend with its own failure delay, like dovecot's auth_failure_delay.
    const slow = await startFakeBackend((s: net.Socket) => {
      s.write('+OK\r\n');
      s.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('latin1').split('\r\n')) {
          if (line.startsWith('CAPA')) s.write('-ERR\r\n');
          else if (line.startsWith('USER')) s.write('+OK\r\n');
          else if (line.startsWith('PASS')) setTimeout(() => s.write('-ERR [AUTH] no\r\n'), REFUSAL_MS);
        }
      });
    });
    const env = await startTwoTenants({ tenantPatch: (t) => (t[0]!.backends.pop3 = [{ host: '127.0.0.1', port: slow.port }]) });
    try {
      const c = await RawClient.connect(env.port);
      await c.line();
      const timed = async (user: string) => {
        await c.command(`USER ${user}`);
        const started = Date.now();
        const reply = await c.command('PASS wrong');
        return { reply, ms: Date.now() - started };
      };
      const wrongPassword = await timed('alice@a.example');
      const unknownDomain = await timed('alice@nowhere.example');
      assert.equal(unknownDomain.reply, wrongPassword.reply);
      assert.ok(wrongPassword.ms >= REFUSAL_MS, `wrong password took ${wrongPassword.ms} ms`);
      // authFailDelayMs is 50 in tests: without the learnt floor this would answer after ~50 ms.
      assert.ok(unknownDomain.ms >= REFUSAL_MS, `unknown domain took ${unknownDomain.ms} ms`);
      c.close();
    } finally {
      await env.close();
      await slow.close();
    }
  });

  test('on shutdown a logged-in session may finish; one still logging in gets a goodbye', async () => {
    const env = await startTwoTenants();
    try {
      const working = await loggedIn(env.port);
      const waiting = await RawClient.connect(env.port);
      await waiting.line();
      const closing = env.concierge.close();
      assert.equal(await waiting.line(), '-ERR [SYS/TEMP] Server shutting down');
      assert.match(await working.command('STAT'), /^\+OK 1 /);
      assert.match(await working.command('QUIT'), /^\+OK/);
      await working.closed;
      await closing;
    } finally {
      await env.close();
    }
  });

  test('a second close with no grace cuts logged-in sessions', async () => {
    const env = await startTwoTenants({ patch: (raw) => Object.assign(raw.limits, { shutdownGraceMs: 60_000 }) });
    try {
      const working = await loggedIn(env.port);
      const closing = env.concierge.close();
      await env.concierge.close(0);
      await closing;
      await working.closed;
      assert.equal(env.logs.records().find((r) => r.message === 'session closed')?.reason, 'shutting down');
    } finally {
      await env.close();
    }
  });

  test('reloading the tenants over and over under load fails no session', async () => {
    let tenants: Record<string, any>[] = [];
    const env = await startTwoTenants({ tenantPatch: (t) => (tenants = t) });
    try {
      // Each reload swaps in a new directory: the same tenants, an alias that comes and goes.
      const configs = [0, 1].map((i) => testConfig(tenants.map((t, j) => (j === 0 ? { ...t, aliases: i ? ['mail.a.example', 'pop.a.example'] : ['mail.a.example'] } : t))));
      const SESSIONS = 120;
      let started = 0;
      const failed: string[] = [];
      let reloads = 0;
      const worker = async () => {
        while (started < SESSIONS) {
          started++;
          const c = await RawClient.connect(env.port);
          try {
            await c.line();
            await c.command(started % 2 ? 'USER alice@a.example' : 'USER alice@mail.a.example');
            const reply = await c.command(`PASS ${PASSWORD_A}`);
            if (!reply.startsWith('+OK')) failed.push(reply);
            else if (!(await c.command('STAT')).startsWith('+OK 1 ')) failed.push('STAT');
            await c.command('QUIT');
          } finally {
            c.close();
          }
        }
      };
      let loading = true;
      const reloader = (async () => {
        while (loading) {
          env.concierge.reloadTenants(configs[reloads++ % 2]!);
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      await Promise.all(Array.from({ length: 8 }, worker));
      loading = false;
      await reloader;
      assert.deepEqual(failed, []);
      assert.ok(reloads >= SESSIONS, `only ${reloads} reloads happened during ${SESSIONS} sessions`);
    } finally {
      await env.close();
    }
  });

  test('a reload that changes more than tenants says what it did not apply', async () => {
    const env = await startTwoTenants();
    try {
      const next = parseConfig({ listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }], limits: { maxErrors: 2 }, tenants: [] });
      env.concierge.reloadTenants(next);
      const warning = env.logs.records().find((r) => String(r.message).startsWith('reload applies tenants'));
      assert.deepEqual(warning?.ignored, ['limits', 'log']);
      const c = await RawClient.connect(env.port);
      await c.line();
      await c.command('USER alice@a.example');
      assert.equal(await c.command(`PASS ${PASSWORD_A}`), '-ERR [AUTH] Authentication failed', 'a.example is gone');
      c.close();
    } finally {
      await env.close();
    }
  });
  test('a reload opens added listeners and drains removed ones; a kept listener and the removed one’s sessions are untouched', async () => {
    const listener = (banner: string) => ({ protocol: 'pop3', address: '127.0.0.1', port: 0, banner });
    const env = await startTwoTenants({ patch: (raw) => (raw.listeners = [listener('kept'), listener('removed')]) });
    try {
      const [kept, removed] = env.concierge.listeners as [Listener, Listener];
      const removedPort = removed.address().port;
      const spliced = await RawClient.connect(removedPort);
      assert.equal(await spliced.line(), '+OK removed');
      await spliced.command('USER alice@a.example');
      assert.match(await spliced.command(`PASS ${PASSWORD_A}`), /^\+OK/);

      const next = testConfig(env.tenants, (raw) => (raw.listeners = [listener('kept'), listener('added')]));
      await env.concierge.reloadTenants(next);

      const added = env.concierge.listeners.find((l) => l.config.banner === 'added');
      assert.ok(added, 'the added listener is open');
      assert.ok(env.concierge.listeners.includes(kept), 'the kept listener is the same one');
      const viaAdded = await RawClient.connect(added.address().port);
      assert.equal(await viaAdded.line(), '+OK added');
      viaAdded.close();
      const viaKept = await RawClient.connect(kept.address().port);
      assert.equal(await viaKept.line(), '+OK kept');
      viaKept.close();
      await assert.rejects(RawClient.connect(removedPort), /ECONNREFUSED/, 'the removed listener accepts no more');
      assert.match(await spliced.command('STAT'), /^\+OK 1 /, 'its logged-in session goes on');
      assert.match(await spliced.command('QUIT'), /^\+OK/);
      await spliced.closed;
      await removed.whenIdle();
      assert.ok(env.logs.records().some((r) => r.message === 'listener closing: not in the reloaded config'));
    } finally {
      await env.close();
    }
  });
  test('a listener changed on reload (same port, new banner) is reopened on its port', async () => {
    const port = await closedPort();
    const listener = (banner: string) => ({ protocol: 'pop3', address: '127.0.0.1', port, banner });
    const env = await startTwoTenants({ patch: (raw) => (raw.listeners = [listener('before')]) });
    try {
      const first = await RawClient.connect(port);
      assert.equal(await first.line(), '+OK before');
      first.close();
      await env.concierge.reloadTenants(testConfig(env.tenants, (raw) => (raw.listeners = [listener('after')])));
      const second = await RawClient.connect(port);
      assert.equal(await second.line(), '+OK after');
      second.close();
      assert.ok(!env.logs.records().some((r) => r.message === 'listener not opened'));
    } finally {
      await env.close();
    }
  });
});
