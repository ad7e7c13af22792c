// A private, complete Postfix instance for the SMTP interop tests: `postfix -c <tmpdir>/etc start`
// with its own main.cf and master.cf, queue_directory, data_directory, mail and log all inside the temp
// directory, one smtpd on 127.0.0.1:<free port>, and virtual(8) delivery of the hosted addresses
// into Maildirs under <tmpdir>/mail. Nothing of the system's Postfix is used but the binaries: the
// package is installed unconfigured (.ci/install-interop.sh) and its service is never started.
//
// Why a whole instance and not an smtpd test tool: Postfix has no stand-alone smtpd (smtpd(8) only
// runs under master(8), and smtp-sink/smtp-source are Postfix's *test* tools, not its server), and
// the tests want what a tenant's real MX does: the peer address smtpd logs ("connect from
// unknown[127.0.0.2]"), its replies to MAIL/RCPT/DATA, and the delivered file.
//
// - `postfix start` returns once master(8) has initialised (it binds the smtpd socket then), so that
//   is the readiness signal; a probe from PROBE_ADDRESS then waits for the 220 (smtpd is started on
//   demand). `postfix stop` waits until master has exited; master takes its process group (every
//   Postfix daemon of the instance) with it, and stop() then waits, bounded, until no process of the
//   instance is left. Master's children carry the instance only in their environment
//   (MAIL_CONFIG=<dir>/etc), which is what `instanceProcesses` looks for.
// - Postfix needs root: master(8) runs as root and its daemons as `postfix`; mail is delivered as
//   `nobody`. Without root the test fails with that message; it never skips.
// - The log is main.cf's `maillog_file` (postlogd(8)), <tmpdir>/maillog, not syslog. (A fatal error
//   of the `postfix` command itself before that is set up goes to syslog or, on a terminal, stderr.)
// - Delivered files: virtual(8) writes the message as Postfix stores it, i.e. with LF line ends
//   (Postfix keeps records, not line terminators, and local delivery uses the UNIX convention), after
//   the Return-Path:, Delivered-To: and Received: headers it prepends. `deliveredMessages` returns
//   the part after those trace headers; it must equal what the client sent with CRLF read as LF.
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { closedPort as freePort } from '../support/fake-backend.js';
import { probeGreeting, tail, waitForLogEntries } from './daemon-wait.js';
import { processesWithEnvironment } from './processes.js';

const run = promisify(execFile);
export const POSTFIX = '/usr/sbin/postfix';
/** Source of the readiness probe, so a test can tell it from real clients in the log. */
export const PROBE_ADDRESS = '127.0.0.99';
export const POSTFIX_MISSING =
  'postfix is not installed: run `sudo .ci/install-interop.sh` before `npm run test:interop`';
export const POSTFIX_NEEDS_ROOT = 'the postfix interop test starts a private Postfix instance, which needs root (master(8) runs as root)';

export interface PostfixOptions {
  hostname: string;
  /** Mailboxes, `user@domain`: their domains become virtual_mailbox_domains. */
  mailboxes: string[];
  /** Extra main.cf lines, after the defaults (a later line overrides an earlier one: e.g. relayhost). */
  mainCf?: string[];
  /** Extra master.cf lines (services of the instance, e.g. an smtp client bound to an address). */
  masterCf?: string[];
}

export interface Postfix {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** The instance's maillog. */
  log(): Promise<string>;
  /** Waits (woken by appends, bounded) until the log holds `atLeast` lines matching `pattern`; returns them. */
  waitForLog(pattern: RegExp, atLeast: number, timeoutMs?: number): Promise<string[]>;
  /** The messages in `mailbox`'s Maildir (new/), oldest first, without the trace headers Postfix prepended. */
  deliveredMessages(mailbox: string): Promise<Buffer[]>;
  /** Processes of this instance still alive (for leak checks). */
  processes(): string[];
  stop(): Promise<void>;
}

const NOBODY = { uid: 65534, gid: 65534 };

