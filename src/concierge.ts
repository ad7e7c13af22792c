import { protocolModules } from '../proxies/index.js';
import { type AdminServer, startAdmin } from './admin.js';
import { type Config, effectiveLimits, type Limits, type ListenerConfig } from './config.js';
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
import { listenerKey, TlsStore } from './tls.js';
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
  reloadTenants(config: Config, tls?: TlsStore): Promise<void>;
  /**
   * Stops every listener: sessions still logging in get a goodbye, logged-in ones get `graceMs`
   * (default: each listener's `shutdownGraceMs`) to finish. Again with 0: cut them now.
   */
  close(graceMs?: number): Promise<void>;
}

/** Config sections a reload does not apply (a restart does). Listeners are reopened as needed. */
const RESTART_ONLY = ['limits', 'log', 'demo', 'admin', 'workers'] as const;

/**
 * Opens every configured listener. Rejects (closing what it opened) if one cannot bind.
 * With `bind: false` nothing is bound (inetd mode: connections arrive through `Listener.adopt`);
 * with `serveAdmin: false` no admin listener is opened (a cluster worker).
 */
export async function startConcierge(config: Config, options: { logger?: Logger; bind?: boolean; serveAdmin?: boolean; tls?: TlsStore } = {}): Promise<Concierge> {
  const logger = options.logger ?? createLogger(config.log.level);
  let directory = new TenantDirectory(config);
  let tls = options.tls ?? (await TlsStore.load(config, logger));
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
  /** A listener for `l`, with the limits of the config it came from; its certificates are always the latest store's. */
  const makeListener = (l: ListenerConfig, limits: Limits): Listener | undefined => {
    // Without binding (inetd: a process per connection) there is no relay: its queue has one writer, the started instance.
    if (l.mode === 'relay' && !relay) return undefined;
    const base = protocolModules[l.protocol];
    if (!base) throw new Error(`no protocol module for ${l.protocol}`);
    const module = relay && l.mode === 'relay' ? relay.moduleFor(l) : (base.forListener?.(l) ?? base);
    return new Listener(l, {
      module,
      directory: () => directory,
      tls: () => tls.forListener(l),
      backendTls: (backend) => tls.forBackend(backend),
      limits,
      logger,
      onSessionDone: count,
      metrics: metrics.forListener(`${l.protocol}@${l.address}:${l.port}`, l.protocol),
      tenantConnections,
      authPenalty,
    });
  };
  // A loop, not a callback: a closure using `config` would keep the whole first config (its
  // tenants too) alive in this scope's shared context after every reload.
  const listeners: Listener[] = [];
  for (const l of config.listeners) {
    const listener = makeListener(l, effectiveLimits(config, l));
    if (listener) listeners.push(listener);
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
  let adminClosed: Promise<void> | undefined;
  let listenerChanges = Promise.resolve();

  /**
   * Brings the open listeners in line with a reloaded config: a listener whose settings (all but
   * its certificate) are unchanged stays, with its sessions; one that is gone or changed stops
   * accepting and drains as on shutdown; a new or changed one is opened. A listener that cannot
   * open is logged and left out; the others are not touched.
   */
  const applyListeners = async (next: Config): Promise<void> => {
    const unmatched = new Map<string, Listener[]>();
    for (const listener of listeners) {
      const key = listenerKey(listener.config);
      unmatched.set(key, [...(unmatched.get(key) ?? []), listener]);
    }
    const added: ListenerConfig[] = [];
    for (const l of next.listeners) {
      const kept = unmatched.get(listenerKey(l))?.shift();
      if (!kept) added.push(l);
    }
    const removed = [...unmatched.values()].flat();
    for (const listener of removed) {
      logger.info('listener closing: not in the reloaded config', { listener: listener.name });
      void listener.close().then(() => {
        const at = listeners.indexOf(listener);
        if (at >= 0) listeners.splice(at, 1);
        logger.info('listener closed', { listener: listener.name });
      });
    }
    // A changed listener's port is free once its old server has stopped listening.
    if (removed.length > 0) await new Promise((resolve) => setImmediate(resolve));
    for (const l of added) {
      const listener = makeListener(l, effectiveLimits(next, l));
      if (!listener) {
        logger.warn('listener not opened: a relay listener needs the relay section at start', { listener: `${l.protocol}@${l.address}:${l.port}` });
        continue;
      }
      try {
        await listener.listen();
        listeners.push(listener);
      } catch (err) {
        logger.error('listener not opened', { listener: listener.name, error: (err as Error).message });
      }
    }
  };

  return {
    listeners,
    traffic,
    logger,
    metrics,
    relay,
    admin,
    reloadTenants(next, nextTls) {
      directory = new TenantDirectory(next);
      for (const listener of listeners) listener.directoryChanged();
      if (nextTls) tls = nextTls;
      relay?.reload(next);
      logger.info('tenants reloaded', { tenants: next.tenants.length, ...(nextTls ? { certificates: 'reloaded' } : {}) });
      const ignored = RESTART_ONLY.filter((key) => JSON.stringify(next[key]) !== startedWith.get(key));
      if (ignored.length > 0) logger.warn('reload applies tenants, listeners, certificates and login separators only: restart to apply the rest', { ignored });
      if (options.bind === false || stopping) return Promise.resolve();
      // One listener change at a time: a second reload waits for the first one's ports.
      listenerChanges = listenerChanges.then(() => applyListeners(next));
      return listenerChanges;
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

