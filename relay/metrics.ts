import { Counter, Gauge, type Registry } from 'prom-client';
import type { QueuedMessage } from './spool.js';

/** The relay's series, per queue (tenant domain, or "_host"): few, since only configured tenants have queues. */
export class RelayMetrics {
  private readonly accepted: Counter<'tenant'>;
  private readonly delivered: Counter<'tenant'>;
  private readonly deferred: Counter<'tenant'>;
  private readonly bounced: Counter<'tenant'>;

  /** `queued()` is read at each scrape: the messages waiting now. */
  constructor(registry: Registry, queued: () => Iterable<QueuedMessage>) {
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ['tenant'], registers: [registry] });
    this.accepted = counter('concierge_relay_accepted_total', 'Messages accepted into a tenant queue (answered 250).');
    this.delivered = counter('concierge_relay_delivered_total', 'Recipients delivered (the receiving server answered 250 to the end of data).');
    this.deferred = counter('concierge_relay_deferred_total', 'Delivery attempts that left recipients waiting for a retry.');
    this.bounced = counter('concierge_relay_bounced_total', 'Recipients given up on (5xx, or maxQueueLifetimeMs passed).');
    const snapshot = () => {
      const count = new Map<string, number>();
      const oldest = new Map<string, number>();
      for (const m of queued()) {
        count.set(m.queue, (count.get(m.queue) ?? 0) + 1);
        oldest.set(m.queue, Math.min(oldest.get(m.queue) ?? Infinity, m.receivedAt));
      }
      return { count, oldest };
    };
    new Gauge({
      name: 'concierge_relay_queued_messages',
      help: 'Messages waiting in each tenant queue.',
      labelNames: ['tenant'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [tenant, n] of snapshot().count) this.set({ tenant }, n);
      },
    });
    new Gauge({
      name: 'concierge_relay_oldest_message_age_seconds',
      help: 'Age of the oldest message waiting in each tenant queue.',
      labelNames: ['tenant'],
      registers: [registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const [tenant, at] of snapshot().oldest) this.set({ tenant }, (now - at) / 1000);
      },
    });
  }

  messageAccepted(tenant: string): void {
    this.accepted.inc({ tenant });
  }
  recipientsDelivered(tenant: string, n: number): void {
    if (n > 0) this.delivered.inc({ tenant }, n);
  }
  attemptDeferred(tenant: string): void {
    this.deferred.inc({ tenant });
  }
  recipientsBounced(tenant: string, n: number): void {
    if (n > 0) this.bounced.inc({ tenant }, n);
  }
}
