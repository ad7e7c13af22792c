import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { identifyBySchema, relaySchema, tenantRelayFields } from '../relay/config.js';

/** Thrown by loadConfig: every problem, each naming its JSON path. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[], readonly file?: string) {
    super(`${file ?? 'config'}: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const ipAddress = z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' });
const host = z.union([z.ipv4(), z.ipv6(), z.hostname()], { error: 'must be an IP address or a host name' });
const listenPort = z.int({ error: 'must be an integer port' }).min(0, { error: 'must be a port from 0 (any free port) to 65535' }).max(65535, { error: 'must be a port from 0 (any free port) to 65535' });
const backendPort = z.int({ error: 'must be an integer port' }).min(1, { error: 'must be a port from 1 to 65535' }).max(65535, { error: 'must be a port from 1 to 65535' });
const ms = z.int().positive();
/** An address block ("10.0.0.0/8", "2001:db8::/32") or one address. */
const cidr = z.union([z.cidrv4(), z.cidrv6(), z.ipv4(), z.ipv6()], { error: 'must be an address block like "10.0.0.0/8" or "2001:db8::/32", or one address' });
const domain = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.hostname({ error: 'must be a domain name' }));
/** Text that ends up inside a protocol line: one line, printable. */
const lineText = z.string().min(1).max(200).regex(/^[\x20-\x7e]+$/, { error: 'must be printable ASCII on one line' });

/**
 * Timeouts and limits, named by phase with their unit. Defaults follow the RFCs
 * and what dovecot / nginx ship with (RFC 1939 §3: an idle timer of at least 10 minutes).
 */
export const limitsSchema = z.strictObject({
  /** Dial one backend: TCP connect only. */
  connectTimeoutMs: ms.default(5_000),
  /** Wait for each reply of a backend while replaying the login. */
  backendReplyTimeoutMs: ms.default(10_000),
  /** Whole pre-login dialogue, from accept to the backend's verdict. */
  loginTimeoutMs: ms.default(60_000),
  /** Spliced session with no byte in either direction. */
  idleTimeoutMs: ms.default(600_000),
  /** Longest command line, CRLF included; default per protocol (POP3: 255, RFC 2449). */
  maxLineLength: z.int().min(32).max(65_536).optional(),
  /** Bad commands before the session is closed. */
  maxErrors: z.int().min(1).max(1_000).default(10),
  /** Failed logins before the session is closed. */
  maxLoginAttempts: z.int().min(1).max(100).default(3),
  /** Every failed login is answered this long after the client's last login line. */
  authFailDelayMs: z.int().min(0).max(60_000).default(2_000),
  /** Each further failed login from one client address doubles its delay (Dovecot's auth penalty), up to this. */
  authPenaltyMaxMs: z.int().min(0).max(300_000).default(15_000),
  /** A client address's failure count drops by one for each such quiet period. */
  authPenaltyDecayMs: ms.max(86_400_000).default(600_000),
  /** On SIGTERM / SIGINT: how long logged-in sessions may go on before they are cut. */
  shutdownGraceMs: z.int().min(0).max(600_000).default(8_000),
  /** FTP: a data listener or data dial with no connection within this is closed (its port released). */
  dataConnectTimeoutMs: ms.default(30_000),
  /** Sessions open at once on a listener; absent: no limit (HAProxy's maxconn, xinetd's instances). */
  maxConnections: z.int().min(1).optional(),
  /** Sessions open at once per tenant (all listeners of the process), for tenants without a maxConnections of their own. */
  maxConnectionsPerTenant: z.int().min(1).optional(),
  /** Sessions open at once from one client address on a listener (xinetd's per_source). */
  maxConnectionsPerIp: z.int().min(1).optional(),
  /** Connections accepted from one client address in the last second (xinetd's cps, HAProxy's conn_rate). */
  connectionRatePerIp: z.int().min(1).optional(),
  /** When present, only clients in these blocks are served (xinetd's only_from). */
  allowFrom: z.array(cidr).optional(),
  /** Clients in these blocks are refused, even when allowFrom lists them (xinetd's no_access). */
  denyFrom: z.array(cidr).optional(),
});
export type Limits = z.infer<typeof limitsSchema>;

/**
 * A listener's own limits: the same fields without defaults, so that what a listener leaves out
 * comes from the top-level `limits` (zod's `.partial()` would keep the built-in defaults).
 */
