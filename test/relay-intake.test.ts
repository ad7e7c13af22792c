import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCa } from './support/certificates.js';
import { RawClient } from './support/raw-client.js';
import { messageId, type RelayEnv, startRelay, submit, SUBMIT_PASSWORD } from './support/relay-fixtures.js';

/** Every recipient domain goes to a port nobody listens on: messages stay queued for inspection. */
const NOWHERE = { '*': '127.0.0.1:1' };

async function record(env: RelayEnv, queue: string, id: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(env.spool, queue, `${id}.json`), 'utf8')) as Record<string, unknown>;
}

function queuedId(response: string): string {
  const m = /queued as ([0-9A-Z]+)/.exec(response);
  assert.ok(m, `no queue id in ${response}`);
  return m[1]!;
}

describe('relay intake: tenant identification and the durable queue', () => {
  let env: RelayEnv;
  before(async () => {
    env = await startRelay(NOWHERE);
  });
  after(() => env.close());

  it('a client in a tenant\'s relayFrom is that tenant: the message is on disk in its queue before the 250', async () => {
    const id = messageId();
    const response = await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['someone@far.example', 'other@far.example'], id });
    assert.match(response, /^250 2\.0\.0 Ok: queued as /);
    const qid = queuedId(response);
    const rec = await record(env, 'a.example', qid);
    assert.equal(rec.from, 'web@a.example');
    assert.deepEqual((rec.recipients as Array<{ address: string }>).map((r) => r.address), ['someone@far.example', 'other@far.example']);
    const body = await readFile(path.join(env.spool, 'a.example', `${qid}.eml`), 'latin1');
    assert.match(body, /^Received: from client\.test \(\[127\.0\.0\.12\]\)\r\n\tby relay\.concierge\.test/);
    assert.ok(body.includes(`Message-ID: ${id}\r\n`));
    assert.ok(body.endsWith('Hello through the relay.\r\n'), 'the end mark is not stored');
    assert.equal(rec.size, Buffer.byteLength(body, 'latin1'));
  });

  it('SMTP AUTH as alice@a.example is checked by a.example\'s own submission server, from a.example\'s address', async () => {
    const response = await submit(env.port, { localAddress: '127.0.0.99', from: 'alice@a.example', to: ['x@far.example'], auth: { user: 'alice@a.example', pass: SUBMIT_PASSWORD } });
    const qid = queuedId(response);
    assert.equal((await record(env, 'a.example', qid)).from, 'alice@a.example');
    const check = env.submission.auths.at(-1)!;
    assert.deepEqual(check, { user: 'alice', ok: true, remoteAddress: '127.0.0.2', secure: false });
  });

  it('a wrong password and an unknown domain get the same 535', async () => {
    const wrong = submit(env.port, { localAddress: '127.0.0.99', from: 'alice@a.example', to: ['x@far.example'], auth: { user: 'alice@a.example', pass: 'nope' } });
    await assert.rejects(wrong, (err: Error & { response?: string }) => err.response === '535 5.7.8 Authentication credentials invalid');
    const unknown = submit(env.port, { localAddress: '127.0.0.99', from: 'alice@nowhere.example', to: ['x@far.example'], auth: { user: 'alice@nowhere.example', pass: 'nope' } });
    await assert.rejects(unknown, (err: Error & { response?: string }) => err.response === '535 5.7.8 Authentication credentials invalid');
  });

  it('the MAIL FROM domain identifies the tenant when the listener allows it; the tenant\'s own queue takes it', async () => {
    const response = await submit(env.port, { localAddress: '127.0.0.99', from: 'news@b.example', to: ['x@far.example'] });
    const qid = queuedId(response);
    assert.equal((await record(env, 'b.example', qid)).queue, 'b.example');
  });

  it('the host\'s own clients relay as the host, in the host queue', async () => {
    const response = await submit(env.port, { localAddress: '127.0.0.1', from: 'root@host.concierge.test', to: ['ops@far.example'] });
    const qid = queuedId(response);
    assert.equal((await record(env, '_host', qid)).queue, '_host');
  });

  it('nobody known: 554 5.7.1 at MAIL, never an open relay, and a log line says why', async () => {
    const client = await RawClient.connect(env.port, { localAddress: '127.0.0.99' });
    assert.match(await client.line(), /^220 relay\.concierge\.test ESMTP/);
    client.send('EHLO stranger.test\r\n');
    for (let line = await client.line(); line.startsWith('250-'); line = await client.line());
    assert.equal(await client.command('MAIL FROM:<spam@unknown.example>'), '554 5.7.1 Relay access denied: sender not identified');
    assert.equal(await client.command('RCPT TO:<victim@far.example>'), '503 5.5.1 Need MAIL before RCPT');
    assert.equal(await client.command('DATA'), '503 5.5.1 Need MAIL before RCPT');
    assert.equal(await client.command('QUIT'), '221 2.0.0 Bye');
    await client.closed;
    assert.ok(env.logs.records().some((r) => r.message === 'relay refused: sender not identified' && r.from === 'spam@unknown.example'));
  });

  it('a body with a bare LF is refused and nothing is queued', async () => {
    // Bodies only: a record being rewritten after a delivery attempt has a .tmp file for a moment.
    const bodies = async () => (await readdir(path.join(env.spool, 'b.example'))).filter((f) => f.endsWith('.eml')).length;
    const before = await bodies();
    const client = await RawClient.connect(env.port, { localAddress: '127.0.0.13' });
    await client.line();
    assert.equal(await client.command('HELO web.b.example'), '250 relay.concierge.test');
    assert.equal(await client.command('MAIL FROM:<x@b.example>'), '250 2.1.0 Sender OK');
    assert.equal(await client.command('RCPT TO:<y@far.example>'), '250 2.1.5 Recipient OK');
    assert.equal(await client.command('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    assert.equal(await client.command('Subject: x\r\n\r\nbad\nline\r\n.'), '550 5.6.11 Message refused: a bare CR or LF outside CRLF');
    assert.equal(await client.command('QUIT'), '221 2.0.0 Bye');
    await client.closed;
    assert.equal(await bodies(), before);
  });
});

