import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ActivatedSockets } from '../src/socket-activation.js';
import { closedPort } from './support/fake-backend.js';
import { RawClient } from './support/raw-client.js';

const root = path.join(import.meta.dirname, '..');
const cli = path.join(root, 'src', 'cli.ts');
const listener = (protocol: 'pop3' | 'ftp', port: number) => ({ protocol, address: '127.0.0.1', port }) as never;

describe('systemd socket activation', () => {
  test('fds are matched by full name, then protocol, then unnamed in order; only for our pid', () => {
    const env = { LISTEN_FDS: '3', LISTEN_PID: '42', LISTEN_FDNAMES: 'ftp:pop3-110:unknown' };
    const fds = new ActivatedSockets(env, 42);
    assert.equal(fds.take(listener('pop3', 110)), 4);
    assert.equal(fds.take(listener('ftp', 21)), 3);
    assert.equal(fds.take(listener('pop3', 995)), 5);
    assert.equal(fds.take(listener('pop3', 1110)), undefined, 'no fd left: it binds itself');
    assert.equal(new ActivatedSockets(env, 43).count, 0, 'LISTEN_PID names another process');
  });

  describe('concierge start with a socket from systemd', () => {
    let dir: string;
    let configFile: string;
    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-activation-'));
      configFile = path.join(dir, 'tenants.json');
      // The configured port is never bound: the passed socket serves instead.
      await writeFile(configFile, JSON.stringify({ listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: await closedPort(), banner: 'activated' }], tenants: [] }));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    test('takes the passed listening socket instead of binding, and answers on it', async () => {
      // systemd's part: a listening socket, passed as fd 3, LISTEN_PID set to the service's own pid.
      const server = net.createServer();
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      const child = spawn('sh', ['-c', 'export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=pop3; exec "$0" --import tsx "$1" start --config "$2"', process.execPath, cli, configFile], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe', fd],
      });
      let stdout = '';
      child.stdout!.on('data', (c: Buffer) => (stdout += c));
      while (!stdout.includes('"message":"listening"')) await once(child.stdout!, 'data');
      server.close(); // our copy; the child keeps its own
      try {
        assert.match(stdout, /"from":"systemd"/);
        const client = await RawClient.connect(port);
        assert.equal(await client.line(), '+OK activated');
        assert.equal(await client.command('QUIT'), '+OK Bye');
        await client.closed;
      } finally {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const [code] = (await exited) as [number | null];
        assert.equal(code, 0);
      }
    });
  });
});
