import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Spool, type QueuedMessage } from '../relay/spool.js';
import { Receiver } from './support/relay-receiver.js';
import { startRelay } from './support/relay-fixtures.js';

function record(id: string, queue: string, size: number): QueuedMessage {
  return { id, queue, from: 'web@a.example', recipients: [{ address: 'x@far.example', state: 'pending' }], receivedAt: Date.now(), size, eightBit: false, attempts: 0, nextAttemptAt: 0 };
}

test('a start after a crash: leftovers without a 250 are removed, damaged records are kept and logged, whole messages are delivered', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-spool-'));
  const far = new Receiver();
  await far.listen();
  const queue = path.join(dir, 'a.example');
  await mkdir(queue, { recursive: true });
  // What a crash can leave: a body whose record was never renamed into place, a half-written record.
  await writeFile(path.join(queue, 'AAAAAAAAAAAAA1.eml'), 'Subject: never answered\r\n\r\n');
  await writeFile(path.join(queue, 'AAAAAAAAAAAAA2.json.tmp'), '{"id":"AAAA');
  // Damage from outside: a record that is not JSON.
  await writeFile(path.join(queue, 'AAAAAAAAAAAAA3.json'), 'not json');
  // A whole message, as a 250 left it.
  const body = 'Received: from x\r\nMessage-ID: <whole@a.example>\r\n\r\nkept\r\n';
  await writeFile(path.join(queue, 'AAAAAAAAAAAAA4.eml'), body);
  await new Spool(dir).save(record('AAAAAAAAAAAAA4', 'a.example', body.length));
  const env = await startRelay({ 'far.example': `127.0.0.1:${far.port}` }, { spool: dir });
  try {
    // The delivery may be under way before startRelay returns: wait on the receiver, then on the attempt's end.
    await far.waitForMessages(1);
    await env.concierge.relay!.runner.whenIdle();
    assert.deepEqual(far.messages.map((m) => [m.messageId, m.remoteAddress]), [['<whole@a.example>', '127.0.0.2']]);
    assert.deepEqual((await readdir(queue)).sort(), ['AAAAAAAAAAAAA3.json']);
    assert.ok(env.logs.records().some((r) => r.message === 'relay: unreadable queue record left in place' && String(r.file).endsWith('AAAAAAAAAAAAA3.json')));
  } finally {
    await env.close();
    await far.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a record whose body has gone is retried after retryInitialMs, not in a loop', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-spool-'));
  await new Spool(dir).save(record('BBBBBBBBBBBBB1', 'a.example', 10));
  const env = await startRelay({ '*': '127.0.0.1:1' }, { spool: dir, relay: { retryInitialMs: 60_000 } });
  try {
    const runner = env.concierge.relay!.runner;
    // The attempt may have failed while startRelay was still opening the listener.
    if (!env.logs.records().some((r) => r.message === 'relay attempt failed')) await once(runner.events, 'attemptFailed');
    await runner.whenIdle();
    const failures = env.logs.records().filter((r) => r.message === 'relay attempt failed');
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.retryInMs, 60_000);
    assert.ok(runner.messages.get('BBBBBBBBBBBBB1')!.nextAttemptAt > Date.now() + 50_000);
  } finally {
    await env.close();
    await rm(dir, { recursive: true, force: true });
  }
});