const listenerLimitsSchema = z.strictObject(
  Object.fromEntries(Object.entries(limitsSchema.shape).map(([key, field]) => [key, (field as z.ZodDefault<z.ZodType>).unwrap().optional()])),
) as unknown as z.ZodType<Partial<Limits>>;

/** A certificate chain and its private key, PEM files; paths relative to the config file. Re-read on reload. */
const certificateSchema = z.strictObject({ cert: z.string().min(1), key: z.string().min(1) });
export type CertificateFiles = z.infer<typeof certificateSchema>;

const backendSchema = z.strictObject({
  host,
  port: backendPort,
  /** TLS toward the backend: "implicit" from the first byte, "starttls" after the protocol's upgrade command. Default "none". */
  tls: z.enum(['none', 'starttls', 'implicit'], { error: 'tls must be "none", "starttls" or "implicit"' }).optional(),
  /** PEM file of the CA(s) that sign the backend's certificate; default: Node's bundled public CAs. */
  ca: z.string().min(1).optional(),
  /** The name the backend's certificate must carry (and the SNI sent); default: `host` when it is a name. */
  servername: z.hostname({ error: 'must be a host name' }).optional(),
  /** Accept any backend certificate. Logged as a warning at start: for tests and migrations only. */
  insecureSkipVerify: z.boolean().optional(),
  /** SMTP only: pass the client's address, port and HELO name with XCLIENT when the backend advertises it (Postfix). */
  xclient: z.boolean().optional(),
  /** Open each connection to this backend with a PROXY protocol header carrying the client's address (v1 text or v2 binary). */
  sendProxyProtocol: z.enum(['v1', 'v2'], { error: 'must be "v1" or "v2" (PROXY protocol version)' }).optional(),
});
export type Backend = z.infer<typeof backendSchema>;

/** FTP: the ports Concierge's own passive data listeners take, both ends included. */
const portRangeSchema = z.strictObject({ from: backendPort, to: backendPort });
export type PortRange = z.infer<typeof portRangeSchema>;

/** Inbound PROXY protocol: which peers are balancers that must (and alone may) send a header. */
const proxyProtocolSchema = z.strictObject({
  /** Peers (the balancers) whose connections must open with a v1 or v2 header; from anyone else no header is read. */
  trusted: z.array(cidr).min(1, { error: 'list at least one trusted balancer address or block' }),
  /** How long a trusted peer may take to send the whole header. */
  timeoutMs: ms.max(60_000).default(5_000),
});
export type ProxyProtocolConfig = z.infer<typeof proxyProtocolSchema>;

