import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../src/config.js';
import { RawClient } from './support/raw-client.js';
import { Receiver } from './support/relay-receiver.js';
import { finishedCount, messageId, nextDeferred, nextFinished, type RelayEnv, startRelay, submit } from './support/relay-fixtures.js';

const at = (r: Receiver) => `127.0.0.1:${r.port}`;

async function queueFiles(env: RelayEnv, queue: string): Promise<string[]> {
  return (await readdir(path.join(env.spool, queue)).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
}

describe('relay delivery: each tenant leaves from its own address with its own name', () => {
  const far = new Receiver();
  let env: RelayEnv;
  before(async () => {
    await far.listen();
    env = await startRelay({ 'far.example': at(far) });
  });
  after(async () => {
    await env.close();
    await far.close();
  });

  it('a.example from 127.0.0.2 as a.example, b.example from 127.0.0.3 as out.b.example, the host from 127.0.0.1 as its own name', async () => {
    const ids = { a: messageId('a'), b: messageId('b'), host: messageId('host') };
    const done = [nextFinished(env, (m) => m.queue === 'a.example'), nextFinished(env, (m) => m.queue === 'b.example'), nextFinished(env, (m) => m.queue === '_host')];
    await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@far.example'], id: ids.a });
    await submit(env.port, { localAddress: '127.0.0.13', from: 'web@b.example', to: ['y@far.example'], id: ids.b });
    await submit(env.port, { localAddress: '127.0.0.1', from: 'root@host.concierge.test', to: ['z@far.example'], id: ids.host });
    await Promise.all(done);
    const seen = (id: string) => far.messages.find((m) => m.messageId === id)!;
    assert.deepEqual({ ip: seen(ids.a).remoteAddress, helo: seen(ids.a).helo, from: seen(ids.a).from, to: seen(ids.a).to }, { ip: '127.0.0.2', helo: 'a.example', from: 'web@a.example', to: ['x@far.example'] });
    assert.deepEqual({ ip: seen(ids.b).remoteAddress, helo: seen(ids.b).helo }, { ip: '127.0.0.3', helo: 'out.b.example' });
    assert.deepEqual({ ip: seen(ids.host).remoteAddress, helo: seen(ids.host).helo }, { ip: '127.0.0.1', helo: 'host.concierge.test' });
    assert.match(seen(ids.a).body, /^Received: from client\.test \(\[127\.0\.0\.12\]\)/);
    assert.deepEqual(await queueFiles(env, 'a.example'), [], 'the delivered message left the queue');
  });

  it('a body with lines starting with dots arrives byte for byte', async () => {
    const id = messageId('dots');
    const done = nextFinished(env);
    await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@far.example'], id, text: '.leading dot\r\n..two dots\r\n.\r\nend' });
    await done;
    const body = far.messages.find((m) => m.messageId === id)!.body;
    assert.ok(body.endsWith('\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n'), JSON.stringify(body.slice(-60)));
  });
});

describe('relay delivery: retries, bounces, reuse', () => {
  let first451 = true;
  const greylist = new Receiver({ onData: () => (first451 ? ((first451 = false), 451) : 250) });
  const refuses = new Receiver({ onRcpt: (a) => (a.startsWith('nobody@') ? 550 : undefined) });
  const senders = new Receiver();
  const busy = new Receiver();
  let env: RelayEnv;
  before(async () => {
    for (const r of [greylist, refuses, senders, busy]) await r.listen();
    env = await startRelay({ 'grey.example': at(greylist), 'refuses.example': at(refuses), 'a.example': at(senders), 'busy.example': at(busy) }, { relay: { maxConnectionsPerDestination: 1 } });
  });
  after(async () => {
    await env.close();
    for (const r of [greylist, refuses, senders, busy]) await r.close();
  });

  it('451 then 250: deferred once, then delivered exactly once', async () => {
    const id = messageId('grey');
    const deferred = nextDeferred(env);
    const finished = nextFinished(env);
    await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@grey.example'], id });
    const d = await deferred;
    assert.equal(d.attempts, 1);
    assert.match(d.recipients[0]!.diagnostic ?? '', /^451 /);
    await finished;
    assert.deepEqual(greylist.dataReplies, [451, 250]);
    assert.deepEqual(greylist.messages.map((m) => m.messageId), [id]);
  });

  it('550 for one recipient: the other is delivered, one DSN goes to the sender from the null sender', async () => {
    const id = messageId('bounce');
    const original = nextFinished(env, (m) => m.from === 'web@a.example');
    const dsn = nextFinished(env, (m) => m.from === '');
    await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['nobody@refuses.example', 'somebody@refuses.example'], id });
    const m = await original;
    assert.deepEqual(m.recipients.map((r) => [r.address, r.state, r.status]), [
      ['nobody@refuses.example', 'failed', '5.0.0'],
      ['somebody@refuses.example', 'delivered', '2.0.0'],
    ]);
    await dsn;
    assert.equal(senders.messages.length, 1);
    const report = senders.messages[0]!;
    assert.deepEqual({ from: report.from, to: report.to, ip: report.remoteAddress, helo: report.helo }, { from: '', to: ['web@a.example'], ip: '127.0.0.2', helo: 'a.example' });
    assert.match(report.body, /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(report.body, /Final-Recipient: rfc822; nobody@refuses\.example\r\nAction: failed\r\nStatus: 5\.0\.0/);
    assert.match(report.body, /Diagnostic-Code: smtp; 550 No such user here/);
    assert.ok(report.body.includes(`Message-ID: ${id}`), 'the original headers are returned');
    assert.ok(!report.body.includes('somebody@refuses.example>: '), 'the delivered recipient is not reported');
  });

  it('a refused message from the null sender bounces to nobody', async () => {
    const finished = nextFinished(env);
    const client = await RawClient.connect(env.port, { localAddress: '127.0.0.12' });
    await client.line();
    assert.equal(await client.command('HELO web.a.example'), '250 relay.concierge.test');
    assert.equal(await client.command('MAIL FROM:<>'), '250 2.1.0 Sender OK');
    assert.equal(await client.command('RCPT TO:<nobody@refuses.example>'), '250 2.1.5 Recipient OK');
    assert.equal(await client.command('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    assert.match(await client.command('Subject: a bounce\r\n\r\nreport\r\n.'), /^250 2\.0\.0 Ok: queued as /);
    client.send('QUIT\r\n');
    const m = await finished;
    await env.concierge.relay!.runner.whenIdle();
    assert.equal(m.recipients[0]!.state, 'failed');
    assert.equal(senders.messages.length, 1, 'still only the earlier DSN');
    assert.ok(env.logs.records().some((r) => r.message === 'relay: no DSN for a message from the null sender' && r.id === m.id));
    await client.closed;
  });

  it('with maxConnectionsPerDestination 1, three messages share one connection', async () => {
    const all = finishedCount(env, 3, (m) => m.recipients[0]!.address.endsWith('@busy.example'));
    for (const i of [1, 2, 3]) await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: [`u${i}@busy.example`] });
    await all;
    assert.equal(busy.messages.length, 3);
    assert.equal(busy.sessions, 1);
  });
});

