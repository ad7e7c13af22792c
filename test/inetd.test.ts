import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DemoPop3Server } from '../demo/pop3-server.js';
import { makeMaildir, message } from './support/maildir.js';
import { RawClient } from './support/raw-client.js';

const root = path.join(import.meta.dirname, '..');
const cli = path.join(root, 'src', 'cli.ts');

/**
 * inetd's part, played by the test: accept a connection, start `concierge inetd` with that
 * socket as its fd 0 (as inetd does with `wait = no`), and close our own copy.
 */
async function inetd(configFile: string): Promise<{ client: RawClient; exit: Promise<{ code: number | null; stdout: string; stderr: string }> }> {
  const server = net.createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = await RawClient.connect((server.address() as net.AddressInfo).port);
  const [socket] = await accepted;
  server.close();
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'inetd', '--protocol', 'pop3', '--config', configFile], { cwd: root, stdio: [socket, 'pipe', 'pipe'] });
  socket.destroy(); // the child holds the connection now
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c));
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  const exit = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { client, exit };
}

describe('concierge inetd', () => {
  let dir: string;
  let configFile: string;
  let backend: DemoPop3Server;
  let mail: Awaited<ReturnType<typeof makeMaildir>>;
  before(async () => {
    mail = await makeMaildir({ alice: { password: 'pw-alice', messages: [message('alice@a.example', 'hello from inetd mode')] } });
    backend = new DemoPop3Server({ maildir: mail.dir });
    await backend.listen();
    dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-inetd-'));
    configFile = path.join(dir, 'tenants.json');
    await writeFile(
      configFile,
      JSON.stringify({
        limits: { authFailDelayMs: 50 },
        // A relay listener in the same file is not started per connection (its queue has one writer).
        listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 110, banner: 'inetd POP3 ready' }, { protocol: 'smtp', mode: 'relay', address: '127.0.0.1', port: 2526 }],
        relay: { spool: 'spool' },
        tenants: [{ domain: 'a.example', sourceAddress: '127.0.0.2', backends: { pop3: [{ host: '127.0.0.1', port: backend.port }] } }],
      }),
    );
  });
  after(async () => {
    await backend.close();
    await mail.remove();
    await rm(dir, { recursive: true, force: true });
  });

  test('serves the connection on fd 0 through to the tenant backend, logs on stderr, exits 0 after QUIT', async () => {
    const { client, exit } = await inetd(configFile);
    assert.equal(await client.line(), '+OK inetd POP3 ready');
    await client.command('USER alice@a.example');
    assert.match(await client.command('PASS pw-alice'), /^\+OK/);
    assert.match(await client.command('STAT'), /^\+OK 1 /);
    assert.match(await client.command('QUIT'), /^\+OK/);
    await client.closed;
    const { code, stdout, stderr } = await exit;
    assert.equal(code, 0);
    assert.equal(stdout, '', 'stdout is the connection: nothing else may be written there');
    assert.equal(existsSync(path.join(dir, 'spool')), false, 'no relay ran');
    assert.match(stderr, /"message":"login ok".*"tenant":"a\.example".*"source":"127\.0\.0\.2"/);
    assert.equal(backend.connections.at(-1)?.remoteAddress, '127.0.0.2');
  });

  test('a client that leaves before logging in ends the process with status 0', async () => {
    const { client, exit } = await inetd(configFile);
    await client.line();
    client.close();
    const { code, stderr } = await exit;
    assert.equal(code, 0);
    assert.match(stderr, /"message":"session closed"/);
  });
});