const listenerSchema = z.strictObject({
  protocol: z.enum(['pop3', 'ftp', 'smtp'], { error: 'protocol must be "pop3", "ftp" or "smtp"' }),
  address: ipAddress,
  port: listenPort,
  /** Text after the greeting's status ("+OK ", "220 "); never a software version. */
  banner: lineText.optional(),
  limits: listenerLimitsSchema.optional(),
  /** Read a PROXY protocol header (v1 or v2) from trusted balancers: the client it names is the session's client. */
  proxyProtocol: proxyProtocolSchema.optional(),
  /** FTP only, required there: ports for the passive listeners answered in 227 / 229. */
  passivePorts: portRangeSchema.optional(),
  /** FTP only: the IPv4 address written in 227 replies (behind NAT); default: the address the client dialled. */
  passiveAddress: z.ipv4({ error: 'must be an IPv4 address (a 227 reply cannot carry another)' }).optional(),
  /** FTP only: how Concierge asks the backend for data connections. */
  backendDataMode: z.enum(['passive', 'active']).optional(),
  /** SMTP only: "mx" routes each transaction by recipient domain (port 25); "submission" by AUTH identity (port 587). Default "mx". */
  mode: z.enum(['mx', 'submission', 'relay'], { error: 'mode must be "mx", "submission" or "relay"' }).optional(),
  /** SMTP relay only: how the sending tenant is identified, in this order. Default ["auth", "address"]. */
  identifyBy: identifyBySchema.optional(),
  /** SMTP only: the name in the 220 greeting and the EHLO reply (never a version); default: the host's name. */
  hostname: z.hostname({ error: 'must be a host name' }).optional(),
  /** SMTP only: the SIZE advertised and enforced, in octets (RFC 1870). Default 25 MiB. */
  maxMessageSize: z.int().min(1024, { error: 'must be at least 1024 octets' }).max(2 ** 31 - 1).optional(),
  /** Client TLS: "implicit" from the first byte (995, 465, 990), "starttls" offered as STLS / STARTTLS / AUTH TLS. Default "none". */
  tls: z.enum(['none', 'starttls', 'implicit'], { error: 'tls must be "none", "starttls" or "implicit"' }).optional(),
  /** The listener's default certificate; tenants' own are chosen by SNI. Required when tls is not "none". */
  certificate: certificateSchema.optional(),
  /** starttls only: logins (and SMTP mail) are refused until the client has upgraded. */
  requireTls: z.boolean().optional(),
  /** FTP with TLS only: data connections must be protected (PROT P); PROT C and transfers without PROT P get 521/534. */
  requireProtP: z.boolean().optional(),
  /** SMTP mx only: how long the greeting is held back; a client that talks before it gets 421 (pregreet test). Default 0. */
  greetingDelayMs: z.int().min(0).max(30_000).optional(),
  /** SMTP mx only: offer SMTPUTF8 (RFC 6531); the operator asserts the tenants' backends take it. Default false. */
  smtputf8: z.boolean().optional(),
  /** SMTP mx only: offer DSN (RFC 3461) and pass its parameters to backends that offer it. Default false. */
  dsn: z.boolean().optional(),
  /**
   * SMTP mx only: backend connections kept between client sessions, per tenant and backend, and
   * reused by the tenant's next session (never for backends with xclient or sendProxyProtocol).
   * Defaults { maxIdle: 32, idleTimeoutMs: 5000, maxReuses: 100 }; maxIdle 0 turns it off.
   */
  backendPool: z
    .strictObject({
      maxIdle: z.int().min(0).max(1_000).optional(),
      idleTimeoutMs: z.int().min(100).max(300_000).optional(),
      maxReuses: z.int().min(1).max(1_000_000).optional(),
    })
    .optional(),
});
export type ListenerConfig = z.infer<typeof listenerSchema>;

const tenantSchema = z.strictObject({
  domain,
  aliases: z.array(domain).default([]),
  /** The tenant's virtual IP: every backend connection of the tenant is bound to it. */
  sourceAddress: ipAddress.optional(),
  /** A connection arriving on one of these belongs to this tenant even without a domain in the login. */
  localAddresses: z.array(ipAddress).default([]),
  backendUser: z.enum(['local', 'full']).default('local'),
  /** Served to clients whose TLS server name (SNI) is the tenant's domain, an alias, or a name under them. */
  certificate: certificateSchema.optional(),
  /** Sessions of this tenant open at once in the process; past it a login gets the protocol's temporary failure. */
  maxConnections: z.int().min(1).optional(),
  backends: z
    .strictObject({
      pop3: z.array(backendSchema).default([]),
      ftp: z.array(backendSchema).default([]),
      smtp: z.array(backendSchema).default([]),
      imap: z.array(backendSchema).default([]),
    })
    .prefault({}),
  ...tenantRelayFields,
});
export type TenantConfig = z.infer<typeof tenantSchema>;

const demoPop3ServerSchema = z.strictObject({
  address: ipAddress.default('127.0.0.1'),
  port: backendPort,
  /** Folder with a `passwd` file and one Maildir per user; relative to the config file. */
  maildir: z.string().min(1),
});

const demoFtpServerSchema = z.strictObject({
  address: ipAddress.default('127.0.0.1'),
  port: backendPort,
  /** Folder every user of this server sees as "/"; relative to the config file. */
  root: z.string().min(1),
  /** user → password (a demo: the passwords are printed by `concierge demo`). */
  users: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be a plain user name' }), z.string().min(1).max(200)),
  /** The embedded server's own passive ports (ftp-srv needs a range of its own). */
  passivePorts: portRangeSchema,
});

const demoSmtpServerSchema = z.strictObject({
  address: ipAddress.default('127.0.0.1'),
  port: backendPort,
});

