import { tail, waitForLogEntries } from './daemon-wait.js';

/** One login as dovecot logged it: rip is the peer address dovecot saw (no login_trusted_networks). */
export interface DovecotLogin {
  user: string;
  rip: string;
  lip?: string;
  method?: string;
  /** The login came over TLS (dovecot writes "TLS" among the fields). */
  tls?: true;
}

/** Wait until the log holds at least `atLeast` matching lines (dovecot logs asynchronously). */
export interface LogWait {
  atLeast?: number;
  /** Default 5 000; on expiry the promise rejects with the log's tail. */
  timeoutMs?: number;
}

// pop3-login: Info: Login: user=<alice>, method=PLAIN, rip=127.0.0.2, lip=127.0.0.1, mpid=42, session=<…>
/** A successful login. */
export const loginLine = /-login: Info: Login: user=<([^>]*)>, (.*)$/;
// pop3-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 0 secs): user=<alice>, method=PLAIN, rip=…
/** A failed login, written when that connection closes. */
export const failedLoginLine = /-login: Info: Disconnected: .*?\(auth failed, [^)]*\): user=<([^>]*)>, (.*)$/;

/** The logins a log holds, oldest first. */
export function parseLogins(log: string, pattern: RegExp): DovecotLogin[] {
  const found: DovecotLogin[] = [];
  for (const line of log.split('\n')) {
    const m = pattern.exec(line);
    if (m === null) continue;
    // "method=PLAIN, rip=127.0.0.2, lip=127.0.0.1, mpid=42, secured, session=<…>"
    const fields = new Map(
      (m[2] ?? '').split(', ').map((kv) => {
        const eq = kv.indexOf('=');
        return eq < 0 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
      }),
    );
    const rip = fields.get('rip');
    if (rip === undefined) continue;
    const entry: DovecotLogin = { user: m[1] ?? '', rip };
    const lip = fields.get('lip');
    const method = fields.get('method');
    if (lip !== undefined) entry.lip = lip;
    if (method !== undefined) entry.method = method;
    if (fields.has('TLS')) entry.tls = true;
    found.push(entry);
  }
  return found;
}

/** Reads the log until it holds `wait.atLeast` lines matching `pattern`, woken by appends to it. */
export function waitForLines(dir: string, logPath: string, pattern: RegExp, wait: LogWait = {}): Promise<DovecotLogin[]> {
  return waitForLogEntries(dir, logPath, (log) => parseLogins(log, pattern), wait.atLeast ?? 0, wait.timeoutMs ?? 5_000, `lines matching ${pattern}`);
}

export { tail };
