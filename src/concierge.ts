import { protocolModules } from '../proxies/index.js';
import { type AdminServer, startAdmin } from './admin.js';
import { type Config, effectiveLimits } from './config.js';
import { AuthPenalty } from './auth-penalty.js';
import { dataPath } from './data-path.js';
import { Listener } from './listener.js';
import { TenantConnections } from './tenant-connections.js';
import { ActivatedSockets } from './socket-activation.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import type { SessionOutcome } from './session.js';
import { tenantParts } from './tenant-shares.js';
import { TenantDirectory } from './tenants.js';
import { TlsStore } from './tls.js';
import { Relay } from '../relay/index.js';

/** Bytes and sessions per tenant since start (what `session closed` log lines add up to; an mx session counts for each tenant it served, with its share). */
export interface TenantTraffic {
  sessions: number;
  bytesUp: number;
  bytesDown: number;
}

/** A running instance: its listeners, its tenant directory, its counters. */
export interface Concierge {
  readonly listeners: readonly Listener[];
  readonly traffic: ReadonlyMap<string, TenantTraffic>;
  readonly logger: Logger;
  /** Counters for /metrics (kept with or without an admin listener). */
  readonly metrics: Metrics;
  /** The outbound relay (queues and delivery), when the config has `relay`. */
  readonly relay: Relay | undefined;
  /** The /metrics and /healthz listener, when the config has `admin`. */
  readonly admin: AdminServer | undefined;
  /**
   * Swaps the tenant directory (and, when given, the certificates read from the same config)
   * atomically: new logins and handshakes see the new ones, open sessions are untouched.
   */
  reloadTenants(config: Config, tls?: TlsStore): void;
  /**
   * Stops every listener: sessions still logging in get a goodbye, logged-in ones get `graceMs`
   * (default: each listener's `shutdownGraceMs`) to finish. Again with 0: cut them now.
   */
  close(graceMs?: number): Promise<void>;
}

/** The key of the listeners' shape (without certificates) in `startedWith`. */
const LISTENER_SHAPE = 'listeners without certificates';

/** Config sections a reload does not apply (a restart does); listeners' certificates excepted. */
const RESTART_ONLY = ['listeners', 'limits', 'log', 'demo', 'admin', 'workers'] as const;

/**
 * Opens every configured listener. Rejects (closing what it opened) if one cannot bind.
 * With `bind: false` nothing is bound (inetd mode: connections arrive through `Listener.adopt`);
 * with `serveAdmin: false` no admin listener is opened (a cluster worker).
 */
export async function startConcierge(config: Config, options: { logger?: Logger; bind?: boolean; serveAdmin?: boolean; tls?: TlsStore } = {}): Promise<Concierge> {
  const logger = options.logger ?? createLogger(config.log.level);
  let directory = new TenantDirectory(config);
  let tls = options.tls ?? (await TlsStore.load(config, logger));
  /** Listener certificates come from the store of the config the listeners were opened with, until a reload with the same listeners. */
  let listenerTls = tls;
  const traffic = new Map<string, TenantTraffic>();
  const count = (outcome: SessionOutcome) => {
    for (const [tenant, bytes] of tenantParts(outcome)) {
      const t = traffic.get(tenant) ?? { sessions: 0, bytesUp: 0, bytesDown: 0 };
      t.sessions++;
      t.bytesUp += bytes.bytesUp;
      t.bytesDown += bytes.bytesDown;
      traffic.set(tenant, t);
    }
  };
  const metrics = new Metrics({ processMetrics: config.admin !== undefined, maxTenantSeries: config.admin?.maxTenantSeries });
  const tenantConnections = new TenantConnections();
  const authPenalty = new AuthPenalty();
  metrics.watchAuthPenalty(authPenalty);
  let stopping = false;
  const relayConfig = config.relay;
  const relay = relayConfig && options.bind !== false ? await Relay.start({ ...config, relay: relayConfig }, logger, metrics) : undefined;
  // A loop, not a callback: a closure using `config` would keep the whole first config (its
  // tenants too) alive in this scope's shared context after every reload.
  const listeners: Listener[] = [];
  for (const [index, l] of config.listeners.entries()) {
    // Without binding (inetd: a process per connection) there is no relay: its queue has one writer, the started instance.
    if (l.mode === 'relay' && !relay) continue;
    const base = protocolModules[l.protocol];
    if (!base) throw new Error(`no protocol module for ${l.protocol}`);
    const module = relay && l.mode === 'relay' ? relay.moduleFor(l) : (base.forListener?.(l) ?? base);
    const name = `${l.protocol}@${l.address}:${l.port}`;
    listeners.push(
      new Listener(l, {
        module,
        directory: () => directory,
        tls: () => listenerTls.forListener(index),
        backendTls: (backend) => tls.forBackend(backend),
        limits: effectiveLimits(config, l),
        logger,
        onSessionDone: count,
        metrics: metrics.forListener(name, l.protocol),
        tenantConnections,
        authPenalty,
      }),
    );
  }
  if (config.listeners.some((l) => l.protocol === 'ftp')) logger.info('FTP data path', { ...dataPath() });
  let admin: AdminServer | undefined;
  try {
    // Listeners systemd passed sockets for take them; the others bind their configured address.
    const activated = new ActivatedSockets();
    if (options.bind !== false) for (const listener of listeners) await listener.listen(activated.take(listener.config));
    // A cluster worker leaves `admin` to its primary, which sums the workers' metrics.
    if (config.admin && options.bind !== false && options.serveAdmin !== false) admin = await startAdmin(config.admin, metrics, () => !stopping, logger);
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close().catch(() => {})));
    await relay?.close();
    throw err;
  }
  // Kept as text rather than keeping `config`: with 100,000 tenants the first config is ~60 MiB of heap.
  const startedWith = new Map<string, string>();
  for (const key of RESTART_ONLY) startedWith.set(key, JSON.stringify(config[key]));
  startedWith.set(LISTENER_SHAPE, listenerShape(config));
  let adminClosed: Promise<void> | undefined;
  return {
    listeners,
    traffic,
    logger,
    metrics,
    relay,
    admin,
    reloadTenants(next, nextTls) {
      directory = new TenantDirectory(next);
      // Certificates may change on reload; anything else about a listener needs a restart.
      const listenersKept = listenerShape(next) === startedWith.get(LISTENER_SHAPE);
      if (nextTls) {
        tls = nextTls;
        if (listenersKept) listenerTls = nextTls;
      }
      relay?.reload(next);
      logger.info('tenants reloaded', { tenants: next.tenants.length, ...(nextTls ? { certificates: listenersKept ? 'reloaded' : 'backends and tenants only' } : {}) });
      const ignored: string[] = RESTART_ONLY.filter((key) => key !== 'listeners' && JSON.stringify(next[key]) !== startedWith.get(key));
      if (!listenersKept) ignored.unshift('listeners');
      if (ignored.length > 0) logger.warn('reload applies tenants, certificates and login separators only: restart to apply the rest', { ignored });
    },
    async close(graceMs) {
      // /healthz says 503 from the first signal on, so a load balancer stops sending while sessions drain.
      stopping = true;
      await Promise.all(listeners.map((l) => l.close(graceMs)));
      await relay?.close();
      await (adminClosed ??= admin?.close());
    },
  };
}

/** A config's listeners without their certificates: what a reload cannot change. */
function listenerShape(config: Config): string {
  return JSON.stringify(config.listeners.map(({ certificate: _, ...rest }) => rest));
}
