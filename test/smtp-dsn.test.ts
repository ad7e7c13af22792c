import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawClient } from './support/raw-client.js';
import { startSmtpTenants, type SmtpEnv } from './support/smtp-fixtures.js';
import { greeted, say } from './support/smtp-dialog.js';

async function send(c: RawClient, mail: string, rcpts: string[]): Promise<void> {
  assert.match(await say(c, mail), /^250/);
  for (const rcpt of rcpts) assert.match(await say(c, rcpt), /^250/, rcpt);
  assert.match(await say(c, 'DATA'), /^354/);
  assert.match(await say(c, 'Subject: dsn\r\n\r\nbody\r\n.'), /^250/);
}

describe('SMTP mx with dsn: true (RFC 3461)', () => {
  let env: SmtpEnv;
  before(async () => {
    // a's smtp-server offers DSN; b's does not.
    env = await startSmtpTenants({ listener: { dsn: true }, backendA: { dsn: true } });
  });
  after(() => env.close());

  test('DSN is offered; RET, ENVID, NOTIFY and ORCPT reach a backend that offers DSN', async () => {
    const { c, ehlo } = await greeted(env.port);
    assert.equal(ehlo, '250-mx.concierge.test\n250-PIPELINING\n250-SIZE 33554432\n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n250 DSN');
    await send(c, 'MAIL FROM:<s@example.org> RET=HDRS ENVID=QQ314159+2Bx', ['RCPT TO:<alice@a.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40a.example', 'RCPT TO:<bob@a.example> NOTIFY=NEVER']);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    const m = env.a.messages.at(-1)!;
    assert.deepEqual(m.to, ['alice@a.example', 'bob@a.example']);
    // smtp-server hands over xtext decoded: "+2B" is "+", "+40" is "@".
    assert.deepEqual(m.dsn, {
      ret: 'HDRS',
      envid: 'QQ314159+x',
      rcpt: [
        { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;alice@a.example' },
        { notify: ['NEVER'], orcpt: undefined },
      ],
    });
  });

  test('a backend without DSN gets the mail without the parameters, and the drop is logged', async () => {
    const { c } = await greeted(env.port);
    await send(c, 'MAIL FROM:<s@example.org> RET=FULL', ['RCPT TO:<alice@b.example> NOTIFY=DELAY']);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    const m = env.b.messages.at(-1)!;
    assert.deepEqual([m.to, m.dsn], [['alice@b.example'], undefined]);
    assert.ok(env.logs.records().some((r) => r.message === 'DSN parameters dropped: the backend does not offer DSN' && r.tenant === 'b.example'));
  });

  test('malformed DSN parameters get 501, parameters of no extension 555; no backend hears them', async () => {
    const before_ = env.a.messages.length;
    const { c } = await greeted(env.port);
    const syntax = '501 5.5.4 Syntax error in parameters or arguments';
    assert.equal(await say(c, 'MAIL FROM:<s@example.org> RET=ALL'), syntax);
    assert.equal(await say(c, `MAIL FROM:<s@example.org> ENVID=${'x'.repeat(101)}`), syntax);
    assert.equal(await say(c, 'MAIL FROM:<s@example.org> ENVID=a+zz'), syntax, 'hex of xtext is two upper-case digits');
    assert.equal(await say(c, 'MAIL FROM:<s@example.org> NOTIFY=SUCCESS'), '555 5.5.4 Unsupported MAIL or RCPT parameter', 'NOTIFY belongs to RCPT');
    assert.match(await say(c, 'MAIL FROM:<s@example.org> ENVID=ok'), /^250/);
    assert.equal(await say(c, 'RCPT TO:<alice@a.example> NOTIFY=NEVER,SUCCESS'), syntax);
    assert.equal(await say(c, 'RCPT TO:<alice@a.example> NOTIFY=SOMETIMES'), syntax);
    assert.equal(await say(c, 'RCPT TO:<alice@a.example> ORCPT=alice@a.example'), syntax, 'no addr-type');
    // The command line may be 500 octets longer than RFC 5321's 512 for these (RFC 3461 §4), the ORCPT itself at most 500.
    assert.equal(await say(c, `RCPT TO:<alice@a.example> ORCPT=rfc822;${'a'.repeat(494)}`), syntax, '501 octets');
    assert.match(await say(c, `RCPT TO:<alice@a.example> NOTIFY=FAILURE ORCPT=rfc822;${'a'.repeat(493)}`), /^250/, '500 octets');
    assert.equal(await say(c, 'RCPT TO:<alice@a.example> RET=FULL'), '555 5.5.4 Unsupported MAIL or RCPT parameter', 'RET belongs to MAIL');
    assert.match(await say(c, 'RSET'), /^250/);
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
    assert.equal(env.a.messages.length, before_);
  });
});

describe('SMTP mx without dsn', () => {
  let env: SmtpEnv;
  before(async () => {
    env = await startSmtpTenants({ backendA: { dsn: true } });
  });
  after(() => env.close());

  test('DSN is not offered and its parameters are refused, even though the backend offers DSN', async () => {
    const { c, ehlo } = await greeted(env.port);
    assert.doesNotMatch(ehlo, /DSN/);
    assert.equal(await say(c, 'MAIL FROM:<s@example.org> RET=FULL'), '555 5.5.4 Unsupported MAIL or RCPT parameter');
    assert.match(await say(c, 'MAIL FROM:<s@example.org>'), /^250/);
    assert.equal(await say(c, 'RCPT TO:<alice@a.example> NOTIFY=NEVER'), '555 5.5.4 Unsupported MAIL or RCPT parameter');
    assert.match(await say(c, 'QUIT'), /^221/);
    await c.closed;
  });
});
