// Concierge's SMTP mx listener in front of a real Postfix, with swaks as the real client.
//
// How: one private Postfix instance (test/interop/postfix.ts: `postfix -c <tmpdir> start` with its
// own main.cf/master.cf, queue, data, log and Maildirs in the temp dir, smtpd on 127.0.0.1:<free
// port>, virtual(8) delivery of alice@a.example and alice@b.example) is the SMTP backend of both
// tenants; a.example's backend connections come from 127.0.0.2, b.example's from 127.0.0.3, so
// Postfix's "connect from unknown[…]" lines tell the tenants apart. Concierge runs in-process on
// 127.0.0.1:0 and swaks talks to it as an MTA would (EHLO, MAIL, RCPT, DATA, QUIT).
// Postfix needs root (its master runs as root); missing postfix/swaks or no root fails here, never
// skips (.ci/install-interop.sh installs both). The delivered Maildir file is compared with what
// swaks sent: Postfix stores lines without terminators and delivers them with LF ends, after the
// trace headers it prepends, so the body after those headers must equal the message with CRLF→LF.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { createSilentLogger } from '../../src/log.js';
import { POSTFIX, POSTFIX_MISSING, POSTFIX_NEEDS_ROOT, PROBE_ADDRESS, startPostfix, type Postfix } from './postfix.js';

const TEST_TIMEOUT = { timeout: 30_000 };
// "postfix/smtpd[123]: connect from unknown[127.0.0.2]" (peer name lookups are off; a port may follow)
const CONNECT = /postfix\/smtpd\[\d+\]: connect from (\S+?\[[^\]]+\])/;

interface Swaks {
  code: number;
  output: string;
}

/** Runs swaks against Concierge; resolves with its exit code and its transcript (stdout + stderr). */
function swaks(port: number, args: string[]): Promise<Swaks> {
  return new Promise((resolve, reject) => {
    execFile(
      'swaks',
      ['--server', '127.0.0.1', '--port', String(port), '--helo', 'sender.example.org', '--from', 'carol@sender.example.org', '--timeout', '20', ...args],
      { timeout: 25_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        // execFile's error carries the exit status as a number in `code` (a string there: swaks did not run).
        const code: unknown = err === null ? 0 : (err as { code?: unknown }).code;
        if (typeof code !== 'number') return reject(new Error(`swaks did not run: ${err?.message}`));
        resolve({ code, output: stdout + stderr });
      },
    );
  });
}

/**
 * A message for `swaks --data FILE`: dot lines that must be (un)stuffed, 8-bit text, long lines. swaks
 * sends the file as it is, dot-stuffed, then CRLF . CRLF: so the file has no final CRLF and the
 * message as transmitted is the file plus CRLF (`sent`).
 */
