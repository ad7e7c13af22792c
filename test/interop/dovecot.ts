import { spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { failedLoginLine, loginLine, tail, waitForLines, type DovecotLogin, type LogWait } from './dovecot-log.js';
import { pickAccounts, renderDovecotConfig, renderPasswdFile, type PasswdEntry } from './dovecot-config.js';
import { writeMaildir, type MessageInput } from './maildir.js';
import { closedPort as freePort } from '../support/fake-backend.js';
import { probeGreeting } from './daemon-wait.js';

export type { DovecotLogin, LogWait } from './dovecot-log.js';

/** One mailbox: its login, its PLAIN password and its messages in POP3 order (strings get CRLF line ends). */
export interface DovecotUser {
  user: string;
  password: string;
  messages: MessageInput[];
}

export interface DovecotOptions {
  users: DovecotUser[];
  /** Bound on the wait for the first POP3 greeting; default 15 000. */
  startTimeoutMs?: number;
  /** Offer STLS with this certificate and key. */
  ssl?: { cert: string; key: string };
  /** Also listen on `haproxyPort`, where a PROXY header must come first (dovecot's `haproxy = yes`). */
  haproxy?: boolean;
}

/** A running throwaway dovecot; stop() kills it and removes `dir`. */
export interface DovecotInstance {
  host: '127.0.0.1';
  port: number;
  /** With `haproxy`: the port that requires a PROXY header. */
  haproxyPort: number | undefined;
  dir: string;
  /** Successful logins, oldest first, from the "Login:" lines. */
  logins(wait?: LogWait): Promise<DovecotLogin[]>;
  /** Failed logins, from the "(auth failed, …)" lines dovecot writes when such a connection closes. */
  failedLogins(wait?: LogWait): Promise<DovecotLogin[]>;
  /** The whole log, for diagnostics. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** What a failing interop test tells whoever runs it without dovecot. */
export const DOVECOT_MISSING =
  'dovecot (package dovecot-pop3d) is not installed: run `sudo .ci/install-interop.sh` before `npm run test:interop`';

const host = '127.0.0.1';
const stopTimeoutMs = 10_000;
const probeTimeoutMs = 2_000;
const maxPortAttempts = 3;

/** Where the dovecot binary is, looking at PATH and the sbin directories a non-root PATH may lack. */
export function dovecotBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs.filter((d) => d !== '')) {
    const candidate = join(dir, 'dovecot');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** True when the dovecot binary is installed. */
export function dovecotAvailable(): boolean {
  return dovecotBinary() !== undefined;
}

/** Starts a private dovecot POP3 server on a free 127.0.0.1 port, resolved once it has sent a greeting. */
export async function startDovecot(options: DovecotOptions): Promise<DovecotInstance> {
  const binary = dovecotBinary();
  if (binary === undefined) throw new Error(DOVECOT_MISSING);
  const names = new Set(options.users.map((u) => u.user));
  if (names.size !== options.users.length) throw new Error('startDovecot: duplicate user names');
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binary, options);
    } catch (err) {
      // The free port can be taken between our probe and dovecot's bind: pick another.
      if (!(err instanceof PortTakenError) || attempt >= maxPortAttempts) throw err;
    }
  }
}

class PortTakenError extends Error {}

type Exit = { code: number | null; signal: NodeJS.Signals | null; error?: Error };

