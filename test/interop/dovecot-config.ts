import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

/** Who dovecot's helper processes and mail processes run as. */
export interface DovecotAccounts {
  /** default_internal_user / default_internal_group: auth, anvil, stats. */
  internalUser: string;
  internalGroup: string;
  /** default_login_user: the pop3-login processes. */
  loginUser: string;
  /** mail_uid / mail_gid: the pop3 processes; the Maildirs are chowned to them. */
  mailUser: string;
  mailUid: number;
  mailGid: number;
  /** Only root can chroot the login processes. */
  chroot: boolean;
}

/** Everything the throwaway dovecot.conf depends on. */
export interface DovecotConfigParams {
  dir: string;
  instanceName: string;
  port: number;
  passwdFile: string;
  logPath: string;
  accounts: DovecotAccounts;
  /** STLS (and only that: the one listener stays plaintext first) with this certificate and key. */
  ssl?: { cert: string; key: string };
  /** A second POP3 listener here that requires a PROXY header (v1 or v2) from loopback peers (dovecot's `haproxy = yes`). */
  haproxyPort?: number;
}

/** One line of the passwd-file that is both passdb and userdb. */
export interface PasswdEntry {
  user: string;
  password: string;
  home: string;
}

// Anything that would break a passwd-file line (fields are ':'-separated, one user a line).
const passwdUnsafe = /[:\r\n\0]/;

/** The accounts to use: the package's dovecot/dovenull users as root, the current user otherwise. */
export function pickAccounts(): DovecotAccounts {
  const me = userInfo();
  if (me.uid !== 0) {
    const group = groupName(me.gid) ?? String(me.gid);
    return {
      internalUser: me.username,
      internalGroup: group,
      loginUser: me.username,
      mailUser: me.username,
      mailUid: me.uid,
      mailGid: me.gid,
      chroot: false,
    };
  }
  const dovecot = passwdRecord('dovecot');
  if (dovecot === undefined || passwdRecord('dovenull') === undefined) {
    throw new Error('the dovecot and dovenull system users are missing: run .ci/install-interop.sh');
  }
  return {
    internalUser: 'dovecot',
    internalGroup: groupName(dovecot.gid) ?? 'dovecot',
    loginUser: 'dovenull',
    mailUser: 'dovecot',
    mailUid: dovecot.uid,
    mailGid: dovecot.gid,
    chroot: true,
  };
}

/** Renders the passwd-file; PLAIN passwords, uid/gid left to mail_uid/mail_gid. */
export function renderPasswdFile(entries: PasswdEntry[]): string {
  return entries
    .map(({ user, password, home }) => {
      if (user === '' || passwdUnsafe.test(user) || passwdUnsafe.test(password) || passwdUnsafe.test(home)) {
        throw new Error(`user ${JSON.stringify(user)}: user, password and home may not contain ':', CR, LF or NUL`);
      }
      return `${user}:{PLAIN}${password}::::${home}::\n`;
    })
    .join('');
}

/**
 * A self-contained dovecot 2.3 config: nothing from /etc, POP3 only, plaintext auth allowed,
 * no failure delay and no per-IP auth penalty, so wrong-password tests stay fast and independent.
 */
export function renderDovecotConfig(p: DovecotConfigParams): string {
  const a = p.accounts;
  return `# Written by test/interop/dovecot.ts; removed by stop().
instance_name = ${p.instanceName}
base_dir = ${p.dir}/run
state_dir = ${p.dir}/state
log_path = ${p.logPath}
protocols = pop3
listen = 127.0.0.1
${p.ssl ? `ssl = yes
ssl_cert = <${p.ssl.cert}
ssl_key = <${p.ssl.key}` : 'ssl = no'}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %u
auth_verbose = yes
auth_failure_delay = 0
default_internal_user = ${a.internalUser}
default_internal_group = ${a.internalGroup}
default_login_user = ${a.loginUser}
mail_uid = ${a.mailUser}
mail_gid = ${a.mailGid}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
${p.haproxyPort === undefined ? '' : 'haproxy_trusted_networks = 127.0.0.0/8\n'}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${p.passwdFile}
}
userdb {
  driver = passwd-file
  args = username_format=%u ${p.passwdFile}
}

service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${p.port}
  }${p.haproxyPort === undefined ? '' : `\n  inet_listener pop3-haproxy {\n    address = 127.0.0.1\n    port = ${p.haproxyPort}\n    haproxy = yes\n  }`}
${a.chroot ? '' : '  chroot =\n'}}

# Mode 0 removes the socket, which turns the per-IP auth penalty (up to 15 s) off.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;
}

function passwdRecord(name: string): { uid: number; gid: number } | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

function groupName(gid: number): string | undefined {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[2] === String(gid) && f[0] !== undefined) return f[0];
  }
  return undefined;
}
