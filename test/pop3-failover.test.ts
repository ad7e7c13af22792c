import { once } from 'node:events';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closedPort, startFakeBackend } from './support/fake-backend.js';
import { PASSWORD_A, startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { RawClient } from './support/raw-client.js';

async function login(port: number): Promise<{ reply: string; client: RawClient }> {
  const client = await RawClient.connect(port);
  await client.line();
  await client.command('USER alice@a.example');
  return { reply: await client.command(`PASS ${PASSWORD_A}`), client };
}

const TEMP = '-ERR [SYS/TEMP] Service temporarily unavailable, try again later';

describe('POP3 backend failover', () => {
  test('a backend that is down is skipped for the next one', async () => {
    const down = await closedPort();
    const env = await startTwoTenants({
      tenantPatch: (t) => t[0]!.backends.pop3.unshift({ host: '127.0.0.1', port: down }),
    });
    try {
      const { reply, client } = await login(env.port);
      assert.match(reply, /^\+OK/);
      client.close();
      const failed = env.logs.records().find((r) => r.message === 'backend failed');
      assert.equal(failed?.tenant, 'a.example');
      assert.equal(failed?.backend, `127.0.0.1:${down}`);
    } finally {
      await env.close();
    }
  });

  describe('when no backend is left the client gets a temporary error', () => {
    type Fake = Awaited<ReturnType<typeof startFakeBackend>>;
    const fakes: Fake[] = [];
    let env: TwoTenants;
    let resetting: Fake;
    let silent: Fake;
    let garbage: Fake;
    before(async () => {
      resetting = await startFakeBackend((s) => s.write('+OK ready\r\n', () => s.resetAndDestroy()));
      silent = await startFakeBackend(() => {});
      garbage = await startFakeBackend((s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
      fakes.push(resetting, silent, garbage);
      env = await startTwoTenants({
        patch: (raw) => Object.assign(raw.limits, { backendReplyTimeoutMs: 300, connectTimeoutMs: 300 }),
        tenantPatch: (t) => (t[0]!.backends.pop3 = [resetting, silent, garbage].map((f) => ({ host: '127.0.0.1', port: f.port }))),
      });
    });
    after(async () => {
      await env.close();
      await Promise.all(fakes.map((f) => f.close()));
    });

    test('reset after greeting, no greeting at all, and garbage each fail over, then [SYS/TEMP]', async () => {
      const { reply, client } = await login(env.port);
      assert.equal(reply, TEMP);
      for (const f of fakes) assert.equal(f.accepted(), 1);
      const codes = env.logs.records().filter((r) => r.message === 'backend failed').map((r) => r.code);
      // A reset that lands before the connect callback runs is reported as a failed connect.
      assert.ok(codes[0] === 'BACKEND_CLOSED' || codes[0] === 'BACKEND_CONNECT', String(codes[0]));
      assert.deepEqual(codes.slice(1), ['BACKEND_TIMEOUT', 'BACKEND_PROTOCOL']);
      assert.equal(await client.command('QUIT'), '+OK Bye');
      await client.closed;
      await Promise.all(fakes.map((f) => f.closedAll()));
    });
  });

  test('a source address the host does not have is a temporary error, not a crash', async () => {
    const env = await startTwoTenants({ tenantPatch: (t) => (t[0]!.sourceAddress = '192.0.2.1') });
    try {
      const { reply, client } = await login(env.port);
      assert.equal(reply, TEMP);
      client.close();
      const failed = env.logs.records().find((r) => r.message === 'backend failed');
      assert.match(String(failed?.error), /EADDRNOTAVAIL/);
    } finally {
      await env.close();
    }
  });
});

describe('POP3 sessions leak nothing', () => {
  let env: TwoTenants;
  let silent: Awaited<ReturnType<typeof startFakeBackend>>;
  before(async () => {
    silent = await startFakeBackend(() => {});
    env = await startTwoTenants({
      tenantPatch: (t) => t[1]!.backends.pop3.unshift({ host: '127.0.0.1', port: silent.port }),
      patch: (raw) => Object.assign(raw.limits, { backendReplyTimeoutMs: 2_000 }),
    });
  });
  after(async () => {
    await env.close();
    await silent.close();
  });

  test('a client that leaves while Concierge waits on the backend closes that backend connection', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    await c.command('USER alice@b.example');
    c.send('PASS whatever\r\n');
    // The silent backend has the dial when its accept count moves; then the client leaves.
    while (silent.accepted() === 0) await new Promise((r) => setImmediate(r));
    c.close();
    await c.closed;
    await silent.closedAll();
    await env.concierge.listeners[0]!.whenIdle();
    assert.equal(silent.open(), 0);
    // The hang-up itself ended the replay: the backend's reply timeout never fired.
    const records = env.logs.records();
    assert.equal(records.filter((r) => r.message === 'backend failed').length, 0);
    assert.equal(records.find((r) => r.message === 'session closed')?.reason, 'client closed');
  });

  test('after many sessions of every kind, connections and handles return to their baseline', async () => {
    const listener = env.concierge.listeners[0]!;
    await listener.whenIdle();
    const baseline = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const runs: Array<Promise<unknown>> = [];
    for (let i = 0; i < 20; i++) {
      runs.push(
        (async () => {
          const { reply, client } = await login(env.port);
          assert.match(reply, /^\+OK/);
          client.send('STAT\r\nQUIT\r\n');
          await client.closed;
        })(),
        (async () => {
          const c = await RawClient.connect(env.port);
          await c.line();
          c.send(`USER ${'y'.repeat(3000)}\r\n`);
          c.close();
          await c.closed;
        })(),
        (async () => {
          const c = await RawClient.connect(env.port);
          c.close();
          await c.closed;
        })(),
      );
    }
    await Promise.all(runs);
    await listener.whenIdle();
    // The test process also holds the backend's side of each connection: wait for those too.
    while (env.backendA.openConnections > 0) await once(env.backendA, 'disconnect');
    const sockets = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    assert.equal(sockets, baseline);
    assert.equal(env.backendA.connections.filter((r) => r.authenticated).length, 20);
  });
});
