import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';

/** A server to try for a recipient domain. */
export interface Destination {
  readonly host: string;
  readonly port: number;
}

/** Where a domain's mail goes, or why it cannot go anywhere. */
export type Route =
  | { readonly kind: 'servers'; readonly servers: readonly Destination[] }
  /** Permanent: RFC 7505 null MX, or the domain does not exist. */
  | { readonly kind: 'permanent'; readonly status: string; readonly reason: string }
  /** Try later: the DNS did not answer. */
  | { readonly kind: 'temporary'; readonly status: string; readonly reason: string };

/** "host:port" and "[v6]:port" from the transports map. */
export function parseDestination(text: string): Destination {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(text.slice(colon + 1)) };
}

/**
 * RFC 5321 §5.1: a domain's MX hosts in preference order (equal preferences shuffled, as the RFC
 * asks), or its own address records when it has no MX; a `transports` entry overrides both.
 */
export async function routeDomain(domain: string, transports: Readonly<Record<string, string>>): Promise<Route> {
  const fixed = transports[domain] ?? transports['*'];
  if (fixed) return { kind: 'servers', servers: [parseDestination(fixed)] };
  if (domain.startsWith('[') && domain.endsWith(']')) {
    const literal = domain.slice(1, -1).replace(/^IPv6:/i, '');
    if (isIP(literal)) return { kind: 'servers', servers: [{ host: literal, port: 25 }] };
    return { kind: 'permanent', status: '5.1.2', reason: `bad address literal ${domain}` };
  }
  try {
    const records = await dns.resolveMx(domain);
    if (records.length === 1 && records[0]!.exchange === '') return { kind: 'permanent', status: '5.1.10', reason: `${domain} accepts no mail (null MX)` };
    const sorted = records.map((r) => ({ r, tie: Math.random() })).sort((a, b) => a.r.priority - b.r.priority || a.tie - b.tie);
    return { kind: 'servers', servers: sorted.map(({ r }) => ({ host: r.exchange, port: 25 })) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND') return { kind: 'permanent', status: '5.1.2', reason: `${domain} does not exist` };
    if (code !== 'ENODATA') return { kind: 'temporary', status: '4.4.3', reason: `MX lookup for ${domain} failed: ${code ?? String(err)}` };
  }
  // No MX: the domain itself is the implicit MX (if it has an address).
  const [v4, v6] = await Promise.all([dns.resolve4(domain).catch(() => []), dns.resolve6(domain).catch(() => [])]);
  if (v4.length + v6.length === 0) return { kind: 'permanent', status: '5.1.2', reason: `${domain} has no MX and no address` };
  return { kind: 'servers', servers: [{ host: domain, port: 25 }] };
}
