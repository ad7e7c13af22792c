import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { closedPort, startFakeBackend } from './support/fake-backend.js';
import { RawClient } from './support/raw-client.js';
import { sha256 } from './support/smtp-backend.js';
import { startSmtpTenants, type SmtpEnv } from './support/smtp-fixtures.js';

/** Reads one SMTP reply (multi-line included) and returns its lines. */
export async function reply(c: RawClient): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const line = await c.line();
    lines.push(line);
    if (!/^\d{3}-/.test(line)) return lines;
  }
}

async function say(c: RawClient, line: string): Promise<string> {
  c.send(`${line}\r\n`);
  return (await reply(c)).join('\n');
}

describe('SMTP mx: routing by recipient domain', () => {
  let env: SmtpEnv;
  before(async () => {
    env = await startSmtpTenants();
  });
  after(() => env.close());

  test('nodemailer delivers to each tenant’s backend, from the tenant’s source address', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: env.port, secure: false, ignoreTLS: true, name: 'sender.example.org' });
    const raw = 'From: x@sender.example.org\r\nTo: alice@a.example\r\nSubject: hi\r\n\r\nhello a\r\n';
    await transport.sendMail({ envelope: { from: 'x@sender.example.org', to: ['alice@a.example'] }, raw });
    await transport.sendMail({ envelope: { from: 'x@sender.example.org', to: ['alice@B.Example'] }, raw: raw.replace('hello a', 'hello b') });
    transport.close();
    await env.a.waitForMessages(1);
    await env.b.waitForMessages(1);
    const [ma] = env.a.messages;
    const [mb] = env.b.messages;
    assert.deepEqual([ma!.from, ma!.to, ma!.session.remoteAddress, ma!.session.helo], ['x@sender.example.org', ['alice@a.example'], '127.0.0.2', 'mx.concierge.test']);
    assert.deepEqual([mb!.from, mb!.to, mb!.session.remoteAddress], ['x@sender.example.org', ['alice@b.example'], '127.0.0.3']);
    assert.equal(ma!.sha256, sha256(raw));
  });

  test('Concierge greets and answers EHLO itself; no backend is contacted before RCPT', async () => {
    const c = await RawClient.connect(env.port);
    assert.equal(await c.line(), '220 mx.concierge.test ESMTP');
    assert.equal(await say(c, 'EHLO client.example'), '250-mx.concierge.test\n250-PIPELINING\n250-SIZE 33554432\n250-8BITMIME\n250 ENHANCEDSTATUSCODES');
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250 2\.1\.0/);
    assert.equal(await say(c, 'RCPT TO:<x@unhosted.example>'), '550 5.7.1 Relaying denied');
    assert.match(await say(c, 'DATA'), /^554 5\.5\.1/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.equal(env.a.messages.length + env.b.messages.length, 1 + 1);
  });
});

/** A body of `lines` lines of 8-bit text, some starting with ".", and its dot-stuffed wire form. */
function body(lines: number, width: number): { plain: Buffer; wire: Buffer } {
  const plain: Buffer[] = [];
  const wire: Buffer[] = [];
  const noBreaks = (b: Buffer): Buffer => Buffer.from(b.map((x) => (x === 0x0a || x === 0x0d ? 0x41 : x)));
  for (let i = 0; i < lines; i++) {
    let line = noBreaks(randomBytes(width));
    if (i % 7 === 0) line = Buffer.concat([Buffer.from(i % 14 === 0 ? '.' : '..'), line]);
    if (i % 50 === 3) line = Buffer.from('.');
    plain.push(line, Buffer.from('\r\n'));
    wire.push(line[0] === 0x2e ? Buffer.concat([Buffer.from('.'), line]) : line, Buffer.from('\r\n'));
  }
  return { plain: Buffer.concat(plain), wire: Buffer.concat(wire) };
}

