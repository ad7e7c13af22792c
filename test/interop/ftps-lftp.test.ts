// lftp (GnuTLS) through Concierge to a vsftpd that speaks TLS, both with their strictest defaults:
// lftp with ftp:ssl-force and ftp:ssl-protect-data resumes the control connection's TLS session
// on each data connection, vsftpd with require_ssl_reuse=YES refuses a data connection that
// does not resume its own. Concierge terminates one and originates the other, so both kinds of
// resumption are exercised. Missing lftp or vsftpd fails here (.ci/install-interop.sh installs them).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { createSilentLogger } from '../../src/log.js';
import { TestCa } from '../support/certificates.js';
import { closedPort } from '../support/fake-backend.js';
import { PROBE_ADDRESS, startVsftpd, type Vsftpd } from './vsftpd.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const BIG = randomBytes(16 * 1024 * 1024 + 777);

describe('FTPS interop: lftp → Concierge → vsftpd, TLS on every connection', () => {
  let ca: TestCa;
  let vsftpd: Vsftpd;
  let concierge: Concierge;
  let tmp: string;
  const ports: Record<'starttls' | 'implicit' | 'backendActive', number> = { starttls: 0, implicit: 0, backendActive: 0 };

  /** Runs an lftp script against a Concierge listener with TLS forced on control and data. */
  async function lftp(listener: keyof typeof ports, commands: string[], settings: string[] = []): Promise<string> {
    const url = `${listener === 'implicit' ? 'ftps' : 'ftp'}://127.0.0.1:${ports[listener]}`;
    const script = [
      'set cmd:fail-exit true',
      'set net:max-retries 1',
      'set net:timeout 20',
      'set ftp:ssl-force true',
      'set ftp:ssl-protect-data true',
      'set ftp:ssl-protect-list true',
      `set ssl:ca-file ${ca.certFile}`,
      ...settings,
      `open -u anonymous@a.example,guest ${url}`,
      ...commands,
    ].join('; ');
    const { stdout } = await run('lftp', ['-c', script], { cwd: tmp, maxBuffer: 16 * 1024 * 1024, timeout: 60_000 });
    return stdout;
  }

  before(async () => {
    ca = await TestCa.create();
    const front = await ca.issue(['ftp.host.example', '127.0.0.1']);
    const back = await ca.issue(['vsftpd.backend.example']);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'concierge-lftp-'));
    vsftpd = await startVsftpd({ port: await closedPort(), pasv: { min: 22191, max: 22199 }, files: { 'hello.txt': 'hello over TLS\n', 'big.bin': BIG }, tls: { cert: back.cert, key: back.key } });
    const certificate = { cert: front.cert, key: front.key };
    const config = parseConfig({
      limits: { authFailDelayMs: 50, connectTimeoutMs: 2_000, backendReplyTimeoutMs: 5_000, loginTimeoutMs: 10_000, idleTimeoutMs: 30_000, dataConnectTimeoutMs: 10_000 },
      listeners: [
        { protocol: 'ftp', address: '127.0.0.1', port: 0, passivePorts: { from: 22100, to: 22139 }, tls: 'starttls', requireTls: true, requireProtP: true, certificate },
        { protocol: 'ftp', address: '127.0.0.1', port: 0, passivePorts: { from: 22140, to: 22169 }, tls: 'implicit', certificate },
        // vsftpd dials Concierge for data (PORT) and is still the TLS server on that connection.
        { protocol: 'ftp', address: '127.0.0.1', port: 0, passivePorts: { from: 22170, to: 22179 }, tls: 'starttls', certificate, backendDataMode: 'active' },
      ],
      tenants: [
        {
          domain: 'a.example',
          sourceAddress: '127.0.0.2',
          backends: { ftp: [{ host: '127.0.0.1', port: vsftpd.port, tls: 'starttls', ca: ca.certFile, servername: 'vsftpd.backend.example' }] },
        },
      ],
    });
    concierge = await startConcierge(config, { logger: createSilentLogger() });
    ports.starttls = concierge.listeners[0]!.address().port;
    ports.implicit = concierge.listeners[1]!.address().port;
    ports.backendActive = concierge.listeners[2]!.address().port;
  });
  after(async () => {
    await concierge?.close();
    await vsftpd?.stop();
    await rm(tmp, { recursive: true, force: true });
    await ca?.remove();
  });

  for (const [name, listener, settings] of [
    ['AUTH TLS, passive', 'starttls', []],
    ['AUTH TLS, active', 'starttls', ['set ftp:passive-mode false', 'set ftp:port-range 22180-22189']],
    ['implicit FTPS, passive', 'implicit', []],
    ['AUTH TLS, backend active (PORT to Concierge)', 'backendActive', []],
  ] as const) {
    test(`${name}: lftp lists and downloads byte-identical files`, async () => {
      const file = `big-${listener}-${settings.length}.bin`;
      const out = await lftp(listener, ['cls -1 pub', 'cat pub/hello.txt', `get pub/big.bin -o ${file}`], [...settings]);
      assert.match(out, /big\.bin/);
      assert.match(out, /hello over TLS/);
      assert.equal(sha256(await readFile(path.join(tmp, file))), sha256(BIG));
    });
  }

  test('vsftpd saw only the tenant’s source address, and every login and transfer inside TLS', async () => {
    const log = await vsftpd.log();
    const clients = new Set([...log.matchAll(/Client "([^"]+)"/g)].map((m) => m[1]).filter((ip) => ip !== PROBE_ADDRESS));
    assert.deepEqual([...clients], ['127.0.0.2']);
    assert.equal([...log.matchAll(/OK DOWNLOAD/g)].length, 8);
    assert.match(log, /AUTH TLS/);
    assert.match(log, /PROT P/);
  });

  test('no socket or passive port is left behind', async () => {
    for (const l of concierge.listeners) {
      await l.whenIdle();
      assert.equal(l.passivePorts!.inUse, 0);
    }
  });
});