function mainCf(dir: string, port: number, o: PostfixOptions): string {
  const domains = [...new Set(o.mailboxes.map((m) => m.slice(m.lastIndexOf('@') + 1)))];
  const maps = o.mailboxes.map((m) => `{${m} = ${m.slice(m.lastIndexOf('@') + 1)}/${m.slice(0, m.lastIndexOf('@'))}/}`).join(', ');
  return [
    'compatibility_level = 3.6',
    `queue_directory = ${dir}/queue`,
    `data_directory = ${dir}/data`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    `maillog_file = ${dir}/maillog`,
    `maillog_file_prefixes = ${dir}`,
    `myhostname = ${o.hostname}`,
    'mydomain = concierge.test',
    'myorigin = $myhostname',
    'mydestination =',
    'relayhost =',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.1/32',
    'smtpd_banner = $myhostname ESMTP',
    'alias_maps =',
    'alias_database =',
    'biff = no',
    // Clients from 127.0.0.2/3 get no header rewriting: no Message-Id:, Date: or From: added.
    'local_header_rewrite_clients =',
    // Mail for the hosted addresses only: everything else is "Relay access denied" (the default
    // smtpd_relay_restrictions), so Concierge's sources 127.0.0.2/3 are plain remote clients.
    `virtual_mailbox_domains = ${domains.join(', ')}`,
    `virtual_mailbox_base = ${dir}/mail`,
    `virtual_mailbox_maps = inline:{ ${maps} }`,
    `virtual_uid_maps = static:${NOBODY.uid}`,
    `virtual_gid_maps = static:${NOBODY.gid}`,
    // No resolver on a test machine: every client is logged as unknown[address], and nothing waits for DNS.
    'smtpd_peername_lookup = no',
    'smtpd_client_port_logging = yes',
    '',
  ].join('\n');
}

// Every service unchrooted (the queue directory is not set up as a chroot jail), postlogd for maillog_file.
const MASTER_CF = (port: number) =>
  [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    'pickup    unix  n       -       n       60      1       pickup',
    'cleanup   unix  n       -       n       -       0       cleanup',
    'qmgr      unix  n       -       n       300     1       qmgr',
    'rewrite   unix  -       -       n       -       -       trivial-rewrite',
    'bounce    unix  -       -       n       -       0       bounce',
    'defer     unix  -       -       n       -       0       bounce',
    'trace     unix  -       -       n       -       0       bounce',
    'verify    unix  -       -       n       -       1       verify',
    'flush     unix  n       -       n       1000?   0       flush',
    'proxymap  unix  -       -       n       -       -       proxymap',
    'smtp      unix  -       -       n       -       -       smtp',
    'relay     unix  -       -       n       -       -       smtp',
    'showq     unix  n       -       n       -       -       showq',
    'error     unix  -       -       n       -       -       error',
    'retry     unix  -       -       n       -       -       error',
    'discard   unix  -       -       n       -       -       discard',
    'local     unix  -       n       n       -       -       local',
    'virtual   unix  -       n       n       -       -       virtual',
    'anvil     unix  -       -       n       -       1       anvil',
    'scache    unix  -       -       n       -       1       scache',
    'postlog   unix-dgram n  -       n       -       1       postlogd',
    '',
  ].join('\n');

