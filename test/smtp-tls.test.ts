import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { TestCa } from './support/certificates.js';
import { RawClient } from './support/raw-client.js';
import { SmtpBackend, sha256 } from './support/smtp-backend.js';
import { PASSWORD_A, PASSWORD_B, startSmtpTenants, type SmtpEnv } from './support/smtp-fixtures.js';
import { plainResponse, say, smtpReply } from './support/smtp-dialog.js';

const run = promisify(execFile);

describe('SMTP over TLS: STARTTLS and implicit TLS on both sides', () => {
  let ca: TestCa;
  let env: SmtpEnv;
  let implicitBackend: SmtpBackend;
  let submissionPort: number;
  let smtpsPort: number;
  let mxPort: number;
  const tlsOptions = () => ({ ca: ca.pem, servername: 'mail.host.example' });

  before(async () => {
    ca = await TestCa.create();
    const host = await ca.issue(['mail.host.example', '127.0.0.1']);
    const backendA = await ca.issue(['smtp.a.example']);
    const backendC = await ca.issue(['smtp.c.example']);
    implicitBackend = new SmtpBackend({ users: { carol: 'pw-of-carol' }, tls: { mode: 'implicit', cert: backendC.cert, key: backendC.key } });
    await implicitBackend.listen();
    const certificate = { cert: host.cert, key: host.key };
    env = await startSmtpTenants({
      backendA: { tls: { mode: 'starttls', cert: backendA.cert, key: backendA.key } },
      optionsA: { tls: 'starttls', ca: ca.certFile, servername: 'smtp.a.example' },
      listener: { mode: 'submission', hostname: 'submit.concierge.test', tls: 'starttls', requireTls: true, certificate },
      tenantPatch: (tenants) => {
        tenants.push(
          { domain: 'c.example', sourceAddress: '127.0.0.4', backends: { smtp: [{ host: '127.0.0.1', port: implicitBackend.port, tls: 'implicit', ca: ca.certFile, servername: 'smtp.c.example' }] } },
          // Tenant a's backend again, but expecting a name its certificate does not carry.
          { domain: 'w.example', sourceAddress: '127.0.0.5', backends: { smtp: [{ host: '127.0.0.1', port: backendPortOfA(tenants), tls: 'starttls', ca: ca.certFile, servername: 'wrong.example' }] } },
        );
      },
      extraListeners: [
        { protocol: 'smtp', address: '127.0.0.1', port: 0, mode: 'submission', hostname: 'submit.concierge.test', tls: 'implicit', certificate },
        { protocol: 'smtp', address: '127.0.0.1', port: 0, mode: 'mx', hostname: 'mx.concierge.test', tls: 'starttls', certificate },
      ],
    });
    [submissionPort, smtpsPort, mxPort] = env.concierge.listeners.map((l) => l.address().port) as [number, number, number];
  });
  after(async () => {
    await env.close();
    await implicitBackend.close();
    await ca.remove();
  });

  test('nodemailer with requireTLS submits through STARTTLS; the backend gets it over STARTTLS from the tenant’s address', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: submissionPort, secure: false, requireTLS: true, tls: tlsOptions(), auth: { user: 'alice@a.example', pass: PASSWORD_A } });
    const raw = 'From: alice@a.example\r\nTo: bob@elsewhere.example\r\nSubject: tls\r\n\r\nover tls\r\n';
    await transport.sendMail({ envelope: { from: 'alice@a.example', to: ['bob@elsewhere.example'] }, raw });
    transport.close();
    const m = env.a.messages.at(-1)!;
    assert.deepEqual([m.session.remoteAddress, m.session.user, m.session.secure, m.sha256], ['127.0.0.2', 'alice', true, sha256(raw)]);
  });

  test('a plaintext backend stays plaintext behind a TLS client', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: submissionPort, secure: false, requireTLS: true, tls: tlsOptions(), auth: { user: 'alice@b.example', pass: PASSWORD_B } });
    await transport.sendMail({ envelope: { from: 'alice@b.example', to: ['bob@elsewhere.example'] }, raw: 'Subject: b\r\n\r\nb\r\n' });
    transport.close();
    assert.deepEqual([env.b.messages.at(-1)!.session.remoteAddress, env.b.messages.at(-1)!.session.secure], ['127.0.0.3', false]);
  });

  test('requireTls: EHLO offers STARTTLS and no AUTH; AUTH before STARTTLS gets 530 5.7.0; after it, AUTH is offered', async () => {
    const c = await RawClient.connect(submissionPort);
    await c.line();
    const before = await say(c, 'EHLO me.example');
    assert.match(before, /^250[- ]STARTTLS$/m);
    assert.doesNotMatch(before, /AUTH/);
    assert.equal(await say(c, `AUTH PLAIN ${plainResponse('alice@a.example', PASSWORD_A)}`), '530 5.7.0 Must issue a STARTTLS command first');
    assert.equal(await say(c, 'STARTTLS'), '220 2.0.0 Ready to start TLS');
    const t = await c.startTls(tlsOptions());
    const after = await say(t, 'EHLO me.example');
    assert.match(after, /250 AUTH PLAIN LOGIN$/);
    assert.doesNotMatch(after, /STARTTLS/);
    assert.equal(await say(t, 'STARTTLS'), '503 5.5.1 TLS already active');
    assert.match(await say(t, `AUTH PLAIN ${plainResponse('alice@a.example', PASSWORD_A)}`), /^235/);
    t.close();
  });

  test('commands pipelined after STARTTLS are dropped, and the plaintext EHLO is forgotten', async () => {
    const auths = env.a.auths.length;
    const c = await RawClient.connect(submissionPort);
    await c.line();
    await say(c, 'EHLO me.example');
    c.send(`STARTTLS\r\nAUTH PLAIN ${plainResponse('alice@a.example', PASSWORD_A)}\r\n`);
    assert.equal(await smtpReply(c), '220 2.0.0 Ready to start TLS');
    const t = await c.startTls(tlsOptions());
    assert.equal(await say(t, 'NOOP'), '250 2.0.0 OK', 'the first reply inside TLS answers a command sent inside TLS');
    assert.equal(await say(t, `AUTH PLAIN ${plainResponse('alice@a.example', PASSWORD_A)}`), '503 5.5.1 Send EHLO or HELO first');
    t.close();
    await env.concierge.listeners[0]!.whenIdle();
    assert.equal(env.a.auths.length, auths, 'the injected AUTH never reached the backend');
  });

  test('implicit TLS (SMTPS): curl smtps:// submits, and an implicit-TLS backend is verified and used', async () => {
    const raw = 'From: carol@c.example\r\nSubject: smtps\r\n\r\nimplicit\r\n';
    const curl = run('curl', ['-sS', '--max-time', '10', '--cacert', ca.certFile, '-u', 'carol@c.example:pw-of-carol', '--mail-from', 'carol@c.example', '--mail-rcpt', 'bob@elsewhere.example', '-T', '-', `smtps://127.0.0.1:${smtpsPort}`], { encoding: 'utf8' });
    curl.child.stdin!.end(raw);
    await curl;
    const m = implicitBackend.messages.at(-1)!;
    assert.deepEqual([m.session.remoteAddress, m.session.user, m.session.secure, m.sha256], ['127.0.0.4', 'carol', true, sha256(raw)]);
  });

  test('mx with opportunistic STARTTLS: nodemailer upgrades and the message reaches the recipient’s tenant', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: mxPort, secure: false, requireTLS: true, tls: tlsOptions(), name: 'sender.example' });
    await transport.sendMail({ envelope: { from: 'x@sender.example', to: ['alice@b.example'] }, raw: 'Subject: inbound\r\n\r\nhi\r\n' });
    transport.close();
    assert.deepEqual(env.b.messages.at(-1)!.to, ['alice@b.example']);
  });

  test('mx keeps TLS backend connections between sessions: STARTTLS and implicit ones are reused, still encrypted', async () => {
    const before = { a: env.a.connections.length, c: implicitBackend.connections.length };
    const sent = { a: env.a.messages.length, c: implicitBackend.messages.length };
    for (const to of ['alice@a.example', 'carol@c.example', 'alice@a.example', 'carol@c.example']) {
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: mxPort, secure: false, requireTLS: true, tls: tlsOptions(), name: 'sender.example' });
      await transport.sendMail({ envelope: { from: 'x@sender.example', to: [to] }, raw: `Subject: pooled\r\n\r\nto ${to}\r\n` });
      transport.close();
    }
    await env.a.waitForMessages(sent.a + 2);
    await implicitBackend.waitForMessages(sent.c + 2);
    assert.deepEqual([env.a.connections.length - before.a, implicitBackend.connections.length - before.c], [1, 1]);
    const last = [...env.a.messages.slice(sent.a), ...implicitBackend.messages.slice(sent.c)];
    assert.ok(last.every((m) => m.session.secure), 'every message came over TLS');
    assert.deepEqual(new Set(last.map((m) => m.session.remoteAddress)), new Set(['127.0.0.2', '127.0.0.4']));
  });

  test('a backend whose certificate does not carry the configured name is not used: 454, logged as BACKEND_TLS', async () => {
    const c = await RawClient.connectTls(smtpsPort, tlsOptions());
    await c.line();
    await say(c, 'EHLO me.example');
    assert.match(await say(c, `AUTH PLAIN ${plainResponse('alice@w.example', PASSWORD_A)}`), /^454 4\.7\.0/);
    c.close();
    assert.ok(env.logs.records().some((r) => r.message === 'backend failed' && r.code === 'BACKEND_TLS' && /wrong\.example/.test(String(r.error))));
  });
});

/** Tenant a's backend port, read from the tenant list being patched. */
function backendPortOfA(tenants: Record<string, any>[]): number {
  return tenants[0]!.backends.smtp.at(-1).port as number;
}
