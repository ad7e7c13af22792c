/**
 * TCP sockets in TIME_WAIT whose local address is one IPv4 address, from /proc/net/tcp.
 * Concierge binds every backend dial to the tenant's source address (127.0.0.2 here) before it
 * connects; with thousands of TIME_WAIT sockets on that address the kernel's search for a free
 * port shows up as the proxy's kernel time. Other people's runs on a shared machine use the same
 * address, so the report says how many there were.
 */
import { readFileSync } from 'node:fs';

const TIME_WAIT = '06';

/** /proc/net/tcp writes an IPv4 address as 8 hex digits in host (little-endian) byte order. */
function procHex(ipv4: string): string {
  return ipv4
    .split('.')
    .reverse()
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}

/** How many sockets are in TIME_WAIT from `ipv4` (any port); undefined when /proc/net/tcp is unreadable. */
export function timeWaitFrom(ipv4: string): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/net/tcp', 'latin1');
  } catch {
    return undefined;
  }
  const prefix = `${procHex(ipv4)}:`;
  let n = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[3] === TIME_WAIT && f[1]?.startsWith(prefix)) n++;
  }
  return n;
}
