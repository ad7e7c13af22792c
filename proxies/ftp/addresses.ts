/** Host and port of a data connection as FTP writes them (RFC 959 §4.1.2 PORT / 227, RFC 2428 EPRT / 229). */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const BYTE = /^\d{1,3}$/;

/** `h1,h2,h3,h4,p1,p2` → host and port; undefined if malformed. */
export function parseHostPort(text: string): HostPort | undefined {
  const parts = text.trim().split(',');
  if (parts.length !== 6 || !parts.every((p) => BYTE.test(p.trim()) && Number(p) <= 255)) return undefined;
  const n = parts.map(Number) as [number, number, number, number, number, number];
  return { host: n.slice(0, 4).join('.'), port: n[4] * 256 + n[5] };
}

/** The `(h1,…,p2)` of a 227 reply, wherever it stands in the text (RFC 1123 §4.1.2.6: scan for it). */
export function parsePasvReply(text: string): HostPort | undefined {
  const m = /(\d{1,3}(?:\s*,\s*\d{1,3}){5})/.exec(text);
  return m ? parseHostPort(m[1]!.replace(/\s/g, '')) : undefined;
}

/** The port of a 229 reply: `(|||port|)` with any delimiter (RFC 2428 §3). */
export function parseEpsvReply(text: string): number | undefined {
  const m = /\(([\x21-\x7e])\1\1(\d{1,5})\1\)/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** `|1|132.235.1.2|6275|` → family, host and port; undefined if malformed (RFC 2428 §2). */
export function parseEprt(arg: string): (HostPort & { family: 4 | 6 }) | undefined {
  const d = arg[0];
  if (d === undefined || d < '\x21' || d > '\x7e') return undefined;
  const parts = arg.split(d);
  if (parts.length !== 5 || parts[0] !== '' || parts[4] !== '') return undefined;
  const [, proto, host, portText] = parts as [string, string, string, string, string];
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535) || host.length === 0) return undefined;
  if (proto === '1' && parseHostPort(`${host.split('.').join(',')},0,0`)) return { family: 4, host, port };
  if (proto === '2' && /^[0-9a-fA-F:.]+$/.test(host) && host.includes(':')) return { family: 6, host: host.toLowerCase(), port };
  return undefined;
}

/** `PORT` argument for an IPv4 host. */
export function formatHostPort(host: string, port: number): string {
  return `${host.split('.').join(',')},${port >> 8},${port & 255}`;
}