export const configSchema = z.strictObject({
  login: z.strictObject({ separators: z.array(z.string().min(1).max(4).regex(/^[^\x00-\x20\x7f]+$/)).min(1).default(['@']) }).prefault({}),
  log: z.strictObject({ level: z.enum(['error', 'warn', 'info', 'debug']).default('info') }).prefault({}),
  limits: limitsSchema.prefault({}),
  listeners: z.array(listenerSchema).min(1, { error: 'at least one listener is needed' }),
  tenants: z.array(tenantSchema).default([]),
  /** Processes serving the listeners (node:cluster): a number, or "auto" for one per CPU. Changing it needs a restart. */
  workers: z.union([z.int().min(1).max(256), z.literal('auto')], { error: 'must be a number of processes from 1 to 256, or "auto"' }).default(1),
  /** The HTTP listener for /metrics and /healthz; absent: none. Loopback by default: it is not for the world. */
  admin: z
    .strictObject({
      address: ipAddress.default('127.0.0.1'),
      port: listenPort,
      /** Tenants with metric series of their own (first seen, first labelled); the rest share tenant="_other". */
      maxTenantSeries: z.int().min(0).max(1_000_000).optional(),
    })
    .optional(),
  /** Outbound mail for tenants (relay/): needed by a listener in mode "relay". */
  relay: relaySchema.optional(),
  /** Backends that `concierge demo` starts in-process (the repository's small POP3 server, ftp-srv, smtp-server). */
  demo: z
    .strictObject({
      pop3Servers: z.array(demoPop3ServerSchema).default([]),
      ftpServers: z.array(demoFtpServerSchema).default([]),
      /** Mail sinks that accept any message and log who delivered it. */
      smtpServers: z.array(demoSmtpServerSchema).default([]),
    })
    .optional(),
});
export type Config = z.infer<typeof configSchema>;

/** Limits in force on one listener: the listener's own over the top-level ones. */
export function effectiveLimits(config: Config, listener: ListenerConfig): Limits {
  return { ...config.limits, ...listener.limits };
}

/** `listeners[0].port` from zod's path array. */
function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const key of p) out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  return out || '(root)';
}

function crossCheck(config: Config): string[] {
  const problems: string[] = [];
  const owners = new Map<string, string>();
  const addresses = new Map<string, string>();
  config.tenants.forEach((t, i) => {
    const names = [[`tenants[${i}].domain`, t.domain], ...t.aliases.map((a, j) => [`tenants[${i}].aliases[${j}]`, a])] as const;
    for (const [where, name] of names) {
      const first = owners.get(name);
      if (first) problems.push(`${where}: "${name}" is already used at ${first}`);
      else owners.set(name, where);
    }
    t.localAddresses.forEach((a, j) => {
      const first = addresses.get(a);
      if (first) problems.push(`tenants[${i}].localAddresses[${j}]: ${a} is already used at ${first}`);
      else addresses.set(a, `tenants[${i}].localAddresses[${j}]`);
    });
  });

  // "::" is dual-stack on Linux: it takes the port on every IPv4 address too.
  const takesAll = (a: string, b: string) => a === '::' || (a === '0.0.0.0' && isIP(b) === 4);
  config.listeners.forEach((l, i) => {
    config.listeners.slice(0, i).forEach((m, j) => {
      if (l.port !== 0 && l.port === m.port && (l.address === m.address || takesAll(l.address, m.address) || takesAll(m.address, l.address))) {
        problems.push(`listeners[${i}]: ${l.address}:${l.port} overlaps listeners[${j}] (${m.address}:${m.port})`);
      }
    });
    problems.push(...checkFtpListener(config, l, i));
    problems.push(...checkSmtpListener(config, l, i));
    problems.push(...checkListenerTls(l, i));
    const lim = effectiveLimits(config, l);
    const where = l.limits ? `listeners[${i}].limits` : 'limits';
    // A phase must fit inside the phase that contains it, or its own timer can never fire.
    if (lim.connectTimeoutMs >= lim.loginTimeoutMs) problems.push(`${where}.connectTimeoutMs: must be less than loginTimeoutMs (${lim.loginTimeoutMs})`);
    if (lim.backendReplyTimeoutMs >= lim.loginTimeoutMs) problems.push(`${where}.backendReplyTimeoutMs: must be less than loginTimeoutMs (${lim.loginTimeoutMs})`);
    if (lim.authFailDelayMs >= lim.loginTimeoutMs) problems.push(`${where}.authFailDelayMs: must be less than loginTimeoutMs (${lim.loginTimeoutMs})`);
    if (lim.loginTimeoutMs > lim.idleTimeoutMs) problems.push(`${where}.loginTimeoutMs: must not exceed idleTimeoutMs (${lim.idleTimeoutMs})`);
    if (l.protocol === 'ftp' && lim.dataConnectTimeoutMs > lim.idleTimeoutMs) problems.push(`${where}.dataConnectTimeoutMs: must not exceed idleTimeoutMs (${lim.idleTimeoutMs})`);
  });

  problems.push(...checkBackendOptions(config));
  const admin = config.admin;
  if (admin && admin.port !== 0) {
    const clash = config.listeners.findIndex((l) => l.port === admin.port && (l.address === admin.address || takesAll(l.address, admin.address) || takesAll(admin.address, l.address)));
    if (clash >= 0) problems.push(`admin.port: ${admin.port} is also listeners[${clash}].port`);
  }
  config.demo?.smtpServers.forEach((d, i) => {
    const clash = config.listeners.findIndex((l) => l.port === d.port);
    if (clash >= 0) problems.push(`demo.smtpServers[${i}].port: ${d.port} is also listeners[${clash}].port`);
  });
  config.demo?.pop3Servers.forEach((d, i) => {
    const clash = config.listeners.findIndex((l) => l.port === d.port);
    if (clash >= 0) problems.push(`demo.pop3Servers[${i}].port: ${d.port} is also listeners[${clash}].port`);
  });
  config.demo?.ftpServers.forEach((d, i) => {
    const clash = config.listeners.findIndex((l) => l.port === d.port);
    if (clash >= 0) problems.push(`demo.ftpServers[${i}].port: ${d.port} is also listeners[${clash}].port`);
    const range = d.passivePorts;
    if (range.from > range.to) problems.push(`demo.ftpServers[${i}].passivePorts: from (${range.from}) must not exceed to (${range.to})`);
    config.listeners.forEach((l, j) => {
      const other = l.passivePorts;
      if (other && other.from <= range.to && range.from <= other.to) problems.push(`demo.ftpServers[${i}].passivePorts: overlaps listeners[${j}].passivePorts (${other.from}-${other.to})`);
    });
  });
  // A problem in the top-level limits shows up once per listener that inherits it: say it once.
  return [...new Set(problems)];
}

