import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestCa } from './support/certificates.js';
import { RawClient } from './support/raw-client.js';
import { sampleValue } from './support/prometheus.js';
import { startSmtpTenants, type SmtpEnv } from './support/smtp-fixtures.js';
import { say } from './support/smtp-dialog.js';
/** Sends one command and returns its whole reply (multi-line joined). */

/** The client's byte counters now: what it sent is Concierge's "up", what it read its "down". */
function mark(c: RawClient): { up: number; down: number } {
  return { up: c.socket.bytesWritten, down: c.socket.bytesRead };
}

async function deliver(c: RawClient, to: string, body: string): Promise<void> {
  assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
  assert.match(await say(c, `RCPT TO:<${to}>`), /^250/);
  assert.match(await say(c, 'DATA'), /^354/);
  assert.match(await say(c, `${body}.`), /^250/);
}

describe('SMTP mx: per-tenant accounting of a session that delivers to several tenants', () => {
  let env: SmtpEnv;
  before(async () => {
    env = await startSmtpTenants();
  });
  after(() => env.close());

  test('each tenant gets the bytes of its own transactions and one session; the shares add up to the session', async () => {
    const c = await RawClient.connect(env.port);
    assert.match(await c.line(), /^220 /);
    assert.match(await say(c, 'EHLO client.example'), /^250/);
    // Sizes far apart, so a share sent to the wrong tenant cannot pass by chance.
    await deliver(c, 'alice@a.example', `Subject: one\r\n\r\n${'a'.repeat(70)}\r\n`.repeat(100));
    const afterA1 = mark(c);
    await deliver(c, 'alice@b.example', `Subject: two\r\n\r\n${'b'.repeat(70)}\r\n`.repeat(7));
    const afterB = mark(c);
    await deliver(c, 'bob@mail.a.example', 'Subject: three\r\n\r\nback to a\r\n');
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    await env.concierge.listeners[0]!.whenIdle();
    const total = mark(c);
    const b = { up: afterB.up - afterA1.up, down: afterB.down - afterA1.down };
    const a = { up: total.up - b.up, down: total.down - b.down };
    assert.ok(b.up > 500 && a.up > 7000, `shares ${JSON.stringify({ a, b })}`);

    assert.deepEqual(env.concierge.traffic.get('a.example'), { sessions: 1, bytesUp: a.up, bytesDown: a.down });
    assert.deepEqual(env.concierge.traffic.get('b.example'), { sessions: 1, bytesUp: b.up, bytesDown: b.down });

    const text = await env.concierge.metrics.text();
    const v = (name: string, tenant: string) => sampleValue(text, name, { tenant, protocol: 'smtp' });
    assert.equal(v('concierge_client_to_backend_bytes_total', 'a.example'), a.up);
    assert.equal(v('concierge_backend_to_client_bytes_total', 'a.example'), a.down);
    assert.equal(v('concierge_client_to_backend_bytes_total', 'b.example'), b.up);
    assert.equal(v('concierge_backend_to_client_bytes_total', 'b.example'), b.down);
    assert.equal(v('concierge_tenant_sessions_total', 'a.example'), 1);
    assert.equal(v('concierge_tenant_sessions_total', 'b.example'), 1);
    const closed = env.logs.records().filter((r) => r.message === 'session closed').at(-1);
    assert.deepEqual([closed?.bytesUp, closed?.bytesDown], [a.up + b.up, a.down + b.down]);
  });
});

describe('SMTP mx: per-tenant accounting after STARTTLS', () => {
  let ca: TestCa;
  let env: SmtpEnv;
  before(async () => {
    ca = await TestCa.create();
    const host = await ca.issue(['mx.concierge.test']);
    env = await startSmtpTenants({ listener: { tls: 'starttls', certificate: { cert: host.cert, key: host.key } } });
  });
  after(async () => {
    await env.close();
    await ca.remove();
  });

  test('the plaintext start and the handshake stay in the totals; a later tenant gets exactly its transaction', async () => {
    const plain = await RawClient.connect(env.port);
    assert.match(await plain.line(), /^220 /);
    assert.match(await say(plain, 'EHLO client.example'), /STARTTLS/);
    assert.match(await say(plain, 'STARTTLS'), /^220/);
    const beforeTls = mark(plain);
    const c = await plain.startTls({ ca: ca.pem, servername: 'mx.concierge.test' });
    assert.match(await say(c, 'EHLO client.example'), /^250/);
    await deliver(c, 'alice@a.example', 'Subject: one\r\n\r\nfor a\r\n');
    // The TLS socket counts cleartext, as Concierge's side does after the upgrade.
    const afterA = mark(c);
    await deliver(c, 'alice@b.example', `Subject: two\r\n\r\n${'b'.repeat(70)}\r\n`.repeat(20));
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    await env.concierge.listeners[0]!.whenIdle();
    const end = mark(c);
    const a = env.concierge.traffic.get('a.example')!;
    const b = env.concierge.traffic.get('b.example')!;
    // b, the last tenant: its transaction, then QUIT and its 221.
    assert.deepEqual(b, { sessions: 1, bytesUp: end.up - afterA.up, bytesDown: end.down - afterA.down });
    // a: its transaction, and the plaintext dialogue before it, and the handshake (hence more than both).
    assert.ok(a.bytesUp > beforeTls.up + afterA.up && a.bytesDown > beforeTls.down + afterA.down, `a's share ${JSON.stringify(a)}, plaintext ${JSON.stringify(beforeTls)}, cleartext ${JSON.stringify(afterA)}`);
    const closed = env.logs.records().filter((r) => r.message === 'session closed').at(-1);
    assert.deepEqual([closed?.bytesUp, closed?.bytesDown], [a.bytesUp + b.bytesUp, a.bytesDown + b.bytesDown]);
  });
});
