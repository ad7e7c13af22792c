import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Admission, blockListOf } from '../src/admission.js';
import { parseConfig } from '../src/config.js';
import { startConcierge } from '../src/concierge.js';
import { startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { captureLogs } from './support/logs.js';
import { sampleValue } from './support/prometheus.js';
import { RawClient } from './support/raw-client.js';

const POP3_REFUSAL = '-ERR [SYS/TEMP] Too many connections, try again later';
const withLimits = (limits: Record<string, unknown>) => (raw: Record<string, any>) => Object.assign(raw.limits, limits);

/** A client that got the greeting (a session of its own). */
async function greeted(port: number, localAddress?: string): Promise<RawClient> {
  const c = await RawClient.connect(port, { localAddress });
  assert.match(await c.line(), /^\+OK/);
  return c;
}

/** The refusal line, then the close; nothing else. */
async function refused(port: number, localAddress?: string, line = POP3_REFUSAL): Promise<void> {
  const c = await RawClient.connect(port, { localAddress });
  assert.equal(await c.line(), line);
  assert.equal((await c.rest()).length, 0, 'nothing after the refusal');
}

async function refusals(env: TwoTenants, limit: string): Promise<number | undefined> {
  return sampleValue(await env.concierge.metrics.text(), 'concierge_connections_refused_total', { protocol: 'pop3', limit });
}

function refusalLogs(env: TwoTenants): unknown[] {
  return env.logs
    .records()
    .filter((r) => r.message === 'connection refused')
    .map((r) => [r.level, r.reason]);
}

describe('connection limits', () => {
  test('maxConnections: one over the limit is refused; once a session ends, the next is served', async () => {
    const env = await startTwoTenants({ patch: withLimits({ maxConnections: 2 }) });
    const listener = env.concierge.listeners[0]!;
    try {
      const c1 = await greeted(env.port);
      const c2 = await greeted(env.port, '127.0.0.5');
      await refused(env.port, '127.0.0.6');
      assert.equal(await refusals(env, 'maxConnections'), 1);
      assert.deepEqual(refusalLogs(env), [['info', 'maxConnections']]);
      c1.close();
      c2.close();
      await listener.whenIdle();
      (await greeted(env.port)).close();
      await listener.whenIdle();
    } finally {
      await env.close();
    }
  });

  test('maxConnectionsPerIp: a second session from one address is refused, other addresses are not', async () => {
    const env = await startTwoTenants({ patch: withLimits({ maxConnectionsPerIp: 1 }) });
    const listener = env.concierge.listeners[0]!;
    try {
      const c1 = await greeted(env.port, '127.0.0.5');
      await refused(env.port, '127.0.0.5');
      const c2 = await greeted(env.port, '127.0.0.6');
      assert.equal(await refusals(env, 'maxConnectionsPerIp'), 1);
      assert.deepEqual(refusalLogs(env), [['info', 'maxConnectionsPerIp']]);
      c1.close();
      c2.close();
      await listener.whenIdle();
      (await greeted(env.port, '127.0.0.5')).close();
      await listener.whenIdle();
    } finally {
      await env.close();
    }
  });

  test('connectionRatePerIp: past the rate in one second, an address is refused; another is not', async () => {
    // A rate no loaded machine can fall under between three back-to-back connects.
    const env = await startTwoTenants({ patch: withLimits({ connectionRatePerIp: 2 }) });
    const listener = env.concierge.listeners[0]!;
    try {
      (await greeted(env.port, '127.0.0.5')).close();
      (await greeted(env.port, '127.0.0.5')).close();
      await refused(env.port, '127.0.0.5');
      (await greeted(env.port, '127.0.0.6')).close();
      assert.equal(await refusals(env, 'connectionRatePerIp'), 1);
      await listener.whenIdle();
    } finally {
      await env.close();
    }
  });

  test('denyFrom wins over allowFrom; outside allowFrom is refused', async () => {
    const env = await startTwoTenants({
      patch: (raw) => (raw.listeners[0].limits = { allowFrom: ['127.0.0.0/30', '2001:db8::/32'], denyFrom: ['127.0.0.2'] }),
    });
    const listener = env.concierge.listeners[0]!;
    try {
      (await greeted(env.port, '127.0.0.1')).close();
      await refused(env.port, '127.0.0.2');
      await refused(env.port, '127.0.0.9');
      assert.equal(await refusals(env, 'denyFrom'), 1);
      assert.equal(await refusals(env, 'allowFrom'), 1);
      assert.deepEqual(refusalLogs(env), [
        ['info', 'denyFrom'],
        ['info', 'allowFrom'],
      ]);
      await listener.whenIdle();
    } finally {
      await env.close();
    }
  });

  test('a dual-stack listener matches IPv6 clients as IPv6 and IPv4 clients as IPv4', async () => {
    const env = await startTwoTenants({
      patch: (raw) => {
        raw.listeners[0].address = '::';
        raw.listeners[0].limits = { allowFrom: ['127.0.0.0/8', '::1'], denyFrom: ['::1/128'] };
      },
    });
    try {
      (await greeted(env.port, '127.0.0.1')).close(); // arrives as ::ffff:127.0.0.1
      const c = await RawClient.connect(env.port, { host: '::1' });
      assert.equal(await c.line(), POP3_REFUSAL);
      await c.closed;
      assert.equal(await refusals(env, 'denyFrom'), 1);
      assert.match(String(env.logs.records().find((r) => r.message === 'connection refused')?.client), /^::1:\d+$/);
      await env.concierge.listeners[0]!.whenIdle();
    } finally {
      await env.close();
    }
  });

  test('FTP and SMTP listeners refuse with their own 421', async () => {
    const logs = captureLogs('info');
    const config = parseConfig({
      limits: { denyFrom: ['127.0.0.0/8'] },
      listeners: [
        { protocol: 'ftp', address: '127.0.0.1', port: 0, passivePorts: { from: 64990, to: 64991 } },
        { protocol: 'smtp', address: '127.0.0.1', port: 0, hostname: 'mx.test.example' },
        { protocol: 'smtp', address: '127.0.0.1', port: 0, hostname: 'submit.test.example', mode: 'submission' },
      ],
    });
    const concierge = await startConcierge(config, { logger: logs.logger });
    try {
      const [ftp, mx, submission] = concierge.listeners.map((l) => l.address().port);
      await refused(ftp!, undefined, '421 Too many connections, try again later.');
      await refused(mx!, undefined, '421 4.7.0 mx.test.example Too many connections, try again later');
      await refused(submission!, undefined, '421 4.7.0 submit.test.example Too many connections, try again later');
      await Promise.all(concierge.listeners.map((l) => l.whenIdle()));
    } finally {
      await concierge.close(0);
    }
  });

  test('a refused client that never closes is cut when the instance closes', async () => {
    const env = await startTwoTenants({ patch: withLimits({ denyFrom: ['127.0.0.1'] }) });
    const c = await RawClient.connect(env.port);
    assert.equal(await c.line(), POP3_REFUSAL);
    await env.close();
    await c.closed;
    await env.concierge.listeners[0]!.whenIdle();
  });
});

describe('Admission', () => {
  test('rate: a sliding second, the previous second weighted by what is left of it', () => {
    let now = 10_000;
    const a = new Admission({ connectionRatePerIp: 2 }, () => now);
    assert.equal(a.admit('192.0.2.1'), undefined);
    assert.equal(a.admit('192.0.2.1'), undefined);
    assert.equal(a.admit('192.0.2.1'), 'connectionRatePerIp');
    assert.equal(a.admit('192.0.2.2'), undefined);
    now += 1_000; // the two fall in the previous second at full weight
    assert.equal(a.admit('192.0.2.1'), 'connectionRatePerIp');
    now += 600; // weight 0.4: 0.8 < 2
    assert.equal(a.admit('192.0.2.1'), undefined);
    now += 5_000; // everything forgotten
    assert.equal(a.admit('192.0.2.1'), undefined);
    assert.equal(a.admit('192.0.2.1'), undefined);
    assert.equal(a.admit('192.0.2.1'), 'connectionRatePerIp');
  });

  test('concurrent sessions are given back by release()', () => {
    const a = new Admission({ maxConnections: 2, maxConnectionsPerIp: 1 });
    assert.equal(a.admit('192.0.2.1'), undefined);
    assert.equal(a.admit('192.0.2.1'), 'maxConnectionsPerIp');
    assert.equal(a.admit('2001:db8::1'), undefined);
    assert.equal(a.admit('192.0.2.3'), 'maxConnections');
    a.release('192.0.2.1');
    assert.equal(a.admit('192.0.2.1'), undefined);
  });

  test('IPv4 and IPv6 blocks and single addresses', () => {
    const list = blockListOf(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1']);
    assert.equal(list.check('10.200.1.1', 'ipv4'), true);
    assert.equal(list.check('11.0.0.1', 'ipv4'), false);
    assert.equal(list.check('192.0.2.7', 'ipv4'), true);
    assert.equal(list.check('192.0.2.8', 'ipv4'), false);
    assert.equal(list.check('2001:db8:1::5', 'ipv6'), true);
    assert.equal(list.check('2001:db9::5', 'ipv6'), false);
    assert.equal(list.check('::1', 'ipv6'), true);
    const v6only = new Admission({ allowFrom: ['2001:db8::/32'] });
    assert.equal(v6only.admit('2001:db8::9'), undefined);
    assert.equal(v6only.admit('192.0.2.1'), 'allowFrom');
    assert.equal(new Admission({}).active, false);
  });
});

describe('connection limits in the config', () => {
  const listener = { protocol: 'pop3', address: '127.0.0.1', port: 110 };
  test('a listener’s address lists replace the inherited ones; bad blocks name their path', () => {
    const config = parseConfig({ listeners: [listener, { ...listener, port: 111, limits: { denyFrom: ['::1'] } }], limits: { denyFrom: ['10.0.0.0/8'], maxConnectionsPerIp: 20 } });
    assert.deepEqual(config.limits.denyFrom, ['10.0.0.0/8']);
    assert.deepEqual({ ...config.limits, ...config.listeners[1]!.limits }.denyFrom, ['::1']);
    assert.throws(
      () => parseConfig({ listeners: [listener], limits: { allowFrom: ['10.0.0.0/33'] } }),
      (err: { problems: string[] }) => err.problems[0]!.startsWith('limits.allowFrom[0]: must be an address block'),
    );
    assert.throws(
      () => parseConfig({ listeners: [listener], admin: { port: 110 } }),
      (err: { problems: string[] }) => err.problems.includes('admin.port: 110 is also listeners[0].port'),
    );
    assert.equal(parseConfig({ listeners: [listener], admin: { port: 9110 } }).admin?.address, '127.0.0.1');
  });
});