describe('relay intake: a listener without mailFrom', () => {
  let env: RelayEnv;
  before(async () => {
    env = await startRelay(NOWHERE, { listener: { identifyBy: ['auth', 'address'] } });
  });
  after(() => env.close());

  it('a tenant\'s domain in MAIL FROM alone does not identify the sender', async () => {
    const attempt = submit(env.port, { localAddress: '127.0.0.99', from: 'news@b.example', to: ['x@far.example'] });
    await assert.rejects(attempt, (err: Error & { response?: string }) => err.response === '554 5.7.1 Relay access denied: sender not identified');
  });
});

describe('relay intake over STARTTLS (requireTls)', () => {
  let env: RelayEnv;
  let ca: TestCa;
  before(async () => {
    ca = await TestCa.create();
    const cert = await ca.issue(['relay.concierge.test']);
    env = await startRelay(NOWHERE, { listener: { tls: 'starttls', requireTls: true, certificate: { cert: cert.cert, key: cert.key } } });
  });
  after(async () => {
    await env.close();
    await ca.remove();
  });

  it('offers STARTTLS and no AUTH before it, refuses MAIL in the clear, and queues the message sent after the upgrade', async () => {
    const plain = await RawClient.connect(env.port, { localAddress: '127.0.0.12' });
    await plain.line();
    plain.send('EHLO web.a.example\r\n');
    const ehlo: string[] = [];
    for (let l = await plain.line(); ; l = await plain.line()) {
      ehlo.push(l);
      if (l.startsWith('250 ')) break;
    }
    assert.ok(ehlo.includes('250-STARTTLS') || ehlo.includes('250 STARTTLS'), ehlo.join('\n'));
    assert.ok(!ehlo.some((l) => l.includes('AUTH')), 'no AUTH before TLS');
    assert.equal(await plain.command('MAIL FROM:<web@a.example>'), '530 5.7.0 Must issue a STARTTLS command first');
    assert.equal(await plain.command('STARTTLS'), '220 2.0.0 Ready to start TLS');
    const secure = await plain.startTls({ ca: ca.pem, servername: 'relay.concierge.test' });
    assert.equal(await secure.command('MAIL FROM:<web@a.example>'), '503 5.5.1 Send EHLO or HELO first', 'the session starts over');
    await secure.command('HELO web.a.example');
    assert.equal(await secure.command('MAIL FROM:<web@a.example>'), '250 2.1.0 Sender OK');
    assert.equal(await secure.command('RCPT TO:<someone@far.example>'), '250 2.1.5 Recipient OK');
    assert.match(await secure.command('DATA'), /^354/);
    const response = await secure.command('Subject: over tls\r\n\r\nsent inside TLS\r\n.');
    const rec = await record(env, 'a.example', queuedId(response));
    assert.equal(rec.from, 'web@a.example');
    assert.equal(await secure.command('QUIT'), '221 2.0.0 Bye');
  });
});

describe('relay intake: accounting', () => {
  let env: RelayEnv;
  before(async () => {
    env = await startRelay(NOWHERE);
  });
  after(() => env.close());

  it('a session that sends as two tenants books each transaction’s bytes to its sender', async () => {
    const client = await RawClient.connect(env.port, { localAddress: '127.0.0.14' });
    await client.line();
    await client.command('HELO app.example');
    const sentAfter: number[] = [];
    for (const [from, body] of [['web@a.example', 'for a'], ['web@b.example', 'for b, a longer body than the first']] as const) {
      assert.equal(await client.command(`MAIL FROM:<${from}>`), '250 2.1.0 Sender OK');
      assert.equal(await client.command('RCPT TO:<someone@far.example>'), '250 2.1.5 Recipient OK');
      assert.match(await client.command('DATA'), /^354/);
      assert.match(await client.command(`Subject: x\r\n\r\n${body}\r\n.`), /^250 2\.0\.0 Ok: queued/);
      sentAfter.push(client.socket.bytesWritten);
    }
    assert.equal(await client.command('QUIT'), '221 2.0.0 Bye');
    await client.closed;
    await env.concierge.listeners[0]!.whenIdle();
    const a = env.concierge.traffic.get('a.example');
    const b = env.concierge.traffic.get('b.example');
    assert.ok(a && b, 'both senders booked');
    // Before the first transaction (HELO) counts for the first sender, QUIT for the last.
    assert.equal(a.bytesUp, sentAfter[0], 'a.example: HELO and its transaction');
    assert.equal(b.bytesUp, client.socket.bytesWritten - sentAfter[0]!, 'b.example: its transaction and QUIT');
  });
});
