/**
 * A throwaway dovecot POP3 backend on a free 127.0.0.1 port, tuned like the team harness's
 * (../shared/bench/setup.sh): high-performance login (one pop3-login process for many
 * clients), pop3 process reuse, no per-login Info lines, no fsync. The test suite's harness
 * (test/interop/dovecot.ts) is not used: it forks a login process per connection and logs every
 * login at Info for its assertions, which would make dovecot the cost being measured, and it
 * is being changed by someone else right now.
 *
 * With BackendData.tls it also listens for POP3S (ssl = yes on a second inet_listener of the
 * same pop3-login service); the plain listener then offers STLS too, which nobody here uses.
 *
 * Root: the mail is owned by nobody:nogroup and dovecot uses its own dovecot/dovenull users.
 * Not root: everything runs as the current user, without chroot.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import type { Backend, BackendData } from './backends.js';
import { spawnChild } from './children.js';
import { bulkAccount, DOMAIN, SMALL_MESSAGES, smallMessage, writeMessages } from './mail-data.js';
import { freePort, waitForGreeting } from './net-util.js';

export function dovecotBinary(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, 'dovecot'), constants.X_OK);
      return path.join(dir, 'dovecot');
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function startDovecot(data: BackendData): Promise<Backend> {
  const binary = dovecotBinary();
  if (!binary) throw new Error('dovecot is not installed (apt-get install dovecot-core dovecot-pop3d)');
  const root = path.join(data.dir, 'dovecot');
  const mail = path.join(root, 'mail');
  await mkdir(path.join(root, 'state'), { recursive: true });
  const users = [...data.accounts, bulkAccount];
  for (const a of data.accounts) {
    await writeMessages(path.join(mail, DOMAIN, a.local, 'Maildir', 'cur'), Array.from({ length: SMALL_MESSAGES }, (_, i) => smallMessage(a.login, i + 1)));
  }
  await writeMessages(path.join(mail, DOMAIN, bulkAccount.local, 'Maildir', 'cur'), [data.big.bytes]);
  for (const u of users) {
    for (const sub of ['new', 'tmp']) await mkdir(path.join(mail, DOMAIN, u.local, 'Maildir', sub), { recursive: true });
  }
  const passwd = path.join(root, 'users');
  await writeFile(passwd, users.map((a) => `${a.login}:{PLAIN}${a.password}::::::\n`).join(''), { mode: 0o644 });
  // The temp dirs above us are 0700 from mkdtemp: dovecot's unprivileged processes must traverse them.
  for (let d = root; d.startsWith(data.dir); d = path.dirname(d)) await chmod(d, 0o755);

  const asRoot = userInfo().uid === 0;
  let accounts: string;
  let userdbArgs: string;
  if (asRoot) {
    // mail processes run as nobody:nogroup (as in the team harness); they write index files into the Maildirs
    execFileSync('chown', ['-R', 'nobody:nogroup', mail]);
    accounts = 'default_internal_user = dovecot\ndefault_login_user = dovenull';
    userdbArgs = 'uid=nobody gid=nogroup';
  } else {
    const me = userInfo();
    accounts = `default_internal_user = ${me.username}\ndefault_internal_group = ${groupOf(me.gid)}\ndefault_login_user = ${me.username}\nfirst_valid_uid = 1\nfirst_valid_gid = 1`;
    userdbArgs = `uid=${me.uid} gid=${me.gid}`;
  }

  const port = await freePort();
  const tlsPort = data.tls ? await freePort() : 0;
  const logPath = path.join(root, 'dovecot.log');
  const conf = path.join(root, 'dovecot.conf');
  await writeFile(
    conf,
    `# written by bench/lib/dovecot.ts; removed with its temp dir
instance_name = ${path.basename(data.dir)}
base_dir = ${root}/base
state_dir = ${root}/state
protocols = pop3
listen = 127.0.0.1
${data.tls ? `ssl = yes\nssl_cert = <${data.tls.cert}\nssl_key = <${data.tls.key}` : 'ssl = no'}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = ${logPath}
# an Info line per login/logout would cost dovecot's log process real CPU
info_log_path = /dev/null
mail_location = maildir:~/Maildir
maildir_very_dirty_syncs = yes
mail_fsync = never
default_process_limit = 3000
default_client_limit = 12000
default_vsz_limit = 1G
pop3_no_flag_updates = yes
pop3_uidl_format = %08Xu%08Xv
${accounts}
protocol pop3 {
  mail_max_userip_connections = 10000
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener pop3s {
${data.tls ? `    address = 127.0.0.1\n    port = ${tlsPort}\n    ssl = yes` : '    port = 0'}
  }
  service_count = 0
  process_min_avail = 2
${asRoot ? '' : '  chroot =\n'}}
service pop3 {
  service_count = 1000
  process_limit = 3000
}
# no per-IP auth penalty (all proxied logins come from one address)
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${passwd}
}
userdb {
  driver = static
  args = ${userdbArgs} home=${mail}/%d/%n
}
`,
  );
  // Own process group (detached): stopping it also takes its helpers.
  const child = spawnChild('dovecot', binary, ['-F', '-c', conf], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString('utf8')).slice(-8000);
  };
  child.process.stdout?.on('data', keep);
  child.process.stderr?.on('data', keep);
  const endpoint = { host: '127.0.0.1', port };
  const tlsEndpoint = data.tls ? { host: '127.0.0.1', port: tlsPort, tls: data.tls.client } : undefined;
  try {
    for (const e of [endpoint, ...(tlsEndpoint ? [tlsEndpoint] : [])]) await waitForGreeting(e, 20_000, () => child.hasExited());
  } catch (err) {
    await child.stop(1_000);
    const log = await readFile(logPath, 'utf8').catch(() => '');
    throw new Error(`dovecot did not start: ${(err as Error).message}\n${output}\n${log.split('\n').slice(-20).join('\n')}`);
  }
  const version = (() => {
    try {
      return execFileSync(binary, ['--version']).toString().trim().split(' ')[0];
    } catch {
      return '?';
    }
  })();
  return {
    kind: 'dovecot',
    endpoint,
    ...(tlsEndpoint ? { tlsEndpoint } : {}),
    pid: child.pid,
    tree: true,
    description: `dovecot ${version} (master pid ${child.pid}, tuned like ../shared/bench/setup.sh: service_count=0 login, pop3 reuse, info log off${tlsEndpoint ? '; POP3S on a second listener of the same pop3-login service, ssl = yes' : ''})`,
    stop: () => child.stop(10_000),
  };
}

function groupOf(gid: number): string {
  try {
    return execFileSync('getent', ['group', String(gid)]).toString().split(':')[0] || String(gid);
  } catch {
    return String(gid);
  }
}
