import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Metrics, OTHER_TENANTS } from '../src/metrics.js';
import { PASSWORD_A, PASSWORD_B, startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { sampleValue } from './support/prometheus.js';
import { RawClient } from './support/raw-client.js';

const withAdmin = (raw: Record<string, any>) => (raw.admin = { port: 0 });

async function get(env: TwoTenants, path: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`http://127.0.0.1:${env.concierge.admin!.address().port}${path}`);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

/** Bytes one finished client connection sent and received, as its own socket counted them. */
async function finished(c: RawClient): Promise<{ up: number; down: number }> {
  await c.closed;
  return { up: c.socket.bytesWritten, down: c.socket.bytesRead };
}

describe('Metrics', () => {
  test('past maxTenantSeries, tenants share the "_other" series', async () => {
    const metrics = new Metrics({ maxTenantSeries: 1 });
    const pop3 = metrics.forListener('pop3@127.0.0.1:110', 'pop3');
    const ftp = metrics.forListener('ftp@127.0.0.1:21', 'ftp');
    const done = (tenant: string, bytes: number) => ({ reason: 'quit', tenant, loggedIn: true, bytesUp: bytes, bytesDown: 2 * bytes });
    for (const [listener, tenant] of [[pop3, 'a.example'], [pop3, 'b.example'], [ftp, 'c.example'], [ftp, 'a.example']] as const) {
      listener.loginOk(tenant);
      listener.loginFailed(tenant, 'authFailed');
      listener.sessionDone(done(tenant, 10));
    }
    const text = await metrics.text();
    assert.equal(sampleValue(text, 'concierge_client_to_backend_bytes_total', { tenant: 'a.example', protocol: 'pop3' }), 10);
    assert.equal(sampleValue(text, 'concierge_client_to_backend_bytes_total', { tenant: 'a.example', protocol: 'ftp' }), 10);
    assert.equal(sampleValue(text, 'concierge_client_to_backend_bytes_total', { tenant: OTHER_TENANTS, protocol: 'pop3' }), 10);
    assert.equal(sampleValue(text, 'concierge_backend_to_client_bytes_total', { tenant: OTHER_TENANTS, protocol: 'ftp' }), 20);
    assert.equal(sampleValue(text, 'concierge_logins_failed_total', { tenant: OTHER_TENANTS, protocol: 'ftp', reason: 'authFailed' }), 1);
    assert.equal(sampleValue(text, 'concierge_tenant_sessions_active', { tenant: OTHER_TENANTS, protocol: 'pop3' }), 0);
    assert.doesNotMatch(text, /[bc]\.example/);
  });
});

describe('admin listener', () => {
  test('/metrics counts sessions, logins and bytes per tenant as the clients saw them', async () => {
    const env = await startTwoTenants({ patch: withAdmin });
    try {
      // a.example: one good session that reads a message, one wrong password.
      const a1 = await RawClient.connect(env.port);
      await a1.line();
      await a1.command('USER alice@a.example');
      assert.match(await a1.command(`PASS ${PASSWORD_A}`), /^\+OK/);
      assert.match(await a1.command('RETR 1'), /^\+OK/);
      await a1.multiline();
      await a1.command('QUIT');
      const a2 = await RawClient.connect(env.port);
      await a2.line();
      await a2.command('USER alice@a.example');
      assert.match(await a2.command('PASS wrong'), /^-ERR/);
      await a2.command('QUIT');
      // b.example: one good session.
      const b1 = await RawClient.connect(env.port);
      await b1.line();
      await b1.command('USER alice@b.example');
      assert.match(await b1.command(`PASS ${PASSWORD_B}`), /^\+OK/);
      assert.match(await b1.command('STAT'), /^\+OK 2 /);
      await b1.command('QUIT');
      // A domain nobody hosts: counted without its name.
      const u = await RawClient.connect(env.port);
      await u.line();
      await u.command('USER mallory@made-up.example');
      assert.match(await u.command('PASS x'), /^-ERR/);
      await u.command('QUIT');
      const [ta1, ta2, tb1] = await Promise.all([finished(a1), finished(a2), finished(b1), finished(u)]);
      await env.concierge.listeners[0]!.whenIdle();

      const { status, body, type } = await get(env, '/metrics');
      assert.equal(status, 200);
      assert.match(type ?? '', /^text\/plain/);
      const v = (name: string, labels: Record<string, string>) => sampleValue(body, name, labels);
      const a = { tenant: 'a.example', protocol: 'pop3' };
      const b = { tenant: 'b.example', protocol: 'pop3' };
      assert.equal(v('concierge_client_to_backend_bytes_total', a), ta1!.up + ta2!.up);
      assert.equal(v('concierge_backend_to_client_bytes_total', a), ta1!.down + ta2!.down);
      assert.equal(v('concierge_client_to_backend_bytes_total', b), tb1!.up);
      assert.equal(v('concierge_backend_to_client_bytes_total', b), tb1!.down);
      assert.equal(v('concierge_tenant_sessions_total', a), 2);
      assert.equal(v('concierge_tenant_sessions_total', b), 1);
      assert.equal(v('concierge_logins_ok_total', a), 1);
      assert.equal(v('concierge_logins_ok_total', b), 1);
      assert.equal(v('concierge_logins_failed_total', { ...a, reason: 'authFailed' }), 1);
      assert.equal(v('concierge_logins_failed_total', { tenant: '', protocol: 'pop3', reason: 'unknownTenant' }), 1);
      assert.doesNotMatch(body, /made-up/, 'an unknown domain never becomes a label');
      const listener = { protocol: 'pop3' };
      assert.equal(v('concierge_sessions_started_total', listener), 4);
      assert.equal(v('concierge_sessions_active', listener), 0);
      assert.ok((v('process_resident_memory_bytes', {}) ?? 0) > 0, 'process metrics are served');
      // The same totals as the per-tenant traffic map the log lines add up to.
      assert.equal(env.concierge.traffic.get('a.example')?.bytesUp, ta1!.up + ta2!.up);
    } finally {
      await env.close();
    }
  });

  test('a backend that cannot be reached is counted per tenant and code', async () => {
    const env = await startTwoTenants({ patch: withAdmin, tenantPatch: (t) => (t[1]!.backends.pop3 = [{ host: '127.0.0.1', port: 1 }]) });
    try {
      const c = await RawClient.connect(env.port);
      await c.line();
      await c.command('USER alice@b.example');
      assert.match(await c.command(`PASS ${PASSWORD_B}`), /^-ERR \[SYS\/TEMP\]/);
      c.close();
      await env.concierge.listeners[0]!.whenIdle();
      const { body } = await get(env, '/metrics');
      assert.equal(sampleValue(body, 'concierge_backend_failures_total', { tenant: 'b.example', protocol: 'pop3', code: 'BACKEND_CONNECT' }), 1);
      assert.equal(sampleValue(body, 'concierge_logins_failed_total', { tenant: 'b.example', protocol: 'pop3', reason: 'tempFailure' }), 1);
    } finally {
      await env.close();
    }
  });

  test('/healthz is 200 while serving, 503 while draining; other paths 404', async () => {
    const env = await startTwoTenants({ patch: withAdmin });
    let closing: Promise<void> | undefined;
    try {
      assert.deepEqual(await get(env, '/healthz').then((r) => [r.status, r.body]), [200, 'ok\n']);
      assert.equal((await get(env, '/nope')).status, 404);
      // A logged-in session keeps the drain going while the health check is asked.
      const c = await RawClient.connect(env.port);
      await c.line();
      await c.command('USER alice@a.example');
      assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
      const active = async () => sampleValue((await get(env, '/metrics')).body, 'concierge_tenant_sessions_active', { tenant: 'a.example', protocol: 'pop3' });
      assert.equal(await active(), 1);
      closing = env.concierge.close(30_000);
      assert.equal((await get(env, '/healthz')).status, 503);
      assert.match(await c.command('STAT'), /^\+OK/, 'the logged-in session goes on meanwhile');
      await c.command('QUIT');
      await c.closed;
      await closing;
      // The admin listener is gone with the instance; the registry still holds the counters.
      assert.equal(sampleValue(await env.concierge.metrics.text(), 'concierge_tenant_sessions_active', { tenant: 'a.example', protocol: 'pop3' }), 0);
      await assert.rejects(get(env, '/healthz'), 'the admin listener closes with the instance');
    } finally {
      await closing;
      await env.close();
    }
  });
});