async function greeted(port: number, helo = 'client.example'): Promise<RawClient> {
  const c = await RawClient.connect(port);
  assert.match(await c.line(), /^220 /);
  assert.match(await say(c, `EHLO ${helo}`), /^250/);
  return c;
}

describe('SMTP mx: transactions', () => {
  let env: SmtpEnv;
  before(async () => {
    env = await startSmtpTenants({ backendA: { unknownUsers: ['nobody@a.example'] } });
  });
  after(() => env.close());

  test('recipients in two tenants: the second gets 451 4.5.3 and a second transaction delivers it', async () => {
    const c = await greeted(env.port);
    const msg = 'Subject: both\r\n\r\nfor a and b\r\n';
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.equal(await say(c, 'RCPT TO:<alice@b.example>'), '451 4.5.3 Recipient belongs to another transaction, try again later');
    assert.match(await say(c, 'RCPT TO:<bob@mail.a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    assert.match(await say(c, `${msg}.`), /^250/);
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@b.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    assert.match(await say(c, `${msg}.`), /^250/);
    // A third transaction back to a: the backend kept from the first is replaced, not reused.
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'RSET'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    const a = env.a.messages.at(-1)!;
    const b = env.b.messages.at(-1)!;
    assert.deepEqual(a.to, ['alice@a.example', 'bob@mail.a.example']);
    assert.deepEqual(b.to, ['alice@b.example']);
    assert.equal(a.sha256, sha256(msg));
    assert.equal(b.sha256, sha256(msg));
    assert.equal(b.session.remoteAddress, '127.0.0.3');
  });

  test('the backend’s RCPT reply is the client’s; a refused first recipient does not bind the transaction', async () => {
    const c = await greeted(env.port);
    assert.match(await say(c, 'MAIL FROM:<>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<nobody@a.example>'), /^550 /);
    assert.match(await say(c, 'RCPT TO:<alice@b.example>'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
  });

  test('a 20 MiB body with dot-lines and 8-bit octets arrives byte-identical, twice in one session', async () => {
    // At most 997 octets a line ("..", then 995): 998 when dot-stuffed, then CRLF: the 1000-octet limit of RFC 5321 §4.5.3.1.6.
    const { plain, wire } = body(21 * 1024, 995);
    const before = env.a.messages.length;
    const c = await greeted(env.port);
    for (let i = 0; i < 2; i++) {
      assert.match(await say(c, `MAIL FROM:<s@example.org> BODY=8BITMIME SIZE=${wire.length}`), /^250/);
      assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
      assert.match(await say(c, 'DATA'), /^354/);
      c.send(wire);
      assert.match(await say(c, '.'), /^250/);
    }
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    const got = env.a.messages.slice(before);
    assert.deepEqual(got.map((m) => [m.size, m.sha256]), [[plain.length, sha256(plain)], [plain.length, sha256(plain)]]);
  });

  test('pipelined commands are answered in order (RFC 2920)', async () => {
    const c = await greeted(env.port);
    c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@a.example>\r\nRCPT TO:<x@unhosted.example>\r\nRCPT TO:<alice@b.example>\r\nDATA\r\n');
    assert.match((await reply(c))[0]!, /^250 2\.1\.0/);
    assert.match((await reply(c))[0]!, /^250/);
    assert.match((await reply(c))[0]!, /^550 5\.7\.1/);
    assert.match((await reply(c))[0]!, /^451 4\.5\.3/);
    assert.match((await reply(c))[0]!, /^354/);
    c.send('Subject: p\r\n\r\nx\r\n.\r\nQUIT\r\n');
    assert.match((await reply(c))[0]!, /^250/);
    assert.match((await reply(c))[0]!, /^221/);
    await c.closed;
  });

  test('SIZE declared over the limit is refused at MAIL', async () => {
    const c = await greeted(env.port);
    assert.equal(await say(c, `MAIL FROM:<s@example.org> SIZE=${64 * 1024 * 1024}`), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.match(await say(c, 'MAIL FROM:<s@example.org> FOO=1'), /^555 5\.5\.4/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^503 5\.5\.1/);
    c.close();
    await env.concierge.listeners[0]!.whenIdle();
  });
});

describe('SMTP mx: limits, failures and abuse', () => {
  let env: SmtpEnv;
  let dead: number;
  before(async () => {
    dead = await closedPort();
    env = await startSmtpTenants({ listener: { maxMessageSize: 4096, greetingDelayMs: 150 }, deadA: [dead], optionsA: { xclient: true }, backendA: { xclient: true }, limits: { maxErrors: 3 } });
  });
  after(() => env.close());
  const idle = () => env.concierge.listeners[0]!.whenIdle();

  test('a body growing past SIZE gets 552 and reaches no backend; the session goes on', async () => {
    const before = env.a.messages.length;
    const c = await greeted(env.port);
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    c.send(Buffer.alloc(10_000, 'x'));
    assert.equal(await say(c, '\r\n.'), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    assert.match(await say(c, 'small\r\n.'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.equal(env.a.messages.length, before + 1);
    await idle();
  });

  test('a body with a bare LF (SMTP smuggling) gets 550 and reaches no backend; the session goes on', async () => {
    const before = env.a.messages.length;
    const c = await greeted(env.port);
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    // A backend that honoured "\n.\n" would end here and run the rest as a second transaction.
    c.send('Subject: one\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<alice@a.example>\r\nDATA\r\nsmuggled\r\n');
    assert.equal(await say(c, '.'), '550 5.6.11 Message refused: a bare CR or LF outside CRLF');
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    assert.match(await say(c, 'clean\r\n.'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.equal(env.a.messages.length, before + 1);
    await idle();
  });

  test('a text line over 1000 octets gets 500 5.5.6 and reaches no backend', async () => {
    const before = env.a.messages.length;
    const c = await greeted(env.port);
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    c.send(`Subject: long\r\n\r\n${'z'.repeat(999)}\r\n`);
    assert.equal(await say(c, '.'), '500 5.5.6 Message refused: a line longer than 1000 octets');
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.equal(env.a.messages.length, before);
    await idle();
  });

  test('the first backend down: the next one takes it; XCLIENT carries the real client; the backend sees the tenant IP', async () => {
    const c = await greeted(env.port, 'real-client.example');
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    assert.match(await say(c, 'x\r\n.'), /^250/);
    c.send('QUIT\r\n');
    await c.closed;
    const m = env.a.messages.at(-1)!;
    assert.equal(m.session.tcpAddress, '127.0.0.2');
    assert.equal(m.session.remoteAddress, '127.0.0.1');
    assert.equal(m.session.xclient.ADDR, '127.0.0.1');
    assert.equal(m.session.xclient.HELO, 'real-client.example');
    assert.equal(m.session.xclient.PROTO, 'ESMTP');
    assert.ok(env.logs.lines().some((l) => l.includes('backend failed') && l.includes(String(dead))));
  });

  test('every backend down: 451 4.4.0 and the session goes on', async () => {
    await env.b.close();
    const c = await greeted(env.port);
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.equal(await say(c, 'RCPT TO:<alice@b.example>'), '451 4.4.0 Service temporarily unavailable, try again later');
    assert.match(await say(c, 'NOOP'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    await idle();
  });

  test('talking before the greeting: 421 and close, no greeting', async () => {
    const c = await RawClient.connect(env.port);
    c.send('EHLO early.example\r\n');
    assert.match(await c.line(), /^421 4\.7\.0 /);
    await c.closed;
    await idle();
  });

  test('an HTTP request line: 421 and close', async () => {
    const c = await RawClient.connect(env.port);
    assert.match(await c.line(), /^220 /);
    c.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await c.line(), /^421 /);
    await c.closed;
    await idle();
  });

  test('over-long lines and CRLF inside an address count toward maxErrors', async () => {
    const c = await greeted(env.port);
    assert.equal(await say(c, `MAIL FROM:<${'x'.repeat(600)}@example.org>`), '500 5.5.2 Line too long');
    c.send('MAIL FROM:<a\r\n@example.org>\r\n');
    assert.match((await reply(c))[0]!, /^501 5\.1\.3/);
    assert.match((await reply(c))[0]!, /^421 4\.7\.0/);
    await c.closed;
    await idle();
  });

  test('a client vanishing mid-DATA: nothing delivered, nothing leaked', async () => {
    const before = env.a.messages.length;
    const c = await greeted(env.port);
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    c.send('Subject: cut\r\n\r\npartial');
    c.close();
    await idle();
    assert.equal(env.a.messages.length, before);
  });
});

describe('SMTP mx: shutdown', () => {
  test('on SIGTERM-style close, a session between transactions gets 421 at once; one inside a transaction finishes it, then gets 421', async () => {
    const env = await startSmtpTenants({ limits: { shutdownGraceMs: 60_000 } });
    try {
      const quiet = await RawClient.connect(env.port);
      await quiet.line();
      await say(quiet, 'EHLO quiet.example');
      const busy = await RawClient.connect(env.port);
      await busy.line();
      await say(busy, 'EHLO busy.example');
      assert.match(await say(busy, 'MAIL FROM:<x@sender.example>'), /^250/);
      assert.match(await say(busy, 'RCPT TO:<alice@a.example>'), /^250/);
      const closing = env.concierge.close();
      assert.match(await quiet.line(), /^421 4\.3\.2 /);
      await quiet.closed;
      assert.match(await say(busy, 'DATA'), /^354/);
      assert.match(await say(busy, 'Subject: last\r\n\r\nfinished during the drain\r\n.'), /^250/);
      assert.match(await busy.line(), /^421 4\.3\.2 /);
      await busy.closed;
      await closing;
      assert.equal(env.a.messages.length, 1, 'the transaction in flight was delivered');
    } finally {
      await env.close();
    }
  });
});

/** Greets and takes EHLO like SMTP, then answers MAIL with `mailReply` (no valid reply code or separator). */
function misspeak(mailReply: string) {
  return (socket: net.Socket): void => {
    socket.write('220 odd.example ESMTP\r\n');
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (let lf = buffered.indexOf('\n'); lf >= 0; lf = buffered.indexOf('\n')) {
        const verb = buffered.slice(0, 4).toUpperCase();
        buffered = buffered.slice(lf + 1);
        if (verb === 'EHLO') socket.write('250-odd.example\r\n250 PIPELINING\r\n');
        else if (verb === 'MAIL') socket.write(`${mailReply}\r\n`);
      }
    });
  };
}

describe('SMTP mx: a backend whose replies are not SMTP', () => {
  for (const mailReply of ['250x sender ok', '2500 sender ok', 'OK sender']) {
    test(`"${mailReply}" is a protocol error: logged, and the tenant's next backend takes the transaction`, async () => {
      const odd = await startFakeBackend(misspeak(mailReply));
      const env = await startSmtpTenants({ deadA: [odd.port] });
      try {
        const c = await greeted(env.port);
        assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
        assert.match(await say(c, 'RCPT TO:<alice@a.example>'), /^250/);
        assert.match(await say(c, 'DATA'), /^354/);
        assert.match(await say(c, 'Subject: odd\r\n\r\nsecond backend\r\n.'), /^250/);
        assert.match(await say(c, 'QUIT'), /^221/);
        await c.closed;
        assert.equal(env.a.messages.length, 1);
        assert.ok(env.logs.lines().some((l) => l.includes('backend failed') && l.includes('BACKEND_PROTOCOL')));
      } finally {
        await env.close();
        await odd.close();
      }
    });
  }
});
