import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import Pop3Command from 'node-pop3';
import { closedPort } from './support/fake-backend.js';

const root = path.join(import.meta.dirname, '..');
const cli = path.join(root, 'src', 'cli.ts');

/** Runs the CLI to completion. */
async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: root });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c));
  child.stderr.on('data', (c: Buffer) => (stderr += c));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/**
 * A CLI child whose output is kept. `waitFor` resolves once stdout matches, and rejects with the
 * exit status and stderr if the child exits first (rather than leaving the test pending).
 */
function watch(child: ReturnType<typeof spawn>): { readonly stdout: () => string; waitFor(pattern: RegExp | string): Promise<void> } {
  let stdout = '';
  let stderr = '';
  let exited: string | undefined;
  let wake: Array<() => void> = [];
  const notify = () => {
    const w = wake;
    wake = [];
    for (const f of w) f();
  };
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c;
    notify();
  });
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  child.once('exit', (code, signal) => {
    exited = `exited ${code ?? signal}`;
    notify();
  });
  return {
    stdout: () => stdout,
    async waitFor(pattern) {
      const matches = () => (typeof pattern === 'string' ? stdout.includes(pattern) : pattern.test(stdout));
      while (!matches()) {
        if (exited) throw new Error(`the child ${exited} before ${String(pattern)}\nstderr: ${stderr}\nstdout: ${stdout.slice(-4000)}`);
        await new Promise<void>((resolve) => wake.push(resolve));
      }
    },
  };
}