/** The SMTP default for `maxMessageSize`: 25 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024;

/** SMTP listener fields only on smtp listeners; backend options only on smtp backends, one client-identity method each. */
function checkSmtpListener(config: Config, l: ListenerConfig, i: number): string[] {
  const problems: string[] = [];
  if (l.protocol !== 'smtp') {
    for (const key of ['mode', 'hostname', 'maxMessageSize', 'greetingDelayMs', 'identifyBy', 'smtputf8', 'dsn', 'backendPool'] as const) {
      if (l[key] !== undefined) problems.push(`listeners[${i}].${key}: only an smtp listener takes ${key}`);
    }
    return problems;
  }
  if (l.greetingDelayMs !== undefined && l.mode !== undefined && l.mode !== 'mx') problems.push(`listeners[${i}].greetingDelayMs: only an mx listener holds its greeting back`);
  if (l.smtputf8 !== undefined && l.mode !== undefined && l.mode !== 'mx') problems.push(`listeners[${i}].smtputf8: only an mx listener takes smtputf8 (a relay listener always offers SMTPUTF8)`);
  if (l.dsn !== undefined && l.mode !== undefined && l.mode !== 'mx') problems.push(`listeners[${i}].dsn: only an mx listener takes dsn`);
  if (l.backendPool !== undefined && l.mode !== undefined && l.mode !== 'mx') problems.push(`listeners[${i}].backendPool: only an mx listener keeps backend connections between sessions`);
  if (l.identifyBy !== undefined && l.mode !== 'relay') problems.push(`listeners[${i}].identifyBy: only a relay listener identifies senders`);
  if (l.mode === 'relay' && !config.relay) problems.push(`listeners[${i}].mode: a relay listener needs the top-level "relay" section (spool, …)`);
  const lim = effectiveLimits(config, l);
  if ((l.greetingDelayMs ?? 0) >= lim.loginTimeoutMs) problems.push(`listeners[${i}].greetingDelayMs: must be less than loginTimeoutMs (${lim.loginTimeoutMs})`);
  return problems;
}

