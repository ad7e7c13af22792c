// sendProxyProtocol against a real daemon: dovecot's `haproxy = yes` listener reads the header
// Concierge writes before its greeting, and logs the client it names as `rip` (not the tenant's
// source address the connection comes from). Both header versions, with and without a balancer
// in front of Concierge.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { encodeProxyHeader } from '../../src/proxy-protocol.js';
import { testConfig } from '../support/fixtures.js';
import { captureLogs } from '../support/logs.js';
import { RawClient } from '../support/raw-client.js';
import { startDovecot, type DovecotInstance } from './dovecot.js';

const BALANCER = '127.0.0.9';
const TEST_TIMEOUT = { timeout: 30_000 };

async function logIn(c: RawClient, user: string, password: string): Promise<void> {
  assert.match(await c.line(), /^\+OK/);
  assert.match(await c.command(`USER ${user}`), /^\+OK/);
  assert.match(await c.command(`PASS ${password}`), /^\+OK/);
  assert.match(await c.command('STAT'), /^\+OK 1 /);
  assert.match(await c.command('QUIT'), /^\+OK/);
  await c.closed;
}

describe('PROXY protocol towards dovecot (haproxy = yes)', () => {
  let dovecot: DovecotInstance;
  let concierge: Concierge;
  let port: number;
  before(async () => {
    dovecot = await startDovecot({
      haproxy: true,
      users: [
        { user: 'alice', password: 'pw-alice', messages: ['Subject: a\n\nfor alice\n'] },
        { user: 'bob', password: 'pw-bob', messages: ['Subject: b\n\nfor bob\n'] },
      ],
    });
    const backend = (version: 'v1' | 'v2') => ({ pop3: [{ host: '127.0.0.1', port: dovecot.haproxyPort!, sendProxyProtocol: version }] });
    const config = testConfig(
      [
        { domain: 'a.example', sourceAddress: '127.0.0.2', backends: backend('v1') },
        { domain: 'b.example', sourceAddress: '127.0.0.3', backends: backend('v2') },
      ],
      (raw) => (raw.listeners[0].proxyProtocol = { trusted: [BALANCER] }),
    );
    concierge = await startConcierge(config, { logger: captureLogs('info').logger });
    port = concierge.listeners[0]!.address().port;
  });
  after(async () => {
    await concierge?.close(0);
    await dovecot?.stop();
  });

  test('v1 and v2: dovecot logs the client Concierge served, not the tenant source address', TEST_TIMEOUT, async () => {
    await logIn(await RawClient.connect(port, { localAddress: '127.0.0.5' }), 'alice@a.example', 'pw-alice');
    await logIn(await RawClient.connect(port, { localAddress: '127.0.0.6' }), 'bob@b.example', 'pw-bob');
    const logins = await dovecot.logins({ atLeast: 2 });
    assert.deepEqual(logins.map((l) => [l.user, l.rip]), [
      ['alice', '127.0.0.5'],
      ['bob', '127.0.0.6'],
    ]);
  });

  test('behind a balancer: dovecot logs the client named in the balancer\'s header', TEST_TIMEOUT, async () => {
    const c = await RawClient.connect(port, { localAddress: BALANCER });
    c.send(encodeProxyHeader('v2', { clientAddress: '192.0.2.7', clientPort: 50_000, localAddress: '198.51.100.1', localPort: 110 }));
    await logIn(c, 'bob@b.example', 'pw-bob');
    const logins = await dovecot.logins({ atLeast: 3 });
    assert.deepEqual([logins[2]!.user, logins[2]!.rip, logins[2]!.lip], ['bob', '192.0.2.7', '198.51.100.1']);
  });
});
