/**
 * POP3 TLS on both sides against a real dovecot: curl speaks POP3S (and STLS) to Concierge,
 * Concierge speaks STLS to dovecot, verifying dovecot's certificate against the test CA.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { TestCa } from '../support/certificates.js';
import { testConfig } from '../support/fixtures.js';
import { captureLogs } from '../support/logs.js';
import { curlPop3 } from './curl.js';
import { startDovecot, type DovecotInstance } from './dovecot.js';

const TEST_TIMEOUT = { timeout: 60_000 };
const PW = 'pw of alice at a';

describe('POP3 TLS end to end: curl → Concierge (POP3S / STLS) → dovecot (STLS)', () => {
  let ca: TestCa;
  let dovecot: DovecotInstance;
  let concierge: Concierge;
  let implicitPort: number;
  let starttlsPort: number;

  before(async () => {
    ca = await TestCa.create();
    const dovecotCert = await ca.issue(['pop.a.internal']);
    const hostCert = await ca.issue(['127.0.0.1']);
    dovecot = await startDovecot({ users: [{ user: 'alice', password: PW, messages: ['Subject: over tls twice\r\n\r\nhello through two TLS hops\r\n'] }], ssl: dovecotCert });
    const certificate = { cert: hostCert.cert, key: hostCert.key };
    const config = testConfig(
      [
        { domain: 'a.example', sourceAddress: '127.0.0.2', backends: { pop3: [{ host: '127.0.0.1', port: dovecot.port, tls: 'starttls', ca: ca.certFile, servername: 'pop.a.internal' }] } },
        { domain: 'wrong.example', sourceAddress: '127.0.0.3', backends: { pop3: [{ host: '127.0.0.1', port: dovecot.port, tls: 'starttls', ca: ca.certFile, servername: 'not-dovecot.internal' }] } },
      ],
      (raw) => {
        raw.log = { level: 'info' };
        raw.listeners = [
          { protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'implicit', certificate },
          { protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'starttls', requireTls: true, certificate },
        ];
      },
    );
    concierge = await startConcierge(config, { logger: captureLogs('info').logger });
    [implicitPort, starttlsPort] = concierge.listeners.map((l) => l.address().port) as [number, number];
  }, TEST_TIMEOUT);

  after(async () => {
    await concierge?.close(0);
    await dovecot?.stop();
    await ca?.remove();
  }, TEST_TIMEOUT);

  test('pop3s:// and pop3:// --ssl-reqd retrieve the message; dovecot logs TLS logins from the tenant’s address', TEST_TIMEOUT, async () => {
    for (const url of [`pop3s://127.0.0.1:${implicitPort}/1`, `pop3://127.0.0.1:${starttlsPort}/1`]) {
      const res = await curlPop3(url, 'alice@a.example', PW, ['--cacert', ca.certFile, '--ssl-reqd']);
      assert.equal(res.code, 0, `${url}: curl exit ${res.code}: ${res.stderr}`);
      assert.match(res.stdout.toString(), /hello through two TLS hops/);
    }
    const logins = await dovecot.logins({ atLeast: 2 });
    assert.deepEqual(logins.map((l) => [l.user, l.rip, l.tls]), [
      ['alice', '127.0.0.2', true],
      ['alice', '127.0.0.2', true],
    ]);
  });

  test('plaintext login on the requireTls listener is refused before dovecot is asked', TEST_TIMEOUT, async () => {
    const res = await curlPop3(`pop3://127.0.0.1:${starttlsPort}/1`, 'alice@a.example', PW);
    assert.notEqual(res.code, 0);
    assert.equal((await dovecot.logins()).length, 2);
  });

  test('a dovecot certificate without the configured name is refused: the client hears a temporary failure', TEST_TIMEOUT, async () => {
    const res = await curlPop3(`pop3s://127.0.0.1:${implicitPort}/1`, 'alice@wrong.example', PW, ['--cacert', ca.certFile]);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /SYS\/TEMP|temporarily|Access denied|login denied/i);
    assert.equal((await dovecot.logins()).length, 2, 'no login reached dovecot');
  });
});
