import { readdirSync, readFileSync } from 'node:fs';

/** Like `pgrep -f text`, without needing procps: dovecot's helpers carry the instance name (the dir's basename). */
export function processesMentioning(dir: string): string[] {
  const needle = dir.split('/').at(-1) ?? dir;
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      if (cmdline.includes(needle)) found.push(`${pid} ${cmdline}`);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Processes whose environment holds `name=value` (Postfix's daemons carry their instance only as MAIL_CONFIG). */
export function processesWithEnvironment(name: string, value: string): string[] {
  const wanted = `${name}=${value}`;
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(wanted)) continue;
      found.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`);
    } catch {
      // exited while we looked, or not ours to read
    }
  }
  return found;
}
