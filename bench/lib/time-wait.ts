/**
 * TCP sockets in TIME_WAIT, from /proc/net/tcp (IPv4). Concierge binds every backend dial to the
 * tenant's source address (127.0.0.2 here) before it connects, and the kernel's search for a
 * free port walks ports that sockets of *any* address hold. With tens of thousands of sockets on
 * a shared machine (other people's runs, which also use 127.0.0.2), that search shows up as the
 * proxy's kernel time, so the report says how many there were.
 */
import { readFileSync } from 'node:fs';

const TIME_WAIT = '06';

export interface SocketCounts {
  /** In TIME_WAIT with the given local address. */
  readonly timeWaitFromSource: number;
  /** In TIME_WAIT, any address. */
  readonly timeWait: number;
  /** Every IPv4 TCP socket on the machine, listening ones included. */
  readonly all: number;
}

/** /proc/net/tcp writes an IPv4 address as 8 hex digits in host (little-endian) byte order. */
function procHex(ipv4: string): string {
  return ipv4
    .split('.')
    .reverse()
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}

/** Counts for `source`; undefined when /proc/net/tcp is unreadable. */
export function socketCounts(source: string): SocketCounts | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/net/tcp', 'latin1');
  } catch {
    return undefined;
  }
  const prefix = `${procHex(source)}:`;
  let timeWaitFromSource = 0;
  let timeWait = 0;
  let all = 0;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    all++;
    if (f[3] !== TIME_WAIT) continue;
    timeWait++;
    if (f[1]!.startsWith(prefix)) timeWaitFromSource++;
  }
  return { timeWaitFromSource, timeWait, all };
}
