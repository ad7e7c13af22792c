import { protocolModules } from '../proxies/index.js';
import { type AdminServer, startAdmin } from './admin.js';
import { type Config, effectiveLimits } from './config.js';
import { Listener } from './listener.js';
import { ActivatedSockets } from './socket-activation.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import type { SessionOutcome } from './session.js';
import { TenantDirectory } from './tenants.js';
import { Relay } from '../relay/index.js';

/** Bytes and sessions per tenant since start (what `session closed` log lines add up to). */
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
  /** Swaps the tenant directory atomically: new logins see the new tenants, open sessions are untouched. */
  reloadTenants(config: Config): void;
  /**
   * Stops every listener: sessions still logging in get a goodbye, logged-in ones get `graceMs`
   * (default: each listener's `shutdownGraceMs`) to finish. Again with 0: cut them now.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Opens every configured listener. Rejects (closing what it opened) if one cannot bind.
 * With `bind: false` nothing is bound (inetd mode: connections arrive through `Listener.adopt`).
 */
export async function startConcierge(config: Config, options: { logger?: Logger; bind?: boolean } = {}): Promise<Concierge> {
  const logger = options.logger ?? createLogger(config.log.level);
  let directory = new TenantDirectory(config);
  const traffic = new Map<string, TenantTraffic>();
  const count = (outcome: SessionOutcome) => {
    if (!outcome.tenant) return;
    const t = traffic.get(outcome.tenant) ?? { sessions: 0, bytesUp: 0, bytesDown: 0 };
    t.sessions++;
    t.bytesUp += outcome.bytesUp;
    t.bytesDown += outcome.bytesDown;
    traffic.set(outcome.tenant, t);
  };
  const metrics = new Metrics({ processMetrics: config.admin !== undefined, maxTenantSeries: config.admin?.maxTenantSeries });
  let stopping = false;
  const relayConfig = config.relay;
  const relay = relayConfig && options.bind !== false ? await Relay.start({ ...config, relay: relayConfig }, logger, metrics) : undefined;
  // Without binding (inetd: a process per connection) there is no relay: its queue has one writer, the started instance.
  const listeners = config.listeners.filter((l) => l.mode !== 'relay' || relay).map((l) => {
    const base = protocolModules[l.protocol];
    if (!base) throw new Error(`no protocol module for ${l.protocol}`);
    const module = relay && l.mode === 'relay' ? relay.moduleFor(l) : (base.forListener?.(l) ?? base);
    const name = `${l.protocol}@${l.address}:${l.port}`;
    return new Listener(l, { module, directory: () => directory, limits: effectiveLimits(config, l), logger, onSessionDone: count, metrics: metrics.forListener(name, l.protocol) });
  });
  let admin: AdminServer | undefined;
  try {
    // Listeners systemd passed sockets for take them; the others bind their configured address.
    const activated = new ActivatedSockets();
    if (options.bind !== false) for (const listener of listeners) await listener.listen(activated.take(listener.config));
    if (config.admin && options.bind !== false) admin = await startAdmin(config.admin, metrics, () => !stopping, logger);
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close().catch(() => {})));
    await relay?.close();
    throw err;
  }
  let adminClosed: Promise<void> | undefined;
  return {
    listeners,
    traffic,
    logger,
    metrics,
    relay,
    admin,
    reloadTenants(next) {
      directory = new TenantDirectory(next);
      relay?.reload(next);
      logger.info('tenants reloaded', { tenants: next.tenants.length });
      const ignored = (['listeners', 'limits', 'log', 'demo', 'admin'] as const).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(config[key]));
      if (ignored.length > 0) logger.warn('reload applies tenants and login separators only: restart to apply the rest', { ignored });
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
