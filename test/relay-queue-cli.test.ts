import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from './support/child-concierge.js';
import { sampleValue } from './support/prometheus.js';
import { Receiver } from './support/relay-receiver.js';
import { messageId, nextDeferred, nextDeleted, nextFinished, type RelayEnv, startRelay, submit } from './support/relay-fixtures.js';

describe('concierge queue list | show | delete | flush, and the relay metrics', () => {
  const later = new Receiver();
  let env: RelayEnv;
  let file: string;
  const ids: string[] = [];
  const queued: string[] = [];
  let receiverPort = 0;

  before(async () => {
    // far.example's server is not up yet: messages wait (an hour apart) until flushed.
    const probe = new Receiver();
    receiverPort = await probe.listen();
    await probe.close();
    env = await startRelay({ 'far.example': `127.0.0.1:${receiverPort}` }, { relay: { retryInitialMs: 3_600_000, retryMaxMs: 3_600_000 } });
    file = path.join(env.spool, 'relay.json');
    await writeFile(file, JSON.stringify(env.config));
    for (const [from, localAddress] of [['web@a.example', '127.0.0.12'], ['shop@a.example', '127.0.0.12'], ['web@b.example', '127.0.0.13']] as const) {
      const id = messageId('cli');
      ids.push(id);
      const deferred = nextDeferred(env);
      const response = await submit(env.port, { localAddress, from, to: ['x@far.example'], id });
      queued.push(/queued as (\S+)/.exec(response)![1]!);
      await deferred;
    }
  });
  after(async () => {
    await env.close();
    await later.close();
  });

  it('list shows every waiting message, or one tenant\'s', async () => {
    const all = await runCli(['queue', 'list', '--config', file]);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /3 message\(s\) queued\n$/);
    for (const id of queued) assert.ok(all.stdout.includes(id));
    assert.match(all.stdout, new RegExp(`${queued[0]}  a\\.example  \\d+ B  \\d+s old  1 attempt\\(s\\), next in \\d+m  <web@a\\.example> -> x@far\\.example  \\(127\\.0\\.0\\.1:\\d+: connect to .* ECONNREFUSED\\)`));
    const b = await runCli(['queue', 'list', '--tenant', 'b.example', '--config', file]);
    assert.deepEqual(b.stdout.trim().split('\n').map((l) => l.split('  ')[0]), [queued[2], '1 message(s) queued for b.example']);
  });

  it('the metrics count each tenant\'s queue and its age', async () => {
    const text = await env.concierge.metrics.text();
    assert.equal(sampleValue(text, 'concierge_relay_queued_messages', { tenant: 'a.example' }), 2);
    assert.equal(sampleValue(text, 'concierge_relay_queued_messages', { tenant: 'b.example' }), 1);
    assert.equal(sampleValue(text, 'concierge_relay_accepted_total', { tenant: 'a.example' }), 2);
    assert.equal(sampleValue(text, 'concierge_relay_deferred_total', { tenant: 'b.example' }), 1);
    assert.ok(sampleValue(text, 'concierge_relay_oldest_message_age_seconds', { tenant: 'a.example' })! > 0);
  });

  it('show prints the envelope, each recipient\'s state and the headers; an unknown id exits 1', async () => {
    const shown = await runCli(['queue', 'show', queued[1]!, '--config', file]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^id: +\S+\ntenant: +a\.example\nfrom: +<shop@a\.example>/);
    assert.match(shown.stdout, /\n  <x@far\.example> pending 4\.4\.1: /);
    assert.ok(shown.stdout.includes(`Message-ID: ${ids[1]}\n`));
    const missing = await runCli(['queue', 'show', 'NOSUCHMESSAGE0', '--config', file]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no queued message NOSUCHMESSAGE0/);
  });

  it('delete removes a message from the running relay without a bounce', async () => {
    const deleted = nextDeleted(env);
    const out = await runCli(['queue', 'delete', queued[1]!, '--config', file]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal((await deleted).id, queued[1]);
    const list = await runCli(['queue', 'list', '--config', file]);
    assert.ok(!list.stdout.includes(queued[1]!));
    assert.match(list.stdout, /2 message\(s\) queued\n$/);
  });

  it('flush --tenant b.example delivers b\'s message now and leaves a\'s waiting', async () => {
    await later.listen(receiverPort);
    const finished = nextFinished(env);
    const out = await runCli(['queue', 'flush', '--tenant', 'b.example', '--config', file]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal((await finished).id, queued[2]);
    assert.deepEqual(later.messages.map((m) => [m.messageId, m.remoteAddress, m.helo]), [[ids[2], '127.0.0.3', 'out.b.example']]);
    assert.equal(env.concierge.relay!.runner.messages.size, 1);
    const text = await env.concierge.metrics.text();
    assert.equal(sampleValue(text, 'concierge_relay_delivered_total', { tenant: 'b.example' }), 1);
    assert.equal(sampleValue(text, 'concierge_relay_queued_messages', { tenant: 'b.example' }), undefined);
  });
});