async function startOnce(binary: string, options: DovecotOptions): Promise<DovecotInstance> {
  const dir = await mkdtemp(join(tmpdir(), 'concierge-dovecot-'));
  // The auth process (internal user) and the mail processes must traverse it.
  await chmod(dir, 0o755);
  const logPath = join(dir, 'dovecot.log');
  const confPath = join(dir, 'dovecot.conf');
  try {
    const accounts = pickAccounts();
    const asRoot = accounts.chroot;
    const entries: PasswdEntry[] = [];
    // Explicit modes: the caller's umask may be 077, and the mail user must traverse this.
    await mkdir(join(dir, 'home'));
    await chmod(join(dir, 'home'), 0o755);
    for (const [i, u] of options.users.entries()) {
      const home = join(dir, 'home', String(i));
      await writeMaildir(home, u.messages, asRoot ? { uid: accounts.mailUid, gid: accounts.mailGid } : undefined);
      entries.push({ user: u.user, password: u.password, home });
    }
    const passwdFile = join(dir, 'passwd');
    await writeFile(passwdFile, renderPasswdFile(entries), { mode: asRoot ? 0o640 : 0o600 });
    if (asRoot) await chown(passwdFile, 0, accounts.mailGid);
    await mkdir(join(dir, 'state'));
    const port = await freePort();
    const haproxyPort = options.haproxy ? await freePort() : undefined;
    const instanceName = basename(dir);
    await writeFile(confPath, renderDovecotConfig({ dir, instanceName, port, passwdFile, logPath, accounts, ssl: options.ssl, haproxyPort }));
    return await launch(binary, { dir, port, haproxyPort, confPath, logPath, startTimeoutMs: options.startTimeoutMs ?? 15_000 });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

interface LaunchParams {
  dir: string;
  port: number;
  haproxyPort: number | undefined;
  confPath: string;
  logPath: string;
  startTimeoutMs: number;
}

async function launch(binary: string, p: LaunchParams): Promise<DovecotInstance> {
  // Own process group: if the master ever has to be SIGKILLed, its helpers go with it.
  const child = spawn(binary, ['-F', '-c', p.confPath], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-16_384);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exitInfo: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (error) => resolve((exitInfo = { code: null, signal: null, error })));
    child.once('exit', (code, signal) => resolve((exitInfo = { code, signal })));
  });
  const pid = child.pid;
  const killGroup = () => {
    if (exitInfo === undefined && pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  // Safety net for a test run that exits without calling stop() (a failed assertion, --test-force-exit).
  const abandon = () => {
    killGroup();
    rmSync(p.dir, { recursive: true, force: true });
  };
  process.once('exit', abandon);

  const readLog = () => readFile(p.logPath, 'utf8').catch(() => '');
  try {
    await waitForGreeting(p.port, p.startTimeoutMs, exited);
  } catch (err) {
    killGroup();
    await exited;
    process.off('exit', abandon);
    const log = await readLog();
    if (/Address already in use/.test(output + log)) throw new PortTakenError(`port ${p.port} taken`);
    throw new Error(`dovecot did not start (${(err as Error).message})\n--- output ---\n${output}\n--- log ---\n${tail(log)}`);
  }

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (exitInfo === undefined) {
        child.kill('SIGTERM');
        // dovecot's master waits ~1 s for its log process before exiting.
        const timer = setTimeout(killGroup, stopTimeoutMs).unref();
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', abandon);
      await rm(p.dir, { recursive: true, force: true });
    })());

  return {
    host,
    port: p.port,
    haproxyPort: p.haproxyPort,
    dir: p.dir,
    logins: (wait) => waitForLines(p.dir, p.logPath, loginLine, wait),
    failedLogins: (wait) => waitForLines(p.dir, p.logPath, failedLoginLine, wait),
    log: readLog,
    stop,
  };
}

/** Retries a connect until dovecot answers "+OK"; each refused connect is what says "not yet". */
async function waitForGreeting(port: number, timeoutMs: number, exited: Promise<Exit>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exit = exited.then((e) => new Error(`dovecot exited early: ${e.error?.message ?? `code ${e.code}, signal ${e.signal}`}`));
  for (let attempt = 0; ; attempt++) {
    const outcome = await Promise.race([probeGreeting({ host, port }, '+OK', probeTimeoutMs), exit.then((e) => ({ fatal: e }))]);
    if (outcome === true) return;
    if ('fatal' in outcome) throw outcome.fatal;
    if (Date.now() >= deadline) throw new Error(`no POP3 greeting on ${host}:${port} within ${timeoutMs} ms: ${outcome.message}`);
    // Paces the retries (5, 10, 20 … 100 ms) so they do not starve dovecot of CPU while it starts.
    await delay(Math.min(5 * 2 ** attempt, 100));
  }
}
