// The relay against real software: swaks submits to Concierge's relay listener as a tenant's
// MTA would, and a private Postfix instance (test/interop/postfix.ts) is the receiving MX of
// far.example (and of a.example, for the bounce). Postfix's own Received: header on each delivered
// file names the EHLO and the address it saw: the tenant's, never the host's.
// Postfix needs root; missing postfix/swaks or no root fails here (smtp-postfix.test.ts names it).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { createSilentLogger } from '../../src/log.js';
import type { QueuedMessage } from '../../relay/spool.js';
import { startPostfix, type Postfix } from './postfix.js';

const TEST_TIMEOUT = { timeout: 60_000 };

function swaks(port: number, localInterface: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile('swaks', ['--server', '127.0.0.1', '--port', String(port), '--local-interface', localInterface, '--helo', 'web.tenant.internal', '--timeout', '20', ...args], { timeout: 25_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code: unknown = err === null ? 0 : (err as { code?: unknown }).code;
      if (typeof code !== 'number') return reject(new Error(`swaks did not run: ${err?.message}`));
      resolve({ code, output: stdout + stderr });
    });
  });
}

/** Raw files of a Maildir (trace headers included). */
async function maildir(postfix: Postfix, mailbox: string): Promise<string[]> {
  const [user, domain] = mailbox.split('@') as [string, string];
  const dir = join(postfix.dir, 'mail', domain, user, 'new');
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  return Promise.all(names.map((n) => readFile(join(dir, n), 'latin1')));
}

describe('relay interop: swaks submits, Postfix receives', () => {
  let postfix: Postfix;
  let concierge: Concierge;
  let port: number;
  let work: string;
  const finished = (n: number) =>
    new Promise<QueuedMessage[]>((resolve) => {
      const seen: QueuedMessage[] = [];
      const on = (m: QueuedMessage) => {
        seen.push(m);
        if (seen.length < n) return;
        concierge.relay!.runner.events.off('finished', on);
        resolve(seen);
      };
      concierge.relay!.runner.events.on('finished', on);
    });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'concierge-relay-interop-'));
    postfix = await startPostfix({ hostname: 'mx.far.example', mailboxes: ['bob@far.example', 'web@a.example'] });
    const mx = `127.0.0.1:${postfix.port}`;
    concierge = await startConcierge(
      parseConfig({
        listeners: [{ protocol: 'smtp', mode: 'relay', address: '127.0.0.1', port: 0, hostname: 'relay.concierge.test', identifyBy: ['address'] }],
        relay: { spool: join(work, 'spool'), transports: { 'far.example': mx, 'a.example': mx }, connectTimeoutMs: 2_000, replyTimeoutMs: 20_000, dataEndTimeoutMs: 20_000 },
        tenants: [
          { domain: 'a.example', sourceAddress: '127.0.0.2', relayFrom: ['127.0.0.12'] },
          { domain: 'b.example', sourceAddress: '127.0.0.3', relayFrom: ['127.0.0.13'], heloName: 'out.b.example' },
        ],
      }),
      { logger: createSilentLogger() },
    );
    port = concierge.listeners[0]!.address().port;
  });
  after(async () => {
    await concierge?.close(0);
    await postfix?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test('a.example and b.example reach Postfix from 127.0.0.2 / 127.0.0.3 with their EHLO names', TEST_TIMEOUT, async () => {
    const done = finished(2);
    for (const [tenant, from] of [['a', '127.0.0.12'], ['b', '127.0.0.13']] as const) {
      const file = join(work, `${tenant}.eml`);
      await writeFile(file, `From: web@${tenant}.example\r\nTo: bob@far.example\r\nSubject: relay interop ${tenant}\r\nMessage-ID: <interop-${tenant}@${tenant}.example>\r\n\r\n.dot line\r\nHello from ${tenant}.example`);
      const r = await swaks(port, from, ['--from', `web@${tenant}.example`, '--to', 'bob@far.example', '--data', file]);
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /<-\s+250 2\.0\.0 Ok: queued as /);
    }
    await done;
    // Postfix answered 250 once queued; its virtual(8) delivery into the Maildir follows.
    await postfix.waitForLog(/virtual\[\d+\]: .*to=<bob@far\.example>.*status=sent/, 2);
    const files = await maildir(postfix, 'bob@far.example');
    assert.equal(files.length, 2);
    const a = files.find((f) => f.includes('<interop-a@a.example>'))!;
    const b = files.find((f) => f.includes('<interop-b@b.example>'))!;
    assert.match(a, /^Received: from a\.example \(unknown \[127\.0\.0\.2\]\)/m);
    assert.match(b, /^Received: from out\.b\.example \(unknown \[127\.0\.0\.3\]\)/m);
    assert.match(a, /\n\.dot line\nHello from a\.example\n$/);
  });

  test('an address in no relayFrom is refused with 554 5.7.1', TEST_TIMEOUT, async () => {
    const r = await swaks(port, '127.0.0.99', ['--from', 'web@a.example', '--to', 'bob@far.example']);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /<\*\*\s+554 5\.7\.1 Relay access denied: sender not identified/);
  });

  test('Postfix refuses an unknown mailbox: one DSN goes back to the sender, from a.example\'s address', TEST_TIMEOUT, async () => {
    const done = finished(2);
    const r = await swaks(port, '127.0.0.12', ['--from', 'web@a.example', '--to', 'nobody@far.example']);
    assert.equal(r.code, 0, r.output);
    await done;
    await postfix.waitForLog(/virtual\[\d+\]: .*to=<web@a\.example>.*status=sent/, 1);
    const dsns = await maildir(postfix, 'web@a.example');
    assert.equal(dsns.length, 1);
    assert.match(dsns[0]!, /^Return-Path: <>/m);
    assert.match(dsns[0]!, /^Received: from a\.example \(unknown \[127\.0\.0\.2\]\)/m);
    assert.match(dsns[0]!, /Final-Recipient: rfc822; nobody@far\.example\nAction: failed\nStatus: 5\.1\.1/);
  });
});

