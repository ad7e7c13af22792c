import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { SessionOutcome } from './session.js';
import { tenantParts } from './tenant-shares.js';

/** Why a connection was refused before any session began (the `limit` label). */
export type RefusalLimit = 'allowFrom' | 'denyFrom' | 'maxConnections' | 'maxConnectionsPerIp' | 'connectionRatePerIp' | 'proxyHeader';

/**
 * The `tenant` label of a login that named no configured tenant. Never the login's own domain:
 * anyone could mint one series per made-up domain. An empty value is, to Prometheus, no label.
 */
export const NO_TENANT = '';

/** The `tenant` label of every tenant past `maxTenantSeries` (a domain cannot contain "_"). */
export const OTHER_TENANTS = '_other';

/** Tenants with series of their own, by default: beyond, they share OTHER_TENANTS. */
export const DEFAULT_MAX_TENANT_SERIES = 10_000;

type Child = { inc(value?: number): void };

/**
 * A series on the session path (several per session): a plain addition, handed to prom-client's
 * child only when the registry is read (the metrics' collect hook). prom-client hashes the labels
 * on every inc(), even a bound child's: measured 1.5% of an SMTP session's CPU.
 */
class Tally {
  private pending = 0;

  constructor(private readonly child: { inc(value: number): void }) {}

  inc(value = 1): void {
    this.pending += value;
  }

  dec(): void {
    this.pending -= 1;
  }

  flush(): void {
    if (this.pending === 0) return;
    const value = this.pending;
    this.pending = 0;
    this.child.inc(value);
  }
}

/** One tenant's series on one protocol, bound once and kept: the hot path only calls inc(). */
interface TenantSeries {
  readonly sessions: Child;
  readonly active: { inc(): void; dec(): void };
  readonly loginsOk: Child;
  readonly bytesUp: Child;
  readonly bytesDown: Child;
  /** By reason / code: few values, bound on first use. */
  readonly loginsFailed: Map<string, Child>;
  readonly backendFailures: Map<string, Child>;
}

