import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
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