describe('relay interop: a shared host\'s Postfix uses the relay as its relayhost (docs/relay.md)', () => {
  let receiver: Postfix;
  let sender: Postfix;
  let concierge: Concierge;
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'concierge-relayhost-'));
    receiver = await startPostfix({ hostname: 'mx.far.example', mailboxes: ['bob@far.example'] });
    concierge = await startConcierge(
      parseConfig({
        listeners: [{ protocol: 'smtp', mode: 'relay', address: '127.0.0.1', port: 0, hostname: 'relay.concierge.test', identifyBy: ['address'] }],
        relay: { spool: join(work, 'spool'), host: { heloName: 'host.concierge.test', sourceAddress: '127.0.0.1', relayFrom: ['127.0.0.1'] }, transports: { 'far.example': `127.0.0.1:${receiver.port}` } },
        tenants: [
          { domain: 'a.example', sourceAddress: '127.0.0.2', relayFrom: ['127.0.0.12'] },
          { domain: 'b.example', sourceAddress: '127.0.0.3', relayFrom: ['127.0.0.13'] },
        ],
      }),
      { logger: createSilentLogger() },
    );
    const relayPort = concierge.listeners[0]!.address().port;
    // The worked example of docs/relay.md: relayhost, one bound smtp transport per tenant by sender domain.
    sender = await startPostfix({
      hostname: 'web1.host.test',
      mailboxes: ['postmaster@web1.host.test'],
      mainCf: [`relayhost = [127.0.0.1]:${relayPort}`, 'sender_dependent_default_transport_maps = inline:{ @a.example=relay-a:, @b.example=relay-b: }'],
      masterCf: ['relay-a unix - - n - - smtp', '  -o smtp_bind_address=127.0.0.12', 'relay-b unix - - n - - smtp', '  -o smtp_bind_address=127.0.0.13'],
    });
  });
  after(async () => {
    await sender?.stop();
    await concierge?.close(0);
    await receiver?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test('mail of a.example, b.example and the host leaves Concierge from 127.0.0.2, 127.0.0.3 and 127.0.0.1', TEST_TIMEOUT, async () => {
    for (const from of ['web@a.example', 'web@b.example', 'root@web1.host.test']) {
      const r = await new Promise<{ code: number; output: string }>((resolve, reject) => {
        execFile('swaks', ['--server', '127.0.0.1', '--port', String(sender.port), '--from', from, '--to', 'bob@far.example', '--header', `Message-ID: <relayhost-${from}>`, '--timeout', '20'], { timeout: 25_000, encoding: 'utf8' }, (err, stdout, stderr) => {
          const code: unknown = err === null ? 0 : (err as { code?: unknown }).code;
          if (typeof code !== 'number') return reject(new Error(`swaks did not run: ${err?.message}`));
          resolve({ code, output: stdout + stderr });
        });
      });
      assert.equal(r.code, 0, r.output);
    }
    await receiver.waitForLog(/virtual\[\d+\]: .*to=<bob@far\.example>.*status=sent/, 3, 45_000);
    const files = await maildir(receiver, 'bob@far.example');
    const of = (from: string) => files.find((f) => f.includes(`<relayhost-${from}>`))!;
    assert.match(of('web@a.example'), /^Received: from a\.example \(unknown \[127\.0\.0\.2\]\)/m);
    assert.match(of('web@a.example'), /^Received: from web1\.host\.test \(\[127\.0\.0\.12\]\)\n\tby relay\.concierge\.test/m);
    assert.match(of('web@b.example'), /^Received: from b\.example \(unknown \[127\.0\.0\.3\]\)/m);
    assert.match(of('root@web1.host.test'), /^Received: from host\.concierge\.test \(unknown \[127\.0\.0\.1\]\)/m);
  });
});