describe('relay delivery: a receiver that is down, then up', () => {
  it('is retried until it answers, and gets the message once', async () => {
    const probe = new Receiver();
    const port = await probe.listen();
    await probe.close();
    const env = await startRelay({ 'late.example': `127.0.0.1:${port}` });
    const late = new Receiver();
    try {
      const id = messageId('late');
      const deferred = nextDeferred(env);
      await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@late.example'], id });
      const d = await deferred;
      assert.match(d.recipients[0]!.diagnostic ?? '', /ECONNREFUSED/);
      const finished = nextFinished(env);
      await late.listen(port);
      await finished;
      assert.deepEqual(late.messages.map((m) => [m.messageId, m.remoteAddress]), [[id, '127.0.0.2']]);
    } finally {
      await env.close();
      await late.close();
    }
  });
});

describe('relay delivery: the source address is enforced', () => {
  it('a tenant address the host does not have defers the message; nothing leaves from another address', async () => {
    const far = new Receiver();
    await far.listen();
    const env = await startRelay({ 'far.example': at(far) }, { tenantA: { sourceAddress: '192.0.2.55' } });
    try {
      const deferred = nextDeferred(env);
      await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@far.example'] });
      const d = await deferred;
      assert.equal(d.recipients[0]!.state, 'pending');
      assert.match(d.recipients[0]!.diagnostic ?? '', /from 192\.0\.2\.55 failed: EADDRNOTAVAIL/);
      assert.equal(far.sessions, 0);
      assert.equal((await queueFiles(env, 'a.example')).length, 2, 'record and body stay queued');
    } finally {
      await env.close();
      await far.close();
    }
  });
});

describe('relay delivery: a tenant without a sourceAddress', () => {
  it('has its mail deferred with the reason, never sent from the host\'s address', async () => {
    const far = new Receiver();
    await far.listen();
    const env = await startRelay({ 'far.example': at(far) }, { tenantA: { sourceAddress: undefined } });
    try {
      const deferred = nextDeferred(env);
      await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@far.example'] });
      const d = await deferred;
      assert.deepEqual([d.recipients[0]!.status, d.recipients[0]!.diagnostic], ['4.3.5', 'tenant a.example has no sourceAddress to send from']);
      assert.equal(far.sessions, 0);
    } finally {
      await env.close();
      await far.close();
    }
  });
});

