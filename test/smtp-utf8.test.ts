import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { sha256 } from './support/smtp-backend.js';
import { startSmtpTenants, type SmtpEnv } from './support/smtp-fixtures.js';
import { greeted, say } from './support/smtp-dialog.js';

describe('SMTP mx with smtputf8: true (RFC 6531)', () => {
  let env: SmtpEnv;
  before(async () => {
    // a's smtp-server offers SMTPUTF8; b's does not. a also hosts the IDN bücher.example (by its A-labels).
    env = await startSmtpTenants({
      listener: { smtputf8: true },
      backendB: { smtpUtf8: false },
      tenantPatch: (t) => t[0]!.aliases.push('xn--bcher-kva.example'),
    });
  });
  after(() => env.close());

  test('SMTPUTF8 is offered; UTF-8 sender, local part and U-label domain reach the backend as sent, with SMTPUTF8', async () => {
    const { c, ehlo } = await greeted(env.port);
    assert.equal(ehlo, '250-mx.concierge.test\n250-PIPELINING\n250-SIZE 33554432\n250-8BITMIME\n250-SMTPUTF8\n250 ENHANCEDSTATUSCODES');
    assert.match(await say(c, 'MAIL FROM:<jörg@absender.example> SMTPUTF8 BODY=8BITMIME'), /^250/);
    assert.match(await say(c, 'RCPT TO:<élise@bücher.example>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<bob@a.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    const message = 'From: jörg@absender.example\r\nTo: élise@bücher.example\r\nSubject: Grüße\r\n\r\nÄpfel\r\n';
    assert.match(await say(c, `${message}.`), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    const m = env.a.messages.at(-1)!;
    assert.deepEqual([m.from, m.to, m.smtpUtf8, m.session.remoteAddress], ['jörg@absender.example', ['élise@bücher.example', 'bob@a.example'], true, '127.0.0.2']);
    assert.equal(m.sha256, sha256(Buffer.from(message, 'utf8')));
  });

  test('nodemailer sends SMTPUTF8 on its own for a UTF-8 address, and it is delivered', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: env.port, secure: false, ignoreTLS: true, name: 'sender.example.org' });
    const before_ = env.a.messages.length;
    await transport.sendMail({ envelope: { from: 'x@sender.example.org', to: ['zoë@a.example'] }, raw: 'Subject: hi\r\n\r\nhello\r\n' });
    transport.close();
    await env.a.waitForMessages(before_ + 1);
    const m = env.a.messages.at(-1)!;
    assert.deepEqual([m.to, m.smtpUtf8], [['zoë@a.example'], true]);
  });

  test('a backend without SMTPUTF8 gets no SMTPUTF8 transaction: 553 5.6.7; a plain one still goes through', async () => {
    const { c } = await greeted(env.port);
    assert.match(await say(c, 'MAIL FROM:<s@example.org> SMTPUTF8'), /^250/);
    assert.equal(await say(c, 'RCPT TO:<alice@b.example>'), "553 5.6.7 The recipient's mail server does not accept SMTPUTF8");
    // Asked again on the connection kept from the first try: the same answer, no MAIL sent to it.
    assert.equal(await say(c, 'RCPT TO:<alice@b.example>'), "553 5.6.7 The recipient's mail server does not accept SMTPUTF8");
    assert.match(await say(c, 'DATA'), /^554 5\.5\.1/);
    assert.match(await say(c, 'RSET'), /^250/);
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@b.example>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    assert.match(await say(c, 'Subject: plain\r\n\r\nascii\r\n.'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.deepEqual(
      env.b.messages.map((m) => [m.to, m.smtpUtf8]),
      [[['alice@b.example'], false]],
    );
    assert.ok(env.logs.records().some((r) => r.message === 'backend does not offer SMTPUTF8' && r.tenant === 'b.example'));
  });

  test('UTF-8 addresses need SMTPUTF8 on MAIL, well-formed UTF-8, no controls and a local part of at most 64 octets', async () => {
    const { c } = await greeted(env.port);
    assert.equal(await say(c, 'MAIL FROM:<jörg@absender.example>'), '553 5.6.7 Non-ASCII addresses not permitted for that sender');
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.equal(await say(c, 'RCPT TO:<élise@a.example>'), '553 5.6.7 Non-ASCII addresses not permitted for that recipient');
    assert.match(await say(c, 'RSET'), /^250/);
    assert.equal(await say(c, 'MAIL FROM:<s@example.org> SMTPUTF8=YES'), '501 5.5.4 Syntax error in parameters or arguments');
    assert.match(await say(c, 'MAIL FROM:<s@example.org> SMTPUTF8'), /^250/);
    const bad = (local: Buffer) => Buffer.concat([Buffer.from('RCPT TO:<'), local, Buffer.from('@a.example>')]);
    assert.equal(await say(c, bad(Buffer.from([0x61, 0xff, 0x62]))), '501 5.1.3 Bad address syntax', 'not UTF-8');
    assert.equal(await say(c, bad(Buffer.from([0xc0, 0xaf]))), '501 5.1.3 Bad address syntax', 'overlong');
    assert.equal(await say(c, bad(Buffer.from([0x61, 0xc2, 0x85]))), '501 5.1.3 Bad address syntax', 'C1 control (NEL)');
    assert.equal(await say(c, bad(Buffer.from('é'.repeat(33)))), '501 5.1.3 Bad address syntax', '66 octets');
    assert.match(await say(c, bad(Buffer.from('é'.repeat(32)))), /^250/, '64 octets');
    assert.equal(await say(c, 'RCPT TO:<x@bücher.unhosted.example>'), '550 5.7.1 Relaying denied');
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
  });
});

describe('SMTP mx without smtputf8', () => {
  let env: SmtpEnv;
  before(async () => {
    env = await startSmtpTenants();
  });
  after(() => env.close());

  test('SMTPUTF8 is neither offered nor taken, and UTF-8 addresses are refused', async () => {
    const { c, ehlo } = await greeted(env.port);
    assert.doesNotMatch(ehlo, /SMTPUTF8/);
    assert.equal(await say(c, 'MAIL FROM:<s@example.org> SMTPUTF8'), '555 5.5.4 Unsupported MAIL or RCPT parameter');
    assert.equal(await say(c, 'MAIL FROM:<jörg@absender.example>'), '553 5.6.7 Non-ASCII addresses not permitted for that sender');
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.equal(await say(c, 'RCPT TO:<élise@a.example>'), '553 5.6.7 Non-ASCII addresses not permitted for that recipient');
    assert.equal(await say(c, 'RCPT TO:<alice@bücher.example>'), '501 5.1.3 Bad address syntax');
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.equal(env.a.messages.length + env.b.messages.length, 0);
  });
});