/**
 * Every Concierge counter, in a registry of its own (tests run several instances in one process).
 * Series per tenant are created at a tenant's first session, so only tenants with traffic cost memory.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly tallies: Tally[] = [];
  /** The collect hook of every metric with tallies: whichever is read first brings them all up to date. */
  private readonly flush = (): void => {
    for (const tally of this.tallies) tally.flush();
  };
  private readonly sessionsStarted = this.counter('concierge_sessions_started_total', 'Connections accepted as sessions, per listener.', ['listener', 'protocol']);
  private readonly sessionsActive = new Gauge({ name: 'concierge_sessions_active', help: 'Sessions holding a socket now, per listener.', labelNames: ['listener', 'protocol'], registers: [this.registry], collect: this.flush });
  private readonly refusals = this.counter('concierge_connections_refused_total', 'Connections refused before a session, per listener and limit.', ['listener', 'protocol', 'limit']);
  private readonly tenantSessions = this.counter('concierge_tenant_sessions_total', 'Closed sessions that reached a tenant (a route was found), per tenant; an SMTP mx session counts once for each tenant it delivered to.', ['tenant', 'protocol']);
  private readonly tenantActive = new Gauge({ name: 'concierge_tenant_sessions_active', help: 'Logged-in sessions now, per tenant (POP3, FTP).', labelNames: ['tenant', 'protocol'], registers: [this.registry], collect: this.flush });
  private readonly loginsOk = this.counter('concierge_logins_ok_total', 'Logins the backend accepted.', ['tenant', 'protocol']);
  private readonly loginsFailed = this.counter('concierge_logins_failed_total', 'Logins refused, by reason (authFailed, inUse, tempFailure, unknownTenant); tenant "" when no configured tenant matched.', ['tenant', 'protocol', 'reason']);
  private readonly backendFailures = this.counter('concierge_backend_failures_total', 'Backends that could not be reached or broke the login dialogue, by error code.', ['tenant', 'protocol', 'code']);
  private readonly tenantRefusals = this.counter('concierge_tenant_refusals_total', 'Logins refused by a limit of their tenant (maxConnections) before any backend was dialled.', ['tenant', 'protocol', 'limit']);
  private readonly backendReuses = this.counter('concierge_backend_reuses_total', 'Sessions that took an idle backend connection from their listener\'s pool instead of dialling (SMTP mx backendPool).', ['listener', 'protocol']);
  /** Listener name → how many idle connections its pool holds now (read at each scrape). */
  private readonly pools = new Map<string, { protocol: string; size: () => number }>();
  private readonly idleBackends = new Gauge({
    name: 'concierge_backend_idle_connections',
    help: 'Idle backend connections kept for later sessions, per listener (SMTP mx backendPool).',
    labelNames: ['listener', 'protocol'],
    registers: [this.registry],
    collect: () => {
      for (const [listener, pool] of this.pools) this.idleBackends.set({ listener, protocol: pool.protocol }, pool.size());
    },
  });
  private readonly tlsHandshakes = this.counter('concierge_tls_handshakes_total', 'Client TLS handshakes (implicit or after STARTTLS), per listener, by outcome: the TLS version, or "failed".', ['listener', 'protocol', 'outcome']);
  private readonly bytesUp = this.counter('concierge_client_to_backend_bytes_total', 'Bytes read from clients (FTP data connections included), counted when a session closes.', ['tenant', 'protocol']);
  private readonly bytesDown = this.counter('concierge_backend_to_client_bytes_total', 'Bytes written to clients (FTP data connections included), counted when a session closes.', ['tenant', 'protocol']);
  /** protocol → tenant → series. */
  private readonly tenants = new Map<string, Map<string, TenantSeries>>();
  /** Tenants with series of their own, over all protocols. */
  private readonly labelled = new Set<string>();
  private readonly maxTenantSeries: number;

  /**
   * `processMetrics`: add prom-client's default process and Node.js metrics (only where they are
   * served). `maxTenantSeries`: how many tenants get a label of their own (first come, first
   * served); the rest are summed under OTHER_TENANTS, so 100,000 tenants cannot swamp Prometheus.
   */
  constructor(options: { processMetrics?: boolean; maxTenantSeries?: number } = {}) {
    this.maxTenantSeries = options.maxTenantSeries ?? DEFAULT_MAX_TENANT_SERIES;
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The label a tenant's counters go under. */
  private labelOf(tenant: string): string {
    if (this.labelled.has(tenant)) return tenant;
    if (this.labelled.size >= this.maxTenantSeries) return OTHER_TENANTS;
    this.labelled.add(tenant);
    return tenant;
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry], collect: this.flush });
  }

  private tally(child: { inc(value: number): void }): Tally {
    child.inc(0); // the series shows, at 0, from its first use: as prom-client's own children do
    const tally = new Tally(child);
    this.tallies.push(tally);
    return tally;
  }

  /** Exposes how many client addresses carry an auth penalty now (read at each scrape). */
  watchAuthPenalty(penalty: { readonly size: number }): void {
    new Gauge({
      name: 'concierge_auth_penalty_addresses',
      help: 'Client addresses whose failed logins are answered later than authFailDelayMs now (auth penalty).',
      registers: [this.registry],
      collect() {
        this.set(penalty.size);
      },
    });
  }

  /** The exposition's media type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The counters of one listener, its label children bound now. */
  forListener(listener: string, protocol: string): ListenerMetrics {
    let tenants = this.tenants.get(protocol);
    if (!tenants) this.tenants.set(protocol, (tenants = new Map()));
    const seriesOf = (tenant: string): TenantSeries => {
      let series = tenants.get(tenant);
      if (!series) {
        const label = this.labelOf(tenant);
        // Tenants past the cap share one series object, so the map holds one entry per label.
        series = label === tenant ? undefined : tenants.get(label);
        if (series) return series;
        const labels = { tenant: label, protocol };
        series = {
          sessions: this.tally(this.tenantSessions.labels(labels)),
          active: this.tally(this.tenantActive.labels(labels)),
          loginsOk: this.tally(this.loginsOk.labels(labels)),
          bytesUp: this.tally(this.bytesUp.labels(labels)),
          bytesDown: this.tally(this.bytesDown.labels(labels)),
          loginsFailed: new Map(),
          backendFailures: new Map(),
        };
        tenants.set(label, series);
      }
      return series;
    };
    let reuses: Tally | undefined;
    const refusals = new Map<RefusalLimit, Child>();
    const unknownFailed = new Map<string, Child>();
    const handshakes = new Map<string, Child>();
    return {
      started: this.tally(this.sessionsStarted.labels({ listener, protocol })),
      active: this.tally(this.sessionsActive.labels({ listener, protocol })),
      refused: (limit) => {
        let child = refusals.get(limit);
        if (!child) refusals.set(limit, (child = this.refusals.labels({ listener, protocol, limit })));
        child.inc();
      },
      loginOk: (tenant) => {
        const series = seriesOf(tenant);
        series.loginsOk.inc();
        series.active.inc();
      },
      loginFailed: (tenant, reason) => {
        const byReason = tenant === undefined ? unknownFailed : seriesOf(tenant).loginsFailed;
        let child = byReason.get(reason);
        if (!child) byReason.set(reason, (child = this.loginsFailed.labels({ tenant: tenant === undefined ? NO_TENANT : this.labelOf(tenant), protocol, reason })));
        child.inc();
      },
      backendFailed: (tenant, code) => {
        const byCode = seriesOf(tenant).backendFailures;
        let child = byCode.get(code);
        if (!child) byCode.set(code, (child = this.backendFailures.labels({ tenant: this.labelOf(tenant), protocol, code })));
        child.inc();
      },
      backendReused: () => (reuses ??= this.tally(this.backendReuses.labels({ listener, protocol }))).inc(),
      watchBackendPool: (size) => void this.pools.set(listener, { protocol, size }),
      tlsHandshake: (outcome) => {
        let child = handshakes.get(outcome);
        if (!child) handshakes.set(outcome, (child = this.tlsHandshakes.labels({ listener, protocol, outcome })));
        child.inc();
      },
      tenantRefused: (tenant, limit) => {
        this.tenantRefusals.inc({ tenant: this.labelOf(tenant), protocol, limit });
      },
      sessionDone: (outcome) => {
        if (outcome.tenant === undefined) return;
        if (outcome.loggedIn) seriesOf(outcome.tenant).active.dec();
        // An mx session that delivered to several tenants counts once for each, with its share of the bytes.
        for (const [tenant, bytes] of tenantParts(outcome)) {
          const series = seriesOf(tenant);
          series.sessions.inc();
          if (bytes.bytesUp > 0) series.bytesUp.inc(bytes.bytesUp);
          if (bytes.bytesDown > 0) series.bytesDown.inc(bytes.bytesDown);
        }
      },
    };
  }
}

/** What a listener and its sessions report; every call is a map lookup and an add. */
export interface ListenerMetrics {
  readonly started: { inc(): void };
  readonly active: { inc(): void; dec(): void };
  refused(limit: RefusalLimit): void;
  loginOk(tenant: string): void;
  /** `tenant` undefined: the login named no configured tenant. */
  loginFailed(tenant: string | undefined, reason: string): void;
  backendFailed(tenant: string, code: string): void;
  tenantRefused(tenant: string, limit: 'maxConnections'): void;
  tlsHandshake(outcome: string): void;
  /** A session took an idle backend connection from the listener's pool. */
  backendReused(): void;
  /** The listener keeps a backend pool: its idle count is read at each scrape. */
  watchBackendPool(size: () => number): void;
  /** Adds a closed session's bytes to its tenant, or to each tenant it served its share (sessions that reached no tenant add nothing). */
  sessionDone(outcome: SessionOutcome): void;
}
