import { z } from 'zod';

const ms = z.int().positive();
const cidr = z.union([z.cidrv4(), z.cidrv6(), z.ipv4(), z.ipv6()], { error: 'must be an address block like "10.0.0.0/8" or "2001:db8::/32", or one address' });
const destination = z.string().regex(/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { error: 'must be "host:port" (IPv6 as "[::1]:25")' });
const domainKey = z.string().trim().toLowerCase().pipe(z.hostname({ error: 'must be a domain name' }));

/**
 * The outbound relay (relay/): where queues live, who the host itself is, how delivery is paced.
 * Defaults follow Postfix (maximal_queue_lifetime 5d, backoff from 5 minutes) and RFC 5321 §4.5.3.2.
 */
export const relaySchema = z.strictObject({
  /** Folder holding one queue folder per tenant; relative to the config file. */
  spool: z.string().min(1),
  /** The host's own mail (its users, its daemons): sent with the host's address and name. */
  host: z
    .strictObject({
      /** EHLO name of the host's own mail. */
      heloName: z.hostname({ error: 'must be a host name' }),
      /** Address the host's mail leaves from; absent: the kernel picks. */
      sourceAddress: z.union([z.ipv4(), z.ipv6()]).optional(),
      /** Clients in these blocks relay as the host. */
      relayFrom: z.array(cidr).default([]),
    })
    .optional(),
  /** Recipient domain → "host:port" used instead of MX lookup (smart hosts, tests). "*" matches every domain. */
  transports: z.record(z.union([domainKey, z.literal('*')]), destination).default({}),
  /** A message still undelivered after this long is bounced (Postfix maximal_queue_lifetime). */
  maxQueueLifetimeMs: ms.default(5 * 24 * 3600_000),
  /** First retry after this long; each later one waits twice as long as the one before. */
  retryInitialMs: ms.default(300_000),
  /** Retries are at most this far apart. */
  retryMaxMs: ms.default(4 * 3600_000),
  /** TCP connect to a receiving server. */
  connectTimeoutMs: ms.default(30_000),
  /** Each reply of a receiving server before the end of data (RFC 5321 §4.5.3.2: 5 minutes). */
  replyTimeoutMs: ms.default(300_000),
  /** The reply to the end of data (RFC 5321 §4.5.3.2.6: 10 minutes). */
  dataEndTimeoutMs: ms.default(600_000),
  /** An idle delivery connection is kept this long for the next message to the same server. */
  connectionIdleMs: ms.default(5_000),
  /** Messages sent on one connection before it is closed. */
  maxMessagesPerConnection: z.int().min(1).default(100),
  /** Connections open at once to one receiving server (host:port), over all tenants. */
  maxConnectionsPerDestination: z.int().min(1).default(10),
  /** Deliveries in progress at once for one tenant. */
  maxDeliveriesPerTenant: z.int().min(1).default(10),
  /** STARTTLS toward receiving servers (RFC 3207). */
  tls: z
    .strictObject({
      /** "opportunistic": used when the server offers it; "off": never. */
      starttls: z.enum(['opportunistic', 'off']).default('opportunistic'),
      /** Require a certificate valid for the server's name; a failure defers the message (never falls back to plain text). */
      verifyCertificates: z.boolean().default(false),
    })
    .prefault({}),
  /** Recipients in one accepted message (RFC 5321 §4.5.3.1.8: at least 100). */
  maxRecipients: z.int().min(1).max(10_000).default(100),
});
export type RelayConfig = z.infer<typeof relaySchema>;

/** How a relay listener may identify the tenant, tried in the order given. */
export const identifyBySchema = z.array(z.enum(['auth', 'address', 'mailFrom'])).min(1);
export type IdentifyBy = z.infer<typeof identifyBySchema>;

/** Tenant fields the relay reads. */
export const tenantRelayFields = {
  /** Clients in these blocks (a tenant's web server, its MTA) relay as this tenant. */
  relayFrom: z.array(cidr).default([]),
  /** The EHLO name of the tenant's outbound mail; default: its domain. */
  heloName: z.hostname({ error: 'must be a host name' }).optional(),
};
