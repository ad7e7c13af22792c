import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { DemoPop3Server } from '../demo/pop3-server.js';
import { makeMaildir, message } from './support/maildir.js';
import { sampleValue } from './support/prometheus.js';
import { startCli } from './support/cli-instance.js';
import { RawClient } from './support/raw-client.js';

test('concierge start: the admin listener serves /metrics; on SIGTERM /healthz says 503 while a session drains, then exit 0', async () => {
  const mail = await makeMaildir({ alice: { password: 'pw', messages: [message('alice@a.example', 'hello')] } });
  const backend = new DemoPop3Server({ maildir: mail.dir });
  await backend.listen();
  const instance = await startCli(
    {
      admin: { port: 0 },
      limits: { shutdownGraceMs: 30_000, authFailDelayMs: 0 },
      listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }],
      tenants: [{ domain: 'a.example', backends: { pop3: [{ host: '127.0.0.1', port: backend.port }] } }],
    },
    'concierge-admin-',
  );
  const { child, dir, exited } = instance;
  /** The first log record with this message (waits for it). */
  const logged = async (message: string) => (await instance.logged(message))[0]!;
  try {
    const pop3Port: number = (await logged('listening')).port;
    const adminPort: number = (await logged('admin listening')).port;
    const admin = (p: string) => fetch(`http://127.0.0.1:${adminPort}${p}`);
    assert.equal((await admin('/healthz')).status, 200);

    const c = await RawClient.connect(pop3Port);
    await c.line();
    await c.command('USER alice@a.example');
    assert.match(await c.command('PASS pw'), /^\+OK/);
    const text = await (await admin('/metrics')).text();
    assert.equal(sampleValue(text, 'concierge_logins_ok_total', { tenant: 'a.example', protocol: 'pop3' }), 1);
    assert.equal(sampleValue(text, 'concierge_sessions_active', { protocol: 'pop3' }), 1);
    assert.ok((sampleValue(text, 'process_cpu_user_seconds_total') ?? 0) > 0);

    child.kill('SIGTERM');
    await logged('stopping: logged-in sessions may finish (a second signal cuts them)');
    assert.equal((await admin('/healthz')).status, 503);
    assert.match(await c.command('STAT'), /^\+OK 1 /, 'the logged-in session drains');
    await c.command('QUIT');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await backend.close();
    await mail.remove();
    await rm(dir, { recursive: true, force: true });
  }
});
