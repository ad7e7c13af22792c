import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RawClient } from './support/raw-client.js';
import { Receiver } from './support/relay-receiver.js';
import { nextDeferred, nextFinished, startRelay, submit } from './support/relay-fixtures.js';

const at = (r: Receiver) => `127.0.0.1:${r.port}`;

describe('relay delivery: STARTTLS toward the receiver', () => {
  it('opportunistic by default: a server offering STARTTLS gets the message inside TLS, still from the tenant\'s address', async () => {
    const tlsReceiver = new Receiver({ starttls: true });
    await tlsReceiver.listen();
    const env = await startRelay({ 'far.example': at(tlsReceiver) });
    try {
      const finished = nextFinished(env);
      await submit(env.port, { localAddress: '127.0.0.13', from: 'web@b.example', to: ['x@far.example'] });
      await finished;
      assert.deepEqual(tlsReceiver.messages.map((m) => [m.secure, m.remoteAddress, m.helo]), [[true, '127.0.0.3', 'out.b.example']]);
    } finally {
      await env.close();
      await tlsReceiver.close();
    }
  });

  it('"off" sends in plain text; verifyCertificates defers on a certificate that does not verify', async () => {
    const tlsReceiver = new Receiver({ starttls: true });
    await tlsReceiver.listen();
    const plain = await startRelay({ 'far.example': at(tlsReceiver) }, { relay: { tls: { starttls: 'off' } } });
    try {
      const finished = nextFinished(plain);
      await submit(plain.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@far.example'] });
      await finished;
      assert.deepEqual(tlsReceiver.messages.map((m) => m.secure), [false]);
    } finally {
      await plain.close();
    }
    const strict = await startRelay({ 'far.example': at(tlsReceiver) }, { relay: { tls: { verifyCertificates: true } } });
    try {
      const deferred = nextDeferred(strict);
      await submit(strict.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@far.example'] });
      const d = await deferred;
      assert.match(d.recipients[0]!.diagnostic ?? '', /TLS with 127\.0\.0\.1 failed: .*certificate/i);
      assert.equal(tlsReceiver.messages.length, 1, 'nothing sent in plain text instead');
    } finally {
      await strict.close();
      await tlsReceiver.close();
    }
  });
});

describe('relay delivery: SMTPUTF8 (RFC 6531)', () => {
  /** Sends one message with SMTPUTF8 over a raw connection from a.example's relayFrom address. */
  async function sendUtf8(port: number, from: string, to: string): Promise<void> {
    const client = await RawClient.connect(port, { localAddress: '127.0.0.12' });
    await client.line();
    client.send('EHLO web.a.example\r\n');
    const ehlo = [await client.line()];
    while (ehlo.at(-1)!.startsWith('250-')) ehlo.push(await client.line());
    assert.ok(ehlo.includes('250-SMTPUTF8'), ehlo.join('\n'));
    assert.equal(await client.command(`MAIL FROM:<${from}> SMTPUTF8`), '250 2.1.0 Sender OK');
    assert.equal(await client.command(`RCPT TO:<${to}>`), '250 2.1.5 Recipient OK');
    assert.equal(await client.command('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    assert.match(await client.command('Subject: Grüße\r\n\r\nÀ bientôt\r\n.'), /^250 /);
    assert.equal(await client.command('QUIT'), '221 2.0.0 Bye');
    await client.closed;
  }

  it('a UTF-8 address reaches a server that offers SMTPUTF8 as it was given', async () => {
    const far = new Receiver();
    await far.listen();
    const env = await startRelay({ 'far.example': at(far) });
    try {
      const finished = nextFinished(env);
      await sendUtf8(env.port, 'josé@a.example', 'zoë@far.example');
      await finished;
      assert.deepEqual(far.messages.map((m) => [m.from, m.to]), [['josé@a.example', ['zoë@far.example']]]);
    } finally {
      await env.close();
      await far.close();
    }
  });

  it('a server without SMTPUTF8 cannot take a UTF-8 address: 5.6.7 and a DSN', async () => {
    const far = new Receiver({ noSmtputf8: true });
    const senders = new Receiver();
    await far.listen();
    await senders.listen();
    const env = await startRelay({ 'far.example': at(far), 'a.example': at(senders) });
    try {
      const original = nextFinished(env, (m) => m.from !== '');
      const dsn = nextFinished(env, (m) => m.from === '');
      await sendUtf8(env.port, 'web@a.example', 'zoë@far.example');
      const m = await original;
      assert.equal(m.recipients[0]!.status, '5.6.7');
      await dsn;
      assert.equal(far.messages.length, 0);
      assert.match(senders.messages[0]!.body, /Status: 5\.6\.7/);
    } finally {
      await env.close();
      await far.close();
      await senders.close();
    }
  });
});