async function postfix(dir: string, command: string): Promise<void> {
  try {
    await run(POSTFIX, ['-c', join(dir, 'etc'), command], { timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const log = await readFile(join(dir, 'maillog'), 'utf8').catch(() => '');
    throw new Error(`postfix ${command} failed: ${e.stderr || e.message}\n--- maillog ---\n${tail(log)}`);
  }
}

/** Starts the instance; resolved once its smtpd has answered 220 (to a probe from PROBE_ADDRESS). */
export async function startPostfix(options: PostfixOptions): Promise<Postfix> {
  if (userInfo().uid !== 0) throw new Error(POSTFIX_NEEDS_ROOT);
  try {
    accessSync(POSTFIX, constants.X_OK);
  } catch {
    throw new Error(POSTFIX_MISSING);
  }
  const dir = await mkdtemp(join(tmpdir(), 'concierge-postfix-'));
  // postfix, nobody and the daemons must traverse it.
  await chmod(dir, 0o755);
  const port = await freePort();
  await mkdir(join(dir, 'data'), { mode: 0o700 });
  await chown(join(dir, 'data'), ...(await postfixIds()));
  await mkdir(join(dir, 'queue'), { mode: 0o755 });
  await mkdir(join(dir, 'mail'), { mode: 0o755 });
  await chown(join(dir, 'mail'), NOBODY.uid, NOBODY.gid);
  // The config directory apart from queue and mail: `postfix start` checks that all it holds is root's.
  await mkdir(join(dir, 'etc'), { mode: 0o755 });
  await writeFile(join(dir, 'etc', 'main.cf'), mainCf(dir, port, options) + (options.mainCf ?? []).map((l) => `${l}\n`).join(''));
  await writeFile(join(dir, 'etc', 'master.cf'), MASTER_CF(port) + (options.masterCf ?? []).map((l) => `${l}\n`).join(''));

  const instance = instanceOf(dir, port);
  // Safety net for a run that exits without stop() (a failed before(), --test-force-exit).
  const abandon = () => {
    try {
      execFileSync(POSTFIX, ['-c', join(dir, 'etc'), 'abort'], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // not running
    }
  };
  process.once('exit', abandon);
  try {
    await postfix(dir, 'start');
    await waitForGreeting(port, 15_000);
  } catch (err) {
    await instance.stop().catch(() => undefined);
    process.off('exit', abandon);
    throw err;
  }
  const stop = instance.stop;
  return {
    ...instance,
    async stop() {
      await stop();
      process.off('exit', abandon);
    },
  };
}

async function postfixIds(): Promise<[number, number]> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const entry = passwd.split('\n').find((l) => l.startsWith('postfix:'));
  if (entry === undefined) throw new Error(POSTFIX_MISSING);
  const [, , uid, gid] = entry.split(':');
  return [Number(uid), Number(gid)];
}

function instanceOf(dir: string, port: number): Postfix {
  const logPath = join(dir, 'maillog');
  const readLog = () => readFile(logPath, 'utf8').catch(() => '');
  const processes = () => processesWithEnvironment('MAIL_CONFIG', join(dir, 'etc'));
  let stopping: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    dir,
    log: readLog,
    waitForLog: (pattern, atLeast, timeoutMs = 10_000) => waitForLog(dir, logPath, pattern, atLeast, timeoutMs),
    async deliveredMessages(mailbox) {
      const at = mailbox.lastIndexOf('@');
      const newDir = join(dir, 'mail', mailbox.slice(at + 1), mailbox.slice(0, at), 'new');
      // Maildir names start with the delivery time in seconds, then a sequence: sort for order.
      const names = (await readdir(newDir).catch(() => [] as string[])).sort((x, y) => x.localeCompare(y, 'en', { numeric: true }));
      return Promise.all(names.map(async (n) => withoutTraceHeaders(await readFile(join(newDir, n)))));
    },
    processes,
    stop: () =>
      (stopping ??= (async () => {
        await run(POSTFIX, ['-c', join(dir, 'etc'), 'stop'], { timeout: 30_000 }).catch(() => undefined);
        // master is gone; its daemons get SIGTERM from it and exit on their own, promptly.
        for (let i = 0; processes().length > 0; i++) {
          if (i === 100) {
            await run(POSTFIX, ['-c', join(dir, 'etc'), 'abort']).catch(() => undefined);
            break;
          }
          await delay(50);
        }
        await rm(dir, { recursive: true, force: true });
      })()),
  };
}

const TRACE = /^(Return-Path|X-Original-To|Delivered-To|Received):/i;

/** Drops the leading trace headers virtual(8) and cleanup(8) add (Received: may be folded). */
export function withoutTraceHeaders(file: Buffer): Buffer {
  let at = 0;
  let inTrace = false;
  while (at < file.length) {
    const end = file.indexOf(0x0a, at);
    const line = file.subarray(at, end < 0 ? file.length : end).toString('latin1');
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (TRACE.test(line)) inTrace = true;
    else if (!(continuation && inTrace)) break;
    at = end < 0 ? file.length : end + 1;
  }
  return file.subarray(at);
}

function waitForLog(dir: string, logPath: string, pattern: RegExp, atLeast: number, timeoutMs: number): Promise<string[]> {
  return waitForLogEntries(dir, logPath, (log) => log.split('\n').filter((l) => pattern.test(l)), atLeast, timeoutMs, `maillog lines matching ${pattern}`);
}

/** Retries a connect (from PROBE_ADDRESS) until smtpd greets with 220, then QUITs. */
async function waitForGreeting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const outcome = await probeGreeting({ host: '127.0.0.1', port, localAddress: PROBE_ADDRESS }, '220 ', 5_000);
    if (outcome === true) return;
    if (Date.now() >= deadline) throw new Error(`no 220 from postfix on 127.0.0.1:${port} within ${timeoutMs} ms: ${outcome.message}`);
    // Paces the retries (5, 10, 20 … 100 ms); `postfix start` has already returned, so this is rare.
    await delay(Math.min(5 * 2 ** attempt, 100));
  }
}
