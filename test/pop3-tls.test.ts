import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import { once } from 'node:events';
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import Pop3Command from 'node-pop3';
import { TestCa, type IssuedCertificate } from './support/certificates.js';
import { DemoPop3Server } from '../demo/pop3-server.js';
import type { ConfigError } from '../src/config.js';
import { TlsStore } from '../src/tls.js';
import { PASSWORD_A, PASSWORD_B, startTwoTenants, testConfig, type TwoTenants } from './support/fixtures.js';
import { makeMaildir, message } from './support/maildir.js';
import { sampleValue } from './support/prometheus.js';
import { RawClient } from './support/raw-client.js';

const run = promisify(execFile);

/** The subject names of the certificate a TLS client was shown. */
function namesSeen(c: RawClient): string {
  const der = (c.socket as TLSSocket).getPeerCertificate().raw;
  return new X509Certificate(der).subjectAltName ?? '';
}

describe('POP3 over TLS: STLS, implicit POP3S, SNI certificates, requireTls', () => {
  let ca: TestCa;
  let hostCert: IssuedCertificate;
  let tenantCert: IssuedCertificate;
  let env: TwoTenants;
  let starttlsPort: number;
  let implicitPort: number;

  before(async () => {
    ca = await TestCa.create();
    hostCert = await ca.issue(['mail.host.example', '127.0.0.1']);
    tenantCert = await ca.issue(['a.example', '*.a.example']);
    env = await startTwoTenants({
      patch: (raw) => {
        raw.listeners = [
          { protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'starttls', requireTls: true, certificate: { cert: hostCert.cert, key: hostCert.key } },
          { protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'implicit', certificate: { cert: hostCert.cert, key: hostCert.key } },
        ];
      },
      tenantPatch: (tenants) => {
        tenants[0]!.certificate = { cert: tenantCert.cert, key: tenantCert.key };
      },
    });
    starttlsPort = env.concierge.listeners[0]!.address().port;
    implicitPort = env.concierge.listeners[1]!.address().port;
  });
  after(async () => {
    if (process.env.SHOW_LOGS) console.log(env.logs.lines().join('\n'));
    await env.close();
    await ca.remove();
  });

  test('implicit TLS: node-pop3 retrieves each tenant’s mail, verifying the listener’s certificate', async () => {
    for (const [user, password, text] of [
      ['alice@a.example', PASSWORD_A, /mail for alice at a/],
      ['alice@b.example', PASSWORD_B, /mail for alice at b/],
    ] as const) {
      const pop3 = new Pop3Command({ host: '127.0.0.1', port: implicitPort, user, password, tls: true, tlsOptions: { ca: ca.pem } });
      assert.match(await pop3.RETR(1), text);
      await pop3.QUIT();
    }
    assert.equal(env.backendA.connections.at(-1)?.remoteAddress, '127.0.0.2');
    assert.equal(env.backendB.connections.at(-1)?.remoteAddress, '127.0.0.3');
  });

  test('curl pop3s:// and pop3:// --ssl-reqd (STLS) both log in and retrieve', async () => {
    const common = ['-sS', '--max-time', '10', '--cacert', ca.certFile, '-u', `alice@a.example:${PASSWORD_A}`];
    const { stdout: implicit } = await run('curl', [...common, `pop3s://127.0.0.1:${implicitPort}/1`]);
    assert.match(implicit, /mail for alice at a/);
    const { stdout: upgraded } = await run('curl', [...common, '--ssl-reqd', `pop3://127.0.0.1:${starttlsPort}/1`]);
    assert.match(upgraded, /mail for alice at a/);
  });

  test('SNI picks the tenant’s certificate for its domain and names under it, the listener’s otherwise', async () => {
    for (const [servername, expected] of [
      ['a.example', /DNS:a\.example/],
      ['pop.a.example', /DNS:a\.example/],
      ['b.example', /DNS:mail\.host\.example/],
      ['unknown.example', /DNS:mail\.host\.example/],
    ] as const) {
      const c = await RawClient.connectTls(implicitPort, { servername, ca: ca.pem, checkServerIdentity: () => undefined });
      assert.match(namesSeen(c), expected, servername);
      assert.match(await c.line(), /^\+OK /);
      c.close();
    }
  });

  test('the tenant SNI named is the tenant of a bare user name', async () => {
    const c = await RawClient.connectTls(implicitPort, { servername: 'a.example', ca: ca.pem });
    await c.line();
    assert.equal(await c.command('USER alice'), '+OK');
    assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
    assert.equal(env.backendA.connections.at(-1)?.user, 'alice');
    assert.match(await c.command('QUIT'), /^\+OK/);
    await c.closed;
  });

  test('requireTls: CAPA lists STLS and no login method, USER and AUTH are refused before STLS', async () => {
    const seen = env.backendA.connections.length;
    const c = await RawClient.connect(starttlsPort);
    await c.line();
    assert.match(await c.command('CAPA'), /^\+OK/);
    assert.deepEqual(await c.multiline(), ['RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'STLS']);
    assert.match(await c.command('USER alice@a.example'), /^-ERR \[AUTH\] TLS required/);
    assert.match(await c.command(`AUTH PLAIN ${Buffer.from(`\0alice@a.example\0${PASSWORD_A}`).toString('base64')}`), /^-ERR \[AUTH\] TLS required/);
    assert.equal(await c.command('STLS'), '+OK Begin TLS negotiation');
    const t = await c.startTls({ ca: ca.pem, servername: 'mail.host.example' });
    assert.match(await t.command('CAPA'), /^\+OK/);
    assert.deepEqual(await t.multiline(), ['USER', 'SASL PLAIN', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'], 'no STLS once encrypted');
    assert.match(await t.command('STLS'), /^-ERR/);
    assert.equal(await t.command('USER alice@a.example'), '+OK');
    assert.match(await t.command(`PASS ${PASSWORD_A}`), /^\+OK/);
    assert.equal(env.backendA.connections.length, seen + 1);
    assert.match(await t.command('QUIT'), /^\+OK/);
    await t.closed;
  });

  test('commands pipelined after STLS, before the handshake, are dropped unexecuted', async () => {
    const seen = env.backendA.connections.length;
    const c = await RawClient.connect(starttlsPort);
    await c.line();
    c.send(`STLS\r\nUSER alice@a.example\r\nPASS ${PASSWORD_A}\r\nCAPA\r\n`);
    assert.equal(await c.line(), '+OK Begin TLS negotiation');
    const t = await c.startTls({ ca: ca.pem, servername: 'mail.host.example' });
    // The first reply inside TLS answers what was sent inside TLS: nothing injected ran.
    assert.match(await t.command('NOOP'), /^-ERR/);
    assert.match(await t.command('PASS whatever'), /^-ERR/, 'no USER was remembered');
    t.close();
    await t.closed;
    assert.equal(env.backendA.connections.length, seen, 'no backend login from injected commands');
    await env.concierge.listeners[0]!.whenIdle();
    assert.ok(env.logs.records().some((l) => l.message === 'bytes after the TLS upgrade command dropped' && Number(l.bytes) > 0));
  });

  test('a client that fails the handshake is logged and leaves nothing open', async () => {
    const c = await RawClient.connect(implicitPort);
    c.send('USER alice@a.example\r\n'); // plaintext on the implicit port: not a ClientHello
    await c.rest();
    await env.concierge.listeners[1]!.whenIdle();
    assert.ok(env.logs.records().some((l) => l.message === 'tls handshake failed'));
    const metrics = await env.concierge.metrics.text();
    assert.ok((sampleValue(metrics, 'concierge_tls_handshakes_total', { outcome: 'failed' }) ?? 0) >= 1, 'failure counted');
    assert.ok((sampleValue(metrics, 'concierge_tls_handshakes_total', { outcome: 'TLSv1.3' }) ?? 0) >= 5, 'handshakes counted by version');
  });

  test('a client that does not trust the certificate gets no session (curl refuses it)', async () => {
    await assert.rejects(run('curl', ['-sS', '--max-time', '10', '-u', `alice@a.example:${PASSWORD_A}`, `pop3s://127.0.0.1:${implicitPort}/1`]), (err: { code?: number }) => err.code === 60);
  });
});

describe('POP3 toward a TLS backend (POP3S)', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let env: TwoTenants;
  let backend: DemoPop3Server;
  let mail: Awaited<ReturnType<typeof makeMaildir>>;

  before(async () => {
    ca = await TestCa.create();
    otherCa = await TestCa.create('Some Other CA');
    const backendCert = await ca.issue(['pop.a.example']);
    mail = await makeMaildir({ carol: { password: 'pw-of-carol', messages: [message('carol@a.example', 'mail over backend tls')] } });
    backend = new DemoPop3Server({ maildir: mail.dir, tls: { cert: backendCert.cert, key: backendCert.key } });
    await backend.listen();
    const tlsBackend = (extra: Record<string, unknown>) => ({ host: '127.0.0.1', port: backend.port, tls: 'implicit', ...extra });
    env = await startTwoTenants({
      tenantPatch: (tenants) => {
        tenants.push(
          { domain: 'c.example', sourceAddress: '127.0.0.4', backends: { pop3: [tlsBackend({ ca: ca.certFile, servername: 'pop.a.example' })] } },
          { domain: 'name.example', sourceAddress: '127.0.0.5', backends: { pop3: [tlsBackend({ ca: ca.certFile, servername: 'other.example' })] } },
          { domain: 'ca.example', sourceAddress: '127.0.0.6', backends: { pop3: [tlsBackend({ ca: otherCa.certFile, servername: 'pop.a.example' })] } },
          { domain: 'skip.example', sourceAddress: '127.0.0.7', backends: { pop3: [tlsBackend({ insecureSkipVerify: true })] } },
        );
      },
    });
  });
  after(async () => {
    await env.close();
    await backend.close();
    await mail.remove();
    await Promise.all([ca.remove(), otherCa.remove()]);
  });

  test('the backend’s certificate is verified against the configured CA and name; the session is relayed over TLS from the tenant’s address', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.1', port: env.port, user: 'carol@c.example', password: 'pw-of-carol' });
    assert.match(await pop3.RETR(1), /mail over backend tls/);
    await pop3.QUIT();
    assert.equal(backend.connections.at(-1)?.remoteAddress, '127.0.0.4');
  });

  test('a wrong name or an unknown CA fails the backend (logged BACKEND_TLS), and the client hears [SYS/TEMP], not an auth failure', async () => {
    for (const domain of ['name.example', 'ca.example']) {
      const c = await RawClient.connect(env.port);
      await c.line();
      await c.command(`USER carol@${domain}`);
      assert.match(await c.command('PASS pw-of-carol'), /^-ERR \[SYS\/TEMP\]/, domain);
      c.close();
    }
    const failures = env.logs.records().filter((r) => r.message === 'backend failed' && r.code === 'BACKEND_TLS');
    assert.ok(failures.some((r) => /other\.example/.test(String(r.error))), 'wrong name named');
    assert.ok(failures.some((r) => /certificate/i.test(String(r.error)) && r.tenant === 'ca.example'), 'untrusted CA named');
  });

  test('insecureSkipVerify accepts any certificate and is warned about at start', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.1', port: env.port, user: 'carol@skip.example', password: 'pw-of-carol' });
    assert.match(await pop3.RETR(1), /mail over backend tls/);
    await pop3.QUIT();
    assert.ok(env.logs.records().some((r) => r.message === 'backend certificate not verified (insecureSkipVerify)' && r.tenant === 'skip.example'));
  });
});

describe('certificate files', () => {
  test('an expired certificate is served with a warning at load; a client that checks dates refuses it', async () => {
    const ca = await TestCa.create();
    const expired = await ca.issue(['127.0.0.1'], { expired: true });
    const env = await startTwoTenants({
      patch: (raw) => {
        raw.listeners = [{ protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'implicit', certificate: { cert: expired.cert, key: expired.key } }];
      },
    });
    try {
      assert.ok(env.logs.records().some((r) => r.message === 'certificate not valid now' && r.cert === expired.cert));
      await assert.rejects(run('curl', ['-sS', '--max-time', '10', '--cacert', ca.certFile, '-u', `alice@a.example:${PASSWORD_A}`, `pop3s://127.0.0.1:${env.port}/1`]), (err: { code?: number }) => err.code === 60);
    } finally {
      await env.close();
      await ca.remove();
    }
  });

  test('unreadable or mismatched files are config problems naming their JSON path', async () => {
    const ca = await TestCa.create();
    const one = await ca.issue(['one.example']);
    const two = await ca.issue(['two.example']);
    const config = testConfig([{ domain: 'a.example', certificate: { cert: one.cert, key: two.key }, backends: { pop3: [{ host: '127.0.0.1', port: 1, tls: 'implicit', ca: '/nonexistent/ca.pem' }] } }], (raw) => {
      raw.listeners = [{ protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'starttls', certificate: { cert: '/nonexistent/cert.pem', key: one.key } }];
    });
    try {
      await assert.rejects(TlsStore.load(config), (err: ConfigError) => {
        assert.ok(err.problems.some((p) => p.startsWith('listeners[0].certificate.cert: cannot read /nonexistent/cert.pem')), err.message);
        assert.ok(err.problems.some((p) => p.startsWith('tenants[0].certificate: ') && /key values mismatch/i.test(p)), err.message);
        assert.ok(err.problems.some((p) => p.startsWith('tenants[0].backends.pop3[0].ca: cannot read')), err.message);
        return true;
      });
    } finally {
      await ca.remove();
    }
  });
});

describe('certificate reload', () => {
  test('a certificate renewed at the same path is served to new connections after a reload', async () => {
    const ca = await TestCa.create();
    const first = await ca.issue(['first.example', '127.0.0.1']);
    const second = await ca.issue(['second.example', '127.0.0.1']);
    const live = { cert: `${ca.dir}/live.pem`, key: `${ca.dir}/live.key` };
    await copyFile(first.cert, live.cert);
    await copyFile(first.key, live.key);
    const listeners = [{ protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'implicit', certificate: live }];
    const env = await startTwoTenants({ patch: (raw) => (raw.listeners = listeners) });
    try {
      const seen = async () => {
        const c = await RawClient.connectTls(env.port, { ca: ca.pem });
        const names = namesSeen(c);
        c.close();
        return names;
      };
      assert.match(await seen(), /first\.example/);
      await copyFile(second.cert, live.cert);
      await copyFile(second.key, live.key);
      const next = testConfig([], (raw) => (raw.listeners = listeners));
      env.concierge.reloadTenants(next, await TlsStore.load(next));
      assert.match(await seen(), /second\.example/);
      assert.ok(!env.logs.records().some((r) => String(r.message).startsWith('reload applies')), 'no restart asked for');
    } finally {
      await env.close();
      await ca.remove();
    }
  });
});

describe('TLS behind a load balancer', () => {
  test('a PROXY header, then the TLS handshake on the same connection: the session is the named client’s', async () => {
    const ca = await TestCa.create();
    const host = await ca.issue(['127.0.0.1']);
    const env = await startTwoTenants({
      patch: (raw) => {
        raw.listeners = [{ protocol: 'pop3', address: '127.0.0.1', port: 0, tls: 'implicit', certificate: { cert: host.cert, key: host.key }, proxyProtocol: { trusted: ['127.0.0.0/8'] } }];
      },
    });
    try {
      const socket = net.connect({ host: '127.0.0.1', port: env.port });
      await once(socket, 'connect');
      // Header and ClientHello may share a segment: the bytes after the header belong to TLS.
      socket.write('PROXY TCP4 198.51.100.7 127.0.0.1 40000 995\r\n');
      const secure = tls.connect({ socket, host: '127.0.0.1', ca: ca.pem });
      await once(secure, 'secureConnect');
      const c = RawClient.wrap(secure);
      assert.match(await c.line(), /^\+OK/);
      assert.equal(await c.command('USER alice@a.example'), '+OK');
      assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
      c.close();
      await env.concierge.listeners[0]!.whenIdle();
      assert.ok(env.logs.records().some((r) => r.message === 'login ok' && String(r.client).startsWith('198.51.100.7:') && r.tls === 'TLSv1.3'));
    } finally {
      await env.close();
      await ca.remove();
    }
  });
});
