import { protocolModules } from '../proxies/index.js';
import { type AdminServer, startAdmin } from './admin.js';
import { type Config, effectiveLimits } from './config.js';
import { AuthPenalty } from './auth-penalty.js';
import { Listener } from './listener.js';
import { TenantConnections } from './tenant-connections.js';
import { ActivatedSockets } from './socket-activation.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import type { SessionOutcome } from './session.js';
import { TenantDirectory } from './tenants.js';

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

/** Config sections a reload does not apply (a restart does). */
const RESTART_ONLY = ['listeners', 'limits', 'log', 'demo', 'admin', 'workers'] as const;

/**
 * Opens every configured listener. Rejects (closing what it opened) if one cannot bind.
 * With `bind: false` nothing is bound (inetd mode: connections arrive through `Listener.adopt`);
 * with `serveAdmin: false` no admin listener is opened (a cluster worker).
 */
export async function startConcierge(config: Config, options: { logger?: Logger; bind?: boolean; serveAdmin?: boolean } = {}): Promise<Concierge> {
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
  const tenantConnections = new TenantConnections();
  const authPenalty = new AuthPenalty();
  metrics.watchAuthPenalty(authPenalty);
  let stopping = false;
  // A loop, not a callback: a closure using `config` would keep the whole first config (its
  // tenants too) alive in this scope's shared context after every reload.
  const listeners: Listener[] = [];
  for (const l of config.listeners) {
    const base = protocolModules[l.protocol];
    if (!base) throw new Error(`no protocol module for ${l.protocol}`);
    const module = base.forListener?.(l) ?? base;
    const name = `${l.protocol}@${l.address}:${l.port}`;
    listeners.push(new Listener(l, { module, directory: () => directory, limits: effectiveLimits(config, l), logger, onSessionDone: count, metrics: metrics.forListener(name, l.protocol), tenantConnections, authPenalty }));
  }
  let admin: AdminServer | undefined;
  try {
    // Listeners systemd passed sockets for take them; the others bind their configured address.
    const activated = new ActivatedSockets();
    if (options.bind !== false) for (const listener of listeners) await listener.listen(activated.take(listener.config));
    // A cluster worker leaves `admin` to its primary, which sums the workers' metrics.
    if (config.admin && options.bind !== false && options.serveAdmin !== false) admin = await startAdmin(config.admin, metrics, () => !stopping, logger);
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close().catch(() => {})));
    throw err;
  }
  // Kept as text rather than keeping `config`: with 100,000 tenants the first config is ~60 MiB of heap.
  const startedWith = new Map<string, string>();
  for (const key of RESTART_ONLY) startedWith.set(key, JSON.stringify(config[key]));
  let adminClosed: Promise<void> | undefined;
  return {
    listeners,
    traffic,
    logger,
    metrics,
    admin,
    reloadTenants(next) {
      directory = new TenantDirectory(next);
      logger.info('tenants reloaded', { tenants: next.tenants.length });
      const ignored = RESTART_ONLY.filter((key) => JSON.stringify(next[key]) !== startedWith.get(key));
      if (ignored.length > 0) logger.warn('reload applies tenants and login separators only: restart to apply the rest', { ignored });
    },
    async close(graceMs) {
      // /healthz says 503 from the first signal on, so a load balancer stops sending while sessions drain.
      stopping = true;
      await Promise.all(listeners.map((l) => l.close(graceMs)));
      await (adminClosed ??= admin?.close());
    },
  };
}
