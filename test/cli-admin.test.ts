import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { DemoPop3Server } from '../demo/pop3-server.js';
import { makeMaildir, message } from './support/maildir.js';
import { sampleValue } from './support/prometheus.js';
import { RawClient } from './support/raw-client.js';

const root = path.join(import.meta.dirname, '..');
const cli = path.join(root, 'src', 'cli.ts');

test('concierge start: the admin listener serves /metrics; on SIGTERM /healthz says 503 while a session drains, then exit 0', async () => {
  const mail = await makeMaildir({ alice: { password: 'pw', messages: [message('alice@a.example', 'hello')] } });
  const backend = new DemoPop3Server({ maildir: mail.dir });
  await backend.listen();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-admin-'));
  const config = path.join(dir, 'tenants.json');
  await writeFile(
    config,
    JSON.stringify({
      admin: { port: 0 },
      limits: { shutdownGraceMs: 30_000, authFailDelayMs: 0 },
      listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }],
      tenants: [{ domain: 'a.example', backends: { pop3: [{ host: '127.0.0.1', port: backend.port }] } }],
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'start', '--config', config], { cwd: root });
  const records: Array<Record<string, any>> = [];
  let partial = '';
  let wake = () => {};
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) records.push(JSON.parse(line));
    wake();
  });
  const exited = once(child, 'exit');
  /** The first log record with this message (waits for it). */
  const logged = async (message: string): Promise<Record<string, any>> => {
    for (;;) {
      const found = records.find((r) => r.message === message);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`exited before "${message}"`);
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
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
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await backend.close();
    await mail.remove();
    await rm(dir, { recursive: true, force: true });
  }
});
