import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { RawClient } from './support/raw-client.js';
import { sha256 } from './support/smtp-backend.js';
import { PASSWORD_A, PASSWORD_B, startSmtpTenants, type SmtpEnv } from './support/smtp-fixtures.js';
import { plainResponse, say, smtpReply } from './support/smtp-dialog.js';

describe('SMTP submission: routing by AUTH identity', () => {
  let env: SmtpEnv;
  before(async () => {
    env = await startSmtpTenants({ listener: { mode: 'submission', hostname: 'submit.concierge.test' } });
  });
  after(() => env.close());
  const idle = () => env.concierge.listeners[0]!.whenIdle();

  test('nodemailer authenticates as alice@a.example / alice@b.example and each message reaches its tenant', async () => {
    for (const [user, pass, backend, source] of [
      ['alice@a.example', PASSWORD_A, env.a, '127.0.0.2'],
      ['alice@b.example', PASSWORD_B, env.b, '127.0.0.3'],
    ] as const) {
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: env.port, secure: false, ignoreTLS: true, auth: { user, pass } });
      const raw = `From: ${user}\r\nTo: bob@elsewhere.example\r\nSubject: out\r\n\r\nfrom ${user}\r\n`;
      await transport.sendMail({ envelope: { from: user, to: ['bob@elsewhere.example'] }, raw });
      transport.close();
      const m = backend.messages.at(-1)!;
      assert.deepEqual([m.session.remoteAddress, m.session.user, m.to, m.sha256], [source, 'alice', ['bob@elsewhere.example'], sha256(raw)]);
    }
    await idle();
  });

  test('AUTH LOGIN with prompts; then the session is spliced to the backend', async () => {
    const c = await RawClient.connect(env.port);
    assert.equal(await c.line(), '220 submit.concierge.test ESMTP');
    assert.match(await say(c, 'EHLO me.example'), /250 AUTH PLAIN LOGIN$/);
    assert.equal(await say(c, 'AUTH LOGIN'), '334 VXNlcm5hbWU6');
    assert.equal(await say(c, Buffer.from('alice@b.example').toString('base64')), '334 UGFzc3dvcmQ6');
    assert.match(await say(c, Buffer.from(PASSWORD_B).toString('base64')), /^235 /);
    assert.match(await say(c, 'MAIL FROM:<alice@b.example>'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.deepEqual(env.b.auths.at(-1), { user: 'alice', ok: true, remoteAddress: '127.0.0.3', secure: false });
    await idle();
  });

  test('mail before AUTH: 530 5.7.0; AUTH before EHLO: 503', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    assert.match(await say(c, `AUTH PLAIN ${plainResponse('alice@a.example', PASSWORD_A)}`), /^503 5\.5\.1/);
    assert.match(await say(c, 'EHLO me.example'), /^250/);
    assert.equal(await say(c, 'MAIL FROM:<alice@a.example>'), '530 5.7.0 Authentication required');
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    await idle();
  });

  test('a wrong password and an unknown domain get byte-identical replies', async () => {
    const c = await RawClient.connect(env.port);
    await c.line();
    await say(c, 'EHLO me.example');
    const wrong = await say(c, `AUTH PLAIN ${plainResponse('alice@a.example', 'nope')}`);
    const unknown = await say(c, `AUTH PLAIN ${plainResponse('alice@nowhere.example', 'nope')}`);
    assert.equal(wrong, '535 5.7.8 Authentication credentials invalid');
    assert.equal(unknown, wrong);
    c.close();
    await idle();
    assert.equal(env.a.auths.at(-1)!.ok, false);
  });

  test('every backend down: 454 4.7.0 and the client may try again', async () => {
    await env.b.close();
    const c = await RawClient.connect(env.port);
    await c.line();
    await say(c, 'EHLO me.example');
    assert.equal(await say(c, `AUTH PLAIN ${plainResponse('alice@b.example', PASSWORD_B)}`), '454 4.7.0 Temporary authentication failure');
    assert.match(await say(c, `AUTH PLAIN ${plainResponse('alice@a.example', PASSWORD_A)}`), /^235 /);
    c.close();
    await idle();
  });
});