function message(to: string, tag: string): Buffer {
  const lines = [
    'From: Carol <carol@sender.example.org>',
    `To: <${to}>`,
    `Subject: interop ${tag}`,
    `Message-ID: <${tag}@sender.example.org>`,
    'Date: Thu, 26 Nov 2026 12:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    `Hello ${to}, this is ${tag}.`,
    '.a line that starts with a dot',
    '..two dots',
    '.',
    'Grüße, naïve café: 8-bit text ✓',
    'x'.repeat(900),
    ...Array.from({ length: 200 }, (_, i) => `line ${i} ${'abcdefghij'.repeat(i % 9)}`),
    'the end',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

const sent = (file: Buffer) => Buffer.concat([file, Buffer.from('\r\n')]);
const lf = (b: Buffer) => Buffer.from(b.toString('latin1').replaceAll('\r\n', '\n'), 'latin1');

const SWAKS_MISSING = 'swaks is not installed: run `sudo .ci/install-interop.sh` before `npm run test:interop`';

test('postfix and swaks are installed, and the tests run as root (Postfix needs it)', () => {
  assert.doesNotThrow(() => accessSync(POSTFIX, constants.X_OK), POSTFIX_MISSING);
  assert.equal(spawnSync('swaks', ['--version']).status, 0, SWAKS_MISSING);
  assert.equal(userInfo().uid, 0, POSTFIX_NEEDS_ROOT);
});

describe('SMTP interop: Concierge (mx) in front of Postfix, swaks as the client', () => {
  let postfix: Postfix;
  let concierge: Concierge;
  let port: number;
  let work: string;
  const connects = async () =>
    (await postfix.log())
      .split('\n')
      .map((l) => CONNECT.exec(l)?.[1])
      .filter((c): c is string => c !== undefined && !c.includes(`[${PROBE_ADDRESS}]`));

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'concierge-swaks-'));
    postfix = await startPostfix({ hostname: 'postfix.concierge.test', mailboxes: ['alice@a.example', 'alice@b.example'] });
    const config = parseConfig({
      limits: { connectTimeoutMs: 2_000, backendReplyTimeoutMs: 10_000, loginTimeoutMs: 20_000, idleTimeoutMs: 30_000 },
      // Idle backend connections kept a minute, so the reuse test below does not depend on timing.
      listeners: [{ protocol: 'smtp', mode: 'mx', address: '127.0.0.1', port: 0, hostname: 'mx.concierge.test', backendPool: { idleTimeoutMs: 60_000 } }],
      tenants: [
        { domain: 'a.example', sourceAddress: '127.0.0.2', backends: { smtp: [{ host: postfix.host, port: postfix.port }] } },
        { domain: 'b.example', sourceAddress: '127.0.0.3', backends: { smtp: [{ host: postfix.host, port: postfix.port }] } },
      ],
    });
    concierge = await startConcierge(config, { logger: createSilentLogger() });
    port = concierge.listeners[0]!.address().port;
  });
  after(async () => {
    await concierge?.close(0);
    await postfix?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test('two tenants: Postfix sees 127.0.0.2 for a.example and 127.0.0.3 for b.example; each message delivered byte-identical', TEST_TIMEOUT, async () => {
    for (const [to, tag] of [
      ['alice@a.example', 'to-a'],
      ['alice@B.Example', 'to-b'],
    ] as const) {
      const file = join(work, `${tag}.eml`);
      await writeFile(file, message(to, tag));
      const r = await swaks(port, ['--to', to, '--data', file]);
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /<-\s+220 mx\.concierge\.test ESMTP/);
      assert.match(r.output, /<-\s+250 2\.0\.0 Ok: queued as /);
    }
    await postfix.waitForLog(/postfix\/virtual\[\d+\]: .* status=sent/, 2);
    assert.deepEqual(await connects(), ['unknown[127.0.0.2]', 'unknown[127.0.0.3]']);
    const [a] = await postfix.deliveredMessages('alice@a.example');
    const [b] = await postfix.deliveredMessages('alice@b.example');
    assert.ok(a !== undefined && b !== undefined, 'one message in each Maildir');
    assert.deepEqual(a, lf(sent(message('alice@a.example', 'to-a'))));
    assert.deepEqual(b, lf(sent(message('alice@B.Example', 'to-b'))));
  });

  test('recipients in two tenants: the second gets 451 4.5.3, the first tenant’s message is delivered', TEST_TIMEOUT, async () => {
    const file = join(work, 'split.eml');
    await writeFile(file, message('alice@a.example', 'split'));
    const r = await swaks(port, ['--to', 'alice@a.example,alice@b.example', '--data', file]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /<\*\*\s+451 4\.5\.3 /);
    await postfix.waitForLog(/postfix\/virtual\[\d+\]: .* status=sent/, 3);
    // b.example's recipient never reached Postfix: nothing came from 127.0.0.3 since. a.example's
    // transaction took the connection the first test left in the pool, or (past idleTimeoutMs) a new one.
    assert.ok((await connects()).slice(2).every((c) => c === 'unknown[127.0.0.2]'), (await connects()).join(', '));
    assert.equal((await postfix.deliveredMessages('alice@a.example')).length, 2);
    assert.equal((await postfix.deliveredMessages('alice@b.example')).length, 1);
  });

  test('a domain no tenant hosts: 550 5.7.1, swaks exits 24 (every RCPT refused), Postfix is not contacted', TEST_TIMEOUT, async () => {
    const before = (await connects()).length;
    const r = await swaks(port, ['--to', 'bob@unhosted.example', '--body', 'nobody hosts this']);
    assert.equal(r.code, 24, r.output);
    assert.match(r.output, /<\*\*\s+550 5\.7\.1 Relaying denied/);
    assert.equal((await connects()).length, before);
  });

  test('three sessions to b.example: Postfix takes them over the connection kept between sessions, from 127.0.0.3', TEST_TIMEOUT, async () => {
    const before = (await connects()).length;
    for (let i = 0; i < 3; i++) {
      const r = await swaks(port, ['--to', 'alice@b.example', '--body', `pooled ${i}`]);
      assert.equal(r.code, 0, r.output);
    }
    await postfix.waitForLog(/postfix\/virtual\[\d+\]: .* status=sent/, 6);
    // The first test left b.example's connection in the pool: no new connection at all.
    assert.deepEqual((await connects()).slice(before), []);
    assert.equal((await postfix.deliveredMessages('alice@b.example')).length, 4);
  });

  test('clean-up: Concierge idle, no Postfix process left', TEST_TIMEOUT, async () => {
    const listener = concierge.listeners[0]!;
    await listener.whenIdle();
    const running = postfix.processes();
    assert.ok(running.some((p) => /\bmaster\b/.test(p)), `Postfix's master was running: ${running.join('; ')}`);
    await concierge.close(0);
    await postfix.stop();
    assert.deepEqual(postfix.processes(), []);
  });
});
