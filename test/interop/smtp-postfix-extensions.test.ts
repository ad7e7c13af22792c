// SMTPUTF8 (RFC 6531) and DSN (RFC 3461) through Concierge's mx listener to a real Postfix.
//
// The same private Postfix instance as smtp-postfix.test.ts (test/interop/postfix.ts; needs root),
// one tenant a.example from 127.0.0.2, and a raw-socket client (this swaks has no DSN or SMTPUTF8
// options). Postfix refuses a UTF-8 sender that is not declared with SMTPUTF8 and logs the sender
// of each queued message, so its acceptance and its `from=<jörg@…>` line show the parameter went
// through; a NOTIFY=SUCCESS recipient makes Postfix write a success notice after delivery, which
// it logs as "sender delivery status notification", so that line shows NOTIFY went through.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { createSilentLogger } from '../../src/log.js';
import { RawClient } from '../support/raw-client.js';
import { startPostfix, type Postfix } from './postfix.js';

const TEST_TIMEOUT = { timeout: 30_000 };

async function say(c: RawClient, line: string): Promise<string> {
  c.send(Buffer.from(`${line}\r\n`, 'utf8'));
  const lines: string[] = [];
  for (;;) {
    const text = await c.line();
    lines.push(text);
    if (!/^\d{3}-/.test(text)) return Buffer.from(lines.join('\n'), 'latin1').toString('utf8');
  }
}

describe('SMTP interop: SMTPUTF8 and DSN through Concierge (mx) to Postfix', () => {
  let postfix: Postfix;
  let concierge: Concierge;
  let port: number;

  before(async () => {
    postfix = await startPostfix({ hostname: 'postfix.concierge.test', mailboxes: ['alice@a.example'] });
    const config = parseConfig({
      limits: { connectTimeoutMs: 2_000, backendReplyTimeoutMs: 10_000, loginTimeoutMs: 20_000, idleTimeoutMs: 30_000 },
      listeners: [{ protocol: 'smtp', mode: 'mx', address: '127.0.0.1', port: 0, hostname: 'mx.concierge.test', smtputf8: true, dsn: true }],
      tenants: [{ domain: 'a.example', sourceAddress: '127.0.0.2', backends: { smtp: [{ host: postfix.host, port: postfix.port }] } }],
    });
    concierge = await startConcierge(config, { logger: createSilentLogger() });
    port = concierge.listeners[0]!.address().port;
  });
  after(async () => {
    await concierge?.close(0);
    await postfix?.stop();
  });

  test('a UTF-8 sender with SMTPUTF8, and NOTIFY=SUCCESS with ORCPT, RET and ENVID: Postfix takes and honours them', TEST_TIMEOUT, async () => {
    const c = await RawClient.connect(port);
    assert.match(await c.line(), /^220 mx\.concierge\.test ESMTP/);
    const ehlo = await say(c, 'EHLO sender.example.org');
    assert.match(ehlo, /SMTPUTF8/);
    assert.match(ehlo, /DSN/);
    assert.match(await say(c, 'MAIL FROM:<jörg@sender.example.org> SMTPUTF8 RET=HDRS ENVID=interop+2B1'), /^250/);
    assert.match(await say(c, 'RCPT TO:<alice@a.example> NOTIFY=SUCCESS ORCPT=rfc822;alice+40a.example'), /^250 /);
    assert.match(await say(c, 'DATA'), /^354/);
    assert.match(await say(c, 'From: jörg@sender.example.org\r\nSubject: Grüße\r\n\r\nÄpfel und Birnen\r\n.'), /^250 2\.0\.0 Ok: queued as /);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    await postfix.waitForLog(/postfix\/virtual\[\d+\]: .* status=sent/, 1);
    await postfix.waitForLog(/sender delivery status notification/, 1);
    const log = await postfix.log();
    assert.match(log, /from=<jörg@sender\.example\.org>/);
    assert.match(log, /connect from unknown\[127\.0\.0\.2\]/);
    const [delivered] = await postfix.deliveredMessages('alice@a.example');
    assert.match(delivered?.toString('utf8') ?? '', /Äpfel und Birnen/);
  });

  test('clean-up: Concierge idle, no Postfix process left', TEST_TIMEOUT, async () => {
    await concierge.listeners[0]!.whenIdle();
    await concierge.close(0);
    await postfix.stop();
    assert.deepEqual(postfix.processes(), []);
  });
});
