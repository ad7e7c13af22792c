import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { ChildConcierge } from './support/child-concierge.js';
import { messageId, relayConfig, submit } from './support/relay-fixtures.js';

/**
 * A receiver that answers 250 to the first `answered` messages, then holds every end-of-data reply
 * (the relay is mid-delivery) until released; held messages are not accepted (their sender died).
 */
class HoldingReceiver {
  readonly accepted: string[] = [];
  private held: Array<(err?: Error) => void> = [];
  private holding = true;
  private dataEnds = 0;
  private waiters: Array<() => void> = [];
  readonly server: SMTPServer;

  constructor(private readonly answered: number) {
    this.server = new SMTPServer({
      logger: false,
      disableReverseLookup: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      authOptional: true,
      onData: (stream, _session, callback) => {
        let body = '';
        stream.on('data', (c: Buffer) => (body += c.toString('latin1')));
        stream.on('end', () => {
          const id = /^Message-ID:\s*(\S+)/im.exec(body)?.[1] ?? '?';
          if (this.holding && ++this.dataEnds > this.answered) {
            this.held.push((err) => callback(err));
          } else {
            this.accepted.push(id);
            callback(null, 'OK');
          }
          for (const w of this.waiters.splice(0)) w();
        });
      },
    });
    this.server.on('error', () => {});
  }

  get heldCount(): number {
    return this.held.length;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.server.address() as AddressInfo).port;
  }

  async until(check: () => boolean): Promise<void> {
    while (!check()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** From now on every message is accepted; the held ones are refused (their connection is gone anyway). */
  release(): void {
    this.holding = false;
    for (const h of this.held.splice(0)) h(new Error('sender went away'));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

test('kill -9 mid-delivery, restart: every accepted message is delivered exactly once', { timeout: 120_000 }, async () => {
  const receiver = new HoldingReceiver(6);
  const port = await receiver.listen();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-crash-'));
  const spool = path.join(dir, 'spool');
  const file = path.join(dir, 'relay.json');
  // One delivery at a time per tenant: when both tenants' current messages are held, every
  // earlier message has been answered 250 *and* removed from its queue, so a kill now is
  // "mid-delivery" without touching the one window that can duplicate (see docs/relay.md).
  const config = relayConfig(spool, { 'far.example': `127.0.0.1:${port}` }, { relay: { maxDeliveriesPerTenant: 1 } });
  await writeFile(file, JSON.stringify({ ...config, log: { level: 'info' } }));
  let child = ChildConcierge.start(file);
  try {
    const relayPort: number = (await child.logged('listening')).port;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      for (const [from, localAddress] of [['web@a.example', '127.0.0.12'], ['web@b.example', '127.0.0.13']] as const) {
        const id = messageId(`crash${i}`);
        ids.push(id);
        assert.match(await submit(relayPort, { localAddress, from, to: [`u${i}@far.example`], id }), /^250 /);
      }
    }
    await receiver.until(() => receiver.heldCount === 2);
    await child.kill9();
    assert.equal(receiver.accepted.length, 6);
    const left = (await readdir(path.join(spool, 'a.example'))).concat(await readdir(path.join(spool, 'b.example'))).filter((n) => n.endsWith('.json'));
    assert.equal(left.length, 14, 'the 14 messages not yet answered are still queued');

    receiver.release();
    child = ChildConcierge.start(file);
    await child.logged('relay started');
    await receiver.until(() => receiver.accepted.length >= 20);
    assert.equal(new Set(receiver.accepted).size, receiver.accepted.length, 'no Message-ID twice');
    assert.deepEqual([...receiver.accepted].sort(), [...ids].sort());
    // "relay delivered" is logged once a message's files are gone.
    await child.loggedTimes('relay delivered', 14);
    const remaining = (await readdir(path.join(spool, 'a.example'))).concat(await readdir(path.join(spool, 'b.example'))).filter((n) => n.endsWith('.json') || n.endsWith('.eml'));
    assert.deepEqual(remaining, []);
  } finally {
    if (child.child.exitCode === null && child.child.signalCode === null) await child.kill9();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
});
