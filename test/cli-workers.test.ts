import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { DemoPop3Server } from '../demo/pop3-server.js';
import { makeMaildir, message } from './support/maildir.js';
import { sampleValue } from './support/prometheus.js';
import { startCli } from './support/cli-instance.js';
import { RawClient } from './support/raw-client.js';

/** One login and QUIT; resolves once the proxy has closed the connection. */
async function loginOnce(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  assert.match(await c.line(), /^\+OK/);
  assert.match(await c.command('USER alice@a.example'), /^\+OK/);
  assert.match(await c.command('PASS pw'), /^\+OK/);
  assert.match(await c.command('QUIT'), /^\+OK/);
  await c.closed;
}

test('concierge start with workers: 2: both workers serve sessions, /metrics sums them, a killed worker is replaced, SIGHUP and SIGTERM reach every worker', async () => {
  const mail = await makeMaildir({ alice: { password: 'pw', messages: [message('alice@a.example', 'hello')] } });
  const backend = new DemoPop3Server({ maildir: mail.dir });
  await backend.listen();
  const instance = await startCli(
    {
      workers: 2,
      admin: { port: 0 },
      limits: { authFailDelayMs: 0 },
      listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }],
      tenants: [{ domain: 'a.example', backends: { pop3: [{ host: '127.0.0.1', port: backend.port }] } }],
    },
    'concierge-workers-',
  );
  const { child, dir, exited } = instance;
  const logged = instance.logged;
  try {
    const listening = await logged('listening', 2);
    const port: number = listening[0]!.port;
    assert.equal(listening[1]!.port, port, 'the workers share one listening port');
    const adminPort: number = (await logged('admin listening'))[0]!.port;
    const admin = (p: string) => fetch(`http://127.0.0.1:${adminPort}${p}`);
    assert.equal((await admin('/healthz')).status, 200);

    const LOGINS = 20;
    for (let i = 0; i < LOGINS; i++) await loginOnce(port);
    const servedBy = new Set((await logged('login ok', LOGINS)).map((r) => String(r.sid).split('-')[0]));
    assert.equal(servedBy.size, 2, 'sessions were spread over both workers (session ids start with the pid)');
    const text = await (await admin('/metrics')).text();
    assert.equal(sampleValue(text, 'concierge_logins_ok_total', { tenant: 'a.example', protocol: 'pop3' }), LOGINS, 'the primary sums the workers');
    assert.equal(sampleValue(text, 'concierge_sessions_started_total', { protocol: 'pop3' }), LOGINS);

    const started = await logged('worker started', 2);
    process.kill(started[0]!.pid, 'SIGKILL');
    const [died] = await logged('worker died: restarting it');
    assert.equal(died!.signal, 'SIGKILL');
    await logged('worker started', 3);
    await logged('listening', 3);
    for (let i = 0; i < 4; i++) await loginOnce(port);

    child.kill('SIGHUP');
    await logged('tenants reloaded', 2);

    child.kill('SIGTERM');
    await logged('worker stopped', 2);
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await backend.close();
    await mail.remove();
    await rm(dir, { recursive: true, force: true });
  }
});