describe('concierge CLI', () => {
  let dir: string;
  let demoConfig: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-cli-'));
    // The repository's demo config, moved to free ports so the test never collides with a running demo.
    const raw = JSON.parse(await readFile(path.join(root, 'tenants.json'), 'utf8'));
    for (const listener of raw.listeners) listener.port = 0;
    for (const [i, server] of raw.demo.pop3Servers.entries()) {
      server.port = await closedPort();
      server.maildir = path.join(root, server.maildir);
      raw.tenants[i].backends.pop3[0].port = server.port;
    }
    for (const [i, server] of raw.demo.ftpServers.entries()) {
      server.port = await closedPort();
      server.root = path.join(root, server.root);
      raw.tenants[i].backends.ftp[0].port = server.port;
    }
    for (const [i, server] of raw.demo.smtpServers.entries()) {
      server.port = await closedPort();
      // The entry after the tenants' backends is the relay's sink (the outside world).
      if (i < raw.tenants.length) raw.tenants[i].backends.smtp[0].port = server.port;
      else raw.relay.transports['*'] = `127.0.0.1:${server.port}`;
    }
    raw.relay.spool = path.join(dir, 'relay-spool');
    demoConfig = path.join(dir, 'demo.json');
    await writeFile(demoConfig, JSON.stringify(raw));
    await writeFile(path.join(dir, 'bad.json'), JSON.stringify({ listeners: [{ protocol: 'pop3', address: 'nowhere', port: 110 }], tenants: [{ domain: 'a.example', bogus: 1 }] }));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('check accepts the demo config', async () => {
    const r = await run(['check', '--config', path.join(root, 'tenants.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok \(4 listener\(s\), 2 tenant\(s\)\)/);
  });

  test('check prints every problem with its JSON path and exits 1', async () => {
    const r = await run(['check', '--config', path.join(dir, 'bad.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /listeners\[0\]\.address: /);
    assert.match(r.stderr, /tenants\[0\]: .*bogus/);
  });

  test('route explains tenant, backends, source address and backend user', async () => {
    const r = await run(['route', 'alice@A.example', '--protocol', 'pop3', '--config', path.join(root, 'tenants.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /tenant: +a\.example \(matched by domain\)/);
    assert.match(r.stdout, /backends: +127\.0\.0\.1:11001/);
    assert.match(r.stdout, /source address: +127\.0\.0\.2/);
    assert.match(r.stdout, /backend user: +alice \(backendUser: local\)/);
  });

  test('route says why there is no route', async () => {
    const r = await run(['route', 'alice@c.example', '--config', path.join(root, 'tenants.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /no tenant has the domain or alias "c\.example"/);
  });

  test('reload signals the instance named by its pid file, which re-reads its config; the pid file goes on exit', async () => {
    const config = path.join(dir, 'reload.json');
    const pidFile = path.join(dir, 'concierge.pid');
    const tenants = (aliases: string[]) => JSON.stringify({ listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }], tenants: [{ domain: 'a.example', aliases, backends: { pop3: [{ host: '127.0.0.1', port: 1 }] } }] });
    await writeFile(config, tenants([]));
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'start', '--config', config, '--pid-file', pidFile], { cwd: root });
    const instance = watch(child);
    try {
      await instance.waitFor('"message":"listening"');
      assert.equal((await readFile(pidFile, 'utf8')).trim(), String(child.pid));
      await writeFile(config, tenants(['mail.a.example']));
      const r = await run(['reload', '--pid-file', pidFile]);
      assert.equal(r.code, 0, r.stderr);
      await instance.waitFor('"message":"tenants reloaded"');
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0);
    }
    await assert.rejects(readFile(pidFile), 'the pid file is removed on exit');
    const missing = await run(['reload', '--pid-file', pidFile]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read/);
  });

  test('demo serves both demo tenants and the printed command’s login works; SIGTERM exits 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'demo', '--config', demoConfig], { cwd: root });
    const demo = watch(child);
    try {
      await demo.waitFor('Ctrl-C');
      const stdout = demo.stdout();
      const port = Number(/pop3:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)![1]);
      for (const tenant of ['a', 'b']) {
        const password = new RegExp(`alice@${tenant}\\.example:([^']+)'`).exec(stdout)![1]!;
        const pop3 = new Pop3Command({ host: '127.0.0.1', port, user: `alice@${tenant}.example`, password });
        assert.match(await pop3.RETR(1), new RegExp(`${tenant}\\.example`));
        await pop3.QUIT();
      }
      // The printed FTP lines work too, passive and active, each tenant its own welcome file.
      for (const tenant of ['a', 'b']) {
        const lines = stdout.split('\n').filter((l) => l.includes(`alice@${tenant}.example`) && l.includes('ftp://'));
        assert.equal(lines.length, 2, stdout);
        for (const line of lines) {
          const args = line.trim().split(/\s+/).slice(1).map((a) => a.replace(/^'|'$/g, ''));
          const { stdout: body } = await promisify(execFile)('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' });
          assert.match(body, new RegExp(`tenant ${tenant}\\.example`));
        }
      }
      // The printed SMTP lines deliver to each tenant's sink, which sees the tenant's source address.
      for (const [tenant, source] of [['a', '127.0.0.2'], ['b', '127.0.0.3']] as const) {
        const line = stdout.split('\n').find((l) => l.includes(`--mail-rcpt alice@${tenant}.example`));
        assert.ok(line, stdout);
        await promisify(execFile)('sh', ['-c', line.trim()]);
        const delivered = new RegExp(`"message":"demo SMTP backend received a message","backendOf":"${tenant}\\.example".*"remoteAddress":"${source.replaceAll('.', '\\.')}"`);
        await demo.waitFor(delivered);
      }
      // The printed relay lines: each tenant's mail reaches the outside world from the tenant's address, with its name.
      for (const [tenant, source] of [['a', '127.0.0.2'], ['b', '127.0.0.3']] as const) {
        const line = stdout.split('\n').find((l) => l.includes(`--mail-from web@${tenant}.example`));
        assert.ok(line, stdout);
        await promisify(execFile)('sh', ['-c', line.trim()]);
        const delivered = new RegExp(`"message":"demo mail sink \\(the outside world\\) received a message","from":"web@${tenant}\\.example".*"remoteAddress":"${source.replaceAll('.', '\\.')}","helo":"${tenant}\\.example"`);
        await demo.waitFor(delivered);
      }
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0);
    }
  });
});

describe('the TLS demo, as the README runs it', () => {
  test('openssl makes the certificate, `demo --config demo/tenants-tls.json` serves POP3S, STLS and STARTTLS, and the printed curl lines work', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-tls-demo-'));
    try {
      // The README's commands, in a copy of the demo folder's config (its relative paths resolved).
      const raw = JSON.parse(await readFile(path.join(root, 'demo', 'tenants-tls.json'), 'utf8'));
      for (const l of raw.listeners) l.port = 0;
      for (const d of raw.demo.pop3Servers) d.maildir = path.join(root, 'demo', d.maildir);
      const config = path.join(dir, 'tenants-tls.json');
      await writeFile(config, JSON.stringify(raw));
      const readme = await readFile(path.join(root, 'README.md'), 'utf8');
      const opensslLine = /mkdir -p demo\/tls && (openssl req [^\n]*\\\n[^\n]*)/.exec(readme)![1]!.replace('\\\n', ' ');
      await promisify(execFile)('sh', ['-c', `mkdir -p tls && ${opensslLine.replaceAll('demo/tls/', 'tls/')}`], { cwd: dir });
      const child = spawn(process.execPath, ['--import', 'tsx', cli, 'demo', '--config', config], { cwd: root });
      const demo = watch(child);
      try {
        await demo.waitFor('Ctrl-C');
        const stdout = demo.stdout();
        assert.match(stdout, /POP3 front door \(TLS\)/);
        assert.match(stdout, /POP3 front door \(STARTTLS required\)/);
        const pop3Lines = stdout.split('\n').filter((l) => /curl .*pop3s?:\/\//.test(l));
        assert.equal(pop3Lines.length, 4, stdout);
        for (const line of pop3Lines) {
          const args = line.trim().split(/\s+/).slice(1).map((a) => a.replace(/^'|'$/g, ''));
          const { stdout: body } = await promisify(execFile)('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' });
          assert.match(body, /alice/, line);
        }
        const plain = /pop3:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)![1];
        await assert.rejects(promisify(execFile)('curl', ['-sS', '--max-time', '10', '-u', 'alice@a.example:alice-a-secret', `pop3://127.0.0.1:${plain}/1`]), 'plaintext login refused');
        const smtpLine = stdout.split('\n').find((l) => l.includes('--mail-rcpt alice@b.example'));
        assert.ok(smtpLine && smtpLine.includes('--ssl-reqd'), stdout);
        await promisify(execFile)('sh', ['-c', smtpLine.trim()]);
        await demo.waitFor(/"demo SMTP backend received a message","backendOf":"b\.example"/);
      } finally {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const [code] = (await exited) as [number | null];
        assert.equal(code, 0);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
