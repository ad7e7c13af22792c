import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthPenalty } from '../src/auth-penalty.js';
import { PASSWORD_A, PASSWORD_B, startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { sampleValue } from './support/prometheus.js';
import { RawClient } from './support/raw-client.js';

const TEMP_FAILURE = '-ERR [SYS/TEMP] Service temporarily unavailable, try again later';

async function greeted(port: number, localAddress?: string): Promise<RawClient> {
  const c = await RawClient.connect(port, { localAddress });
  assert.match(await c.line(), /^\+OK/);
  return c;
}

/** USER then PASS; the PASS reply. */
async function login(c: RawClient, user: string, password: string): Promise<string> {
  assert.match(await c.command(`USER ${user}`), /^\+OK/);
  return c.command(`PASS ${password}`);
}

function failures(env: TwoTenants): Array<[unknown, unknown]> {
  return env.logs
    .records()
    .filter((r) => r.message === 'login failed')
    .map((r) => [r.client, r.delayMs]);
}

describe('per-tenant maxConnections', () => {
  test('a tenant at its maxConnections: the next login gets the temporary failure; other tenants are served; a freed slot is taken', async () => {
    const env = await startTwoTenants({ tenantPatch: (t) => (t[0]!.maxConnections = 1) });
    try {
      const first = await greeted(env.port);
      assert.match(await login(first, 'alice@a.example', PASSWORD_A), /^\+OK/);
      const second = await greeted(env.port);
      assert.equal(await login(second, 'alice@a.example', PASSWORD_A), TEMP_FAILURE);
      const other = await greeted(env.port);
      assert.match(await login(other, 'alice@b.example', PASSWORD_B), /^\+OK/);
      assert.match(await first.command('QUIT'), /^\+OK/);
      await first.closed;
      // The session refused a moment ago is still open (POP3 may try again) and now gets in.
      assert.match(await login(second, 'alice@a.example', PASSWORD_A), /^\+OK/);
      second.close();
      other.close();
      await env.concierge.listeners[0]!.whenIdle();
      const text = await env.concierge.metrics.text();
      assert.equal(sampleValue(text, 'concierge_tenant_refusals_total', { tenant: 'a.example', limit: 'maxConnections' }), 1);
      assert.equal(sampleValue(text, 'concierge_logins_failed_total', { tenant: 'a.example', reason: 'tenantMaxConnections' }), 1);
      assert.equal(sampleValue(text, 'concierge_tenant_refusals_total', { tenant: 'b.example' }), undefined);
    } finally {
      await env.close();
    }
  });

  test('limits.maxConnectionsPerTenant applies to tenants without their own; a wrong password frees its slot', async () => {
    const env = await startTwoTenants({
      patch: (raw) => (raw.limits.maxConnectionsPerTenant = 1),
      tenantPatch: (t) => (t[0]!.maxConnections = 2),
    });
    try {
      const b1 = await greeted(env.port);
      assert.match(await login(b1, 'alice@b.example', PASSWORD_B), /^\+OK/);
      const b2 = await greeted(env.port);
      assert.equal(await login(b2, 'alice@b.example', PASSWORD_B), TEMP_FAILURE);
      const a1 = await greeted(env.port);
      const a2 = await greeted(env.port);
      assert.match(await login(a1, 'alice@a.example', PASSWORD_A), /^\+OK/);
      assert.match(await login(a2, 'alice@a.example', PASSWORD_A), /^\+OK/);
      assert.match(await b1.command('QUIT'), /^\+OK/);
      await b1.closed; // the session gave its slot back before it closed the client's connection
      assert.match(await login(b2, 'alice@b.example', 'wrong'), /^-ERR \[AUTH\]/);
      const b3 = await greeted(env.port);
      assert.match(await login(b3, 'alice@b.example', PASSWORD_B), /^\+OK/);
      assert.equal(await login(b2, 'alice@b.example', PASSWORD_B), TEMP_FAILURE);
      b3.close();
      for (const c of [b2, a1, a2]) c.close();
      await env.concierge.listeners[0]!.whenIdle();
    } finally {
      await env.close();
    }
  });
});

describe('auth failure penalty', () => {
  test('failures from one address double its delay up to the cap; another address starts at the base; a success clears it', async () => {
    const env = await startTwoTenants({ patch: (raw) => Object.assign(raw.limits, { authFailDelayMs: 20, authPenaltyMaxMs: 80, maxLoginAttempts: 10 }) });
    try {
      const guesser = await greeted(env.port, '127.0.0.5');
      for (let i = 0; i < 4; i++) assert.match(await login(guesser, 'alice@a.example', 'wrong'), /^-ERR/);
      // An unknown domain counts as a guess too, and answers alike.
      assert.match(await login(guesser, 'alice@nowhere.example', 'wrong'), /^-ERR/);
      const other = await greeted(env.port, '127.0.0.6');
      assert.match(await login(other, 'alice@a.example', 'wrong'), /^-ERR/);
      assert.equal(sampleValue(await env.concierge.metrics.text(), 'concierge_auth_penalty_addresses'), 2);
      assert.match(await login(guesser, 'alice@a.example', PASSWORD_A), /^\+OK/);
      const again = await greeted(env.port, '127.0.0.5');
      assert.match(await login(again, 'alice@a.example', 'wrong'), /^-ERR/);
      for (const c of [guesser, other, again]) c.close();
      await env.concierge.listeners[0]!.whenIdle();
      const delays = failures(env).map(([client, delayMs]) => [String(client).split(':')[0], delayMs]);
      assert.deepEqual(delays, [
        ['127.0.0.5', 20],
        ['127.0.0.5', 40],
        ['127.0.0.5', 80],
        ['127.0.0.5', 80],
        ['127.0.0.5', 80],
        ['127.0.0.6', 20],
        ['127.0.0.5', 20],
      ]);
    } finally {
      await env.close();
    }
  });

  test('a penalised address waits alone: another client logs in while its answer is still held back', async () => {
    const env = await startTwoTenants({ patch: (raw) => Object.assign(raw.limits, { authFailDelayMs: 25, authPenaltyMaxMs: 3_000, maxLoginAttempts: 10 }) });
    try {
      const guesser = await greeted(env.port, '127.0.0.5');
      for (let i = 0; i < 5; i++) assert.match(await login(guesser, 'alice@a.example', 'wrong'), /^-ERR/);
      // The sixth failure is held 25 × 2^5 = 800 ms.
      assert.match(await guesser.command('USER alice@a.example'), /^\+OK/);
      let answered = false;
      const held = guesser.command('PASS wrong').then((line) => {
        answered = true;
        return line;
      });
      const other = await greeted(env.port, '127.0.0.6');
      assert.match(await login(other, 'alice@b.example', PASSWORD_B), /^\+OK/);
      assert.equal(answered, false, 'the other client was served while the guesser waited');
      assert.match(await held, /^-ERR/);
      guesser.close();
      other.close();
      await env.concierge.listeners[0]!.whenIdle();
      assert.deepEqual(failures(env).at(-1)?.[1], 800);
    } finally {
      await env.close();
    }
  });
});

describe('AuthPenalty record', () => {
  test('decays one failure per quiet period, and forgets the oldest address past its cap', () => {
    let now = 0;
    const penalty = new AuthPenalty(2, () => now);
    const limits = { baseMs: 100, maxMs: 10_000, decayMs: 1_000 };
    assert.deepEqual([1, 2, 3].map(() => penalty.fail('192.0.2.1', limits)), [100, 200, 400]);
    now += 2_000; // two quiet periods: 3 → 1 failure remembered
    assert.equal(penalty.fail('192.0.2.1', limits), 200);
    now += 10_000;
    assert.equal(penalty.fail('192.0.2.1', limits), 100);
    penalty.fail('192.0.2.2', limits);
    penalty.fail('192.0.2.3', limits); // past the cap of 2: 192.0.2.1, the quietest, is forgotten
    assert.equal(penalty.size, 2);
    assert.equal(penalty.fail('192.0.2.1', limits), 100);
    assert.equal(penalty.fail('192.0.2.3', limits), 200);
    assert.equal(penalty.fail('192.0.2.9', { baseMs: 0, maxMs: 0, decayMs: 1 }), 0);
    assert.equal(new AuthPenalty().fail('x', { baseMs: 2_000, maxMs: 15_000, decayMs: 1 }), 2_000);
  });
});
