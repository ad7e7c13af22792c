// Concierge in front of a real vsftpd, with curl as the client (passive and active), in both
// backend data modes. vsftpd accepts data connections only from the control connection's address,
// so every transfer here also proves the data path is bound to the tenant's source address.
// Missing vsftpd or curl fails here; it never skips (.ci/install-interop.sh installs them).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { createSilentLogger } from '../../src/log.js';
import { closedPort } from '../support/fake-backend.js';
import { PROBE_ADDRESS, startVsftpd, type Vsftpd } from './vsftpd.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const BIG = randomBytes(64 * 1024 * 1024);

async function curl(args: string[]): Promise<Buffer> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '60', ...args], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 });
  return stdout;
}

describe('FTP interop: Concierge in front of vsftpd', () => {
  let vsftpd: Vsftpd;
  let concierge: Concierge;
  const ports: Record<string, number> = {};
  before(async () => {
    vsftpd = await startVsftpd({ port: await closedPort(), pasv: { min: 21991, max: 21999 }, files: { 'hello.txt': 'hello from vsftpd\n', 'big.bin': BIG } });
    const config = parseConfig({
      limits: { authFailDelayMs: 50, connectTimeoutMs: 2_000, backendReplyTimeoutMs: 5_000, loginTimeoutMs: 10_000, idleTimeoutMs: 30_000, dataConnectTimeoutMs: 10_000 },
      listeners: [
        { protocol: 'ftp', address: '127.0.0.1', port: 0, passivePorts: { from: 21900, to: 21949 } },
        { protocol: 'ftp', address: '127.0.0.1', port: 0, passivePorts: { from: 21950, to: 21989 }, backendDataMode: 'active' },
      ],
      tenants: [{ domain: 'a.example', sourceAddress: '127.0.0.2', backends: { ftp: [{ host: '127.0.0.1', port: vsftpd.port }] } }],
    });
    concierge = await startConcierge(config, { logger: createSilentLogger() });
    ports.passive = concierge.listeners[0]!.address().port;
    ports.active = concierge.listeners[1]!.address().port;
  });
  after(async () => {
    await concierge?.close();
    await vsftpd?.stop();
  });

  for (const backendMode of ['passive', 'active'] as const) {
    for (const [clientMode, args] of [['passive', []], ['passive (PASV)', ['--disable-epsv']], ['active', ['-P', '127.0.0.1']], ['active (PORT)', ['-P', '127.0.0.1', '--disable-eprt']]] as const) {
      test(`backend ${backendMode}, client ${clientMode}: curl gets the file byte-identical`, async () => {
        const url = `ftp://127.0.0.1:${ports[backendMode]}/pub`;
        const login = ['-u', 'anonymous@a.example:guest'];
        assert.equal((await curl([...args, ...login, `${url}/hello.txt`])).toString(), 'hello from vsftpd\n');
        const big = await curl([...args, ...login, `${url}/big.bin`]);
        assert.equal(big.length, BIG.length);
        assert.equal(sha256(big), sha256(BIG));
        assert.match((await curl([...args, ...login, `${url}/`])).toString(), /big\.bin/);
      });
    }
  }

  test('vsftpd saw only the tenant’s source address', async () => {
    const log = await vsftpd.log();
    const clients = new Set([...log.matchAll(/Client "([^"]+)"/g)].map((m) => m[1]).filter((ip) => ip !== PROBE_ADDRESS));
    assert.deepEqual([...clients], ['127.0.0.2']);
    assert.equal([...log.matchAll(/OK DOWNLOAD/g)].length, 16);
  });

  test('no socket or passive port is left behind', async () => {
    for (const l of concierge.listeners) {
      await l.whenIdle();
      assert.equal(l.passivePorts!.inUse, 0);
    }
  });
});