/** A TLS listener has a certificate; requireTls only means something where TLS is optional. */
function checkListenerTls(l: ListenerConfig, i: number): string[] {
  const problems: string[] = [];
  const mode = l.tls ?? 'none';
  if (mode !== 'none' && !l.certificate) problems.push(`listeners[${i}].certificate: a listener with tls "${mode}" needs a default certificate { "cert": …, "key": … }`);
  if (l.requireTls && mode !== 'starttls') problems.push(`listeners[${i}].requireTls: only a listener with tls "starttls" takes requireTls (implicit TLS is always on)`);
  if (l.requireProtP && (l.protocol !== 'ftp' || mode === 'none')) problems.push(`listeners[${i}].requireProtP: only an ftp listener with tls takes requireProtP`);
  return problems;
}

/** XCLIENT only on SMTP backends, and at most one way of passing the client's identity. */
function checkBackendOptions(config: Config): string[] {
  const problems: string[] = [];
  config.tenants.forEach((t, i) => {
    for (const [protocol, backends] of Object.entries(t.backends)) {
      backends.forEach((b, j) => {
        const where = `tenants[${i}].backends.${protocol}[${j}]`;
        if ((b.tls ?? 'none') === 'none') {
          for (const key of ['ca', 'servername', 'insecureSkipVerify'] as const) if (b[key] !== undefined) problems.push(`${where}.${key}: only a backend with tls takes ${key}`);
        }
        if (protocol !== 'smtp') {
          if (b.xclient !== undefined) problems.push(`${where}.xclient: only an smtp backend takes xclient`);
        } else if (b.xclient && b.sendProxyProtocol !== undefined) {
          problems.push(`${where}: xclient and sendProxyProtocol both pass the client's identity: choose one`);
        }
      });
    }
  });
  return problems;
}

/** FTP listener fields: present where needed, absent elsewhere; passive ranges disjoint from each other and from listener ports. */
function checkFtpListener(config: Config, l: ListenerConfig, i: number): string[] {
  const problems: string[] = [];
  if (l.protocol !== 'ftp') {
    for (const key of ['passivePorts', 'passiveAddress', 'backendDataMode'] as const) {
      if (l[key] !== undefined) problems.push(`listeners[${i}].${key}: only an ftp listener takes ${key}`);
    }
    return problems;
  }
  const range = l.passivePorts;
  if (!range) return [`listeners[${i}].passivePorts: an ftp listener needs a passive port range { "from": …, "to": … }`];
  if (range.from > range.to) problems.push(`listeners[${i}].passivePorts: from (${range.from}) must not exceed to (${range.to})`);
  config.listeners.forEach((m, j) => {
    if (j !== i && m.port >= range.from && m.port <= range.to) problems.push(`listeners[${i}].passivePorts: ${range.from}-${range.to} contains listeners[${j}].port (${m.port})`);
    const other = m.passivePorts;
    if (j < i && m.protocol === 'ftp' && other && other.from <= range.to && range.from <= other.to) {
      problems.push(`listeners[${i}].passivePorts: ${range.from}-${range.to} overlaps listeners[${j}].passivePorts (${other.from}-${other.to})`);
    }
  });
  return problems;
}

/**
 * Validates a parsed tenants.json. Relative demo paths are resolved against `baseDir`.
 * Throws ConfigError listing every problem.
 */
export function parseConfig(raw: unknown, baseDir = process.cwd(), file?: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`), file);
  }
  const problems = crossCheck(result.data);
  if (problems.length > 0) throw new ConfigError(problems, file);
  const config = result.data;
  config.demo?.pop3Servers.forEach((d) => (d.maildir = path.resolve(baseDir, d.maildir)));
  config.demo?.ftpServers.forEach((d) => (d.root = path.resolve(baseDir, d.root)));
  const resolveFiles = (c: CertificateFiles | undefined) => {
    if (!c) return;
    c.cert = path.resolve(baseDir, c.cert);
    c.key = path.resolve(baseDir, c.key);
  };
  config.listeners.forEach((l) => resolveFiles(l.certificate));
  for (const t of config.tenants) {
    resolveFiles(t.certificate);
    for (const b of Object.values(t.backends).flat()) if (b.ca) b.ca = path.resolve(baseDir, b.ca);
  }
  if (config.relay) config.relay.spool = path.resolve(baseDir, config.relay.spool);
  return config;
}

/** Reads and validates a tenants.json file. */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`(file): cannot read: ${(err as Error).message}`], file);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`(root): not valid JSON: ${(err as Error).message}`], file);
  }
  return parseConfig(raw, path.dirname(path.resolve(file)), file);
}