describe('relay delivery: maxQueueLifetimeMs', () => {
  it('a message still refused with 4xx when it is too old bounces with a 4.x status', async () => {
    const always451 = new Receiver({ onData: () => 451 });
    const senders = new Receiver();
    await always451.listen();
    await senders.listen();
    const env = await startRelay({ 'slow.example': at(always451), 'a.example': at(senders) }, { relay: { maxQueueLifetimeMs: 250 } });
    try {
      const dsn = nextFinished(env, (m) => m.from === '');
      await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@slow.example'] });
      await dsn;
      assert.ok(always451.dataReplies.length >= 2, `tried ${always451.dataReplies.length} times`);
      assert.equal(senders.messages.length, 1);
      assert.match(senders.messages[0]!.body, /Action: failed\r\nStatus: 4\.0\.0/);
      assert.match(senders.messages[0]!.body, /gave up after \d+ attempt/);
    } finally {
      await env.close();
      await always451.close();
      await senders.close();
    }
  });
});

describe('relay intake: a long session of an identified client', () => {
  it('is not cut by loginTimeoutMs once the sender is known (only the idle timer applies)', async () => {
    let first = true;
    const grey = new Receiver({ onData: () => (first ? ((first = false), 451) : 250) });
    await grey.listen();
    // The retry comes 700 ms after the first attempt, well past the 500 ms login timeout.
    const env = await startRelay({ 'grey.example': at(grey) }, { limits: { loginTimeoutMs: 500, connectTimeoutMs: 200, backendReplyTimeoutMs: 300 }, relay: { retryInitialMs: 700 } });
    try {
      const client = await RawClient.connect(env.port, { localAddress: '127.0.0.12' });
      await client.line();
      assert.equal(await client.command('HELO web.a.example'), '250 relay.concierge.test');
      const send = async (tag: string) => {
        assert.equal(await client.command('MAIL FROM:<web@a.example>'), '250 2.1.0 Sender OK');
        assert.equal(await client.command('RCPT TO:<x@grey.example>'), '250 2.1.5 Recipient OK');
        assert.equal(await client.command('DATA'), '354 End data with <CR><LF>.<CR><LF>');
        assert.match(await client.command(`Subject: ${tag}\r\n\r\nbody\r\n.`), /^250 2\.0\.0 Ok: queued as /);
      };
      const finished = nextFinished(env);
      await send('first');
      const m = await finished; // deferred once, delivered on the retry: > 700 ms later
      assert.equal(m.attempts, 2);
      const second = nextFinished(env);
      await send('second');
      assert.equal(await client.command('QUIT'), '221 2.0.0 Bye');
      await second;
      assert.equal(grey.messages.length, 2);
      await client.closed;
    } finally {
      await env.close();
      await grey.close();
    }
  });
});

describe('relay: reloading the config', () => {
  it('new relayFrom and heloName apply to the next transaction; settings that need a restart are named', async () => {
    const far = new Receiver();
    await far.listen();
    const env = await startRelay({ 'far.example': at(far) });
    try {
      const next = structuredClone(env.config) as { relay: Record<string, unknown>; tenants: Array<Record<string, unknown>> };
      Object.assign(next.tenants[1]!, { relayFrom: ['127.0.0.14'], heloName: 'new.b.example' });
      next.relay.connectionIdleMs = 9_000;
      env.concierge.reloadTenants(parseConfig(next));
      assert.ok(env.logs.records().some((r) => r.message === 'reload: these relay settings apply after a restart' && JSON.stringify(r.ignored) === '["relay.connectionIdleMs"]'));
      await assert.rejects(submit(env.port, { localAddress: '127.0.0.13', from: 'web@elsewhere.example', to: ['x@far.example'] }), (err: Error & { response?: string }) => err.response?.startsWith('554 5.7.1') ?? false);
      const finished = nextFinished(env);
      await submit(env.port, { localAddress: '127.0.0.14', from: 'web@b.example', to: ['x@far.example'] });
      await finished;
      assert.deepEqual(far.messages.map((m) => [m.remoteAddress, m.helo]), [['127.0.0.3', 'new.b.example']]);
    } finally {
      await env.close();
      await far.close();
    }
  });
});

describe('relay: stopping while a receiver stalls', () => {
  it('close() cuts a connection still waiting for the greeting; the message stays queued', { timeout: 15_000 }, async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s.on('error', () => {})));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const connected = once(silent, 'connection');
    const env = await startRelay({ 'far.example': `127.0.0.1:${(silent.address() as net.AddressInfo).port}` }, { relay: { replyTimeoutMs: 600_000 } });
    try {
      await submit(env.port, { localAddress: '127.0.0.12', from: 'web@a.example', to: ['x@far.example'] });
      await connected;
      // Without the cut, close() would wait for the 10-minute reply timeout and the test's 15 s would run out.
      await env.concierge.close(0);
      const left = (await readdir(path.join(env.spool, 'a.example'))).filter((n) => n.endsWith('.json'));
      assert.equal(left.length, 1);
    } finally {
      await env.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
