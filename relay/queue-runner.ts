import { EventEmitter } from 'node:events';
import type { Logger } from '../src/log.js';
import type { RelayConfig } from './config.js';
import { attemptDelivery } from './delivery/attempt.js';
import type { ConnectionPool } from './delivery/pool.js';
import { buildDsn } from './dsn.js';
import type { RelayMetrics } from './metrics.js';
import type { SenderDirectory } from './senders.js';
import { HOST_QUEUE, type QueuedMessage, type Spool } from './spool.js';

export interface RunnerDeps {
  readonly spool: Spool;
  readonly pool: ConnectionPool;
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  config(): RelayConfig;
  senders(): SenderDirectory;
}

/** Longest setTimeout Node takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The queues in memory (their files are the truth): which message is due, which is being sent,
 * and at most `maxDeliveriesPerTenant` attempts per tenant at once. After each attempt a message
 * is removed (all recipients done, failures bounced) or saved with its next retry time.
 */
export class QueueRunner {
  readonly messages = new Map<string, QueuedMessage>();
  /**
   * 'deferred' (saved for a retry), 'finished' (delivered or bounced, then removed), 'deleted'
   * (removed on request), 'attemptFailed' (the attempt itself broke: no body, a disk error); each with the message.
   */
  readonly events = new EventEmitter();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly perTenant = new Map<string, number>();
  private readonly deleteRequested = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly deps: RunnerDeps) {}

  /** A message is on disk: deliver it when due. */
  add(message: QueuedMessage): void {
    this.messages.set(message.id, message);
    this.schedule();
  }

  /** Everything of `tenant` (or every queue) is due now. */
  flush(tenant?: string): number {
    let n = 0;
    const now = Date.now();
    for (const m of this.messages.values()) {
      if (tenant !== undefined && m.queue !== tenant) continue;
      m.nextAttemptAt = now;
      n++;
    }
    this.schedule();
    return n;
  }

  /** Removes a message from its queue; one being sent now goes once its attempt ends. */
  async delete(id: string): Promise<boolean> {
    const message = this.messages.get(id);
    if (!message) return false;
    if (this.inFlight.has(id)) {
      this.deleteRequested.add(id);
      return true;
    }
    this.messages.delete(id);
    await this.deps.spool.remove(message);
    this.events.emit('deleted', message);
    return true;
  }

  /** Starts due attempts soon (coalesced: many adds in one turn cost one scan). */
  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.run();
    });
  }

  private run(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const now = Date.now();
    const limit = this.deps.config().maxDeliveriesPerTenant;
    let next = Infinity;
    for (const m of this.messages.values()) {
      if (this.inFlight.has(m.id)) continue;
      if (m.nextAttemptAt > now) {
        next = Math.min(next, m.nextAttemptAt);
        continue;
      }
      const busy = this.perTenant.get(m.queue) ?? 0;
      if (busy >= limit) continue; // picked up when one of the tenant's attempts ends
      this.perTenant.set(m.queue, busy + 1);
      const attempt = this.attempt(m)
        .catch((err: unknown) => {
          // A body gone missing, a full disk: try again later rather than at once, forever.
          m.nextAttemptAt = Date.now() + this.deps.config().retryInitialMs;
          this.deps.logger.error('relay attempt failed', { id: m.id, queue: m.queue, retryInMs: this.deps.config().retryInitialMs, error: err instanceof Error ? err.message : String(err) });
          this.events.emit('attemptFailed', m);
        })
        .finally(() => {
          this.inFlight.delete(m.id);
          this.perTenant.set(m.queue, (this.perTenant.get(m.queue) ?? 1) - 1);
          if (this.inFlight.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
          this.schedule();
        });
      this.inFlight.set(m.id, attempt);
    }
    if (next < Infinity) {
      this.timer = setTimeout(() => this.schedule(), Math.min(MAX_TIMER_MS, Math.max(0, next - Date.now())));
      this.timer.unref();
    }
  }

  private async attempt(message: QueuedMessage): Promise<void> {
    const { deps } = this;
    const identity = deps.senders().ofQueue(message.queue);
    message.attempts++;
    // A tenant's mail leaves from the tenant's address or not at all (the host may go without one).
    const refusal = !identity ? `queue ${message.queue} belongs to no configured tenant` : identity.queue !== HOST_QUEUE && !identity.sourceAddress ? `tenant ${identity.queue} has no sourceAddress to send from` : undefined;
    if (refusal || !identity) {
      for (const r of message.recipients) if (r.state === 'pending') Object.assign(r, { status: '4.3.5', diagnostic: refusal });
    } else {
      const body = await deps.spool.readBody(message);
      await attemptDelivery(message, body, identity, {
        pool: deps.pool,
        transports: deps.config().transports,
        checkpoint: (m) => (m.recipients.some((r) => r.state === 'pending') ? deps.spool.save(m) : this.finish(m, body)),
      });
      if (message.recipients.every((r) => r.state !== 'pending')) {
        if (this.messages.has(message.id)) await this.finish(message, body);
        return;
      }
    }
    await this.deferOrExpire(message);
  }

  /** Some recipients wait: the next try after an exponential backoff, or a bounce once too old. */
  private async deferOrExpire(message: QueuedMessage): Promise<void> {
    const config = this.deps.config();
    const now = Date.now();
    const pending = message.recipients.filter((r) => r.state === 'pending');
    if (this.deleteRequested.delete(message.id)) {
      this.messages.delete(message.id);
      await this.deps.spool.remove(message);
      this.events.emit('deleted', message);
      return;
    }
    if (now - message.receivedAt >= config.maxQueueLifetimeMs) {
      for (const r of pending) {
        r.state = 'failed';
        r.status = r.status?.startsWith('4.') ? r.status : '4.4.7';
        r.diagnostic = `gave up after ${message.attempts} attempt(s): ${r.diagnostic ?? 'no answer'}`;
      }
      return this.finish(message, await this.deps.spool.readBody(message).catch(() => Buffer.alloc(0)));
    }
    message.nextAttemptAt = now + Math.min(config.retryMaxMs, config.retryInitialMs * 2 ** Math.min(30, message.attempts - 1));
    message.lastError = pending[0]?.diagnostic;
    this.deps.metrics.attemptDeferred(message.queue);
    this.deps.logger.info('relay deferred', { id: message.id, queue: message.queue, attempts: message.attempts, pending: pending.length, retryInMs: message.nextAttemptAt - now, reason: message.lastError });
    await this.deps.spool.save(message);
    this.events.emit('deferred', message);
  }

  /**
   * Every recipient is done: failures are reported to the sender (never to the null sender), then
   * the message leaves the queue. The DSN is saved before the removal: a crash in between sends
   * a second DSN, never none.
   */
  private async finish(message: QueuedMessage, body: Buffer): Promise<void> {
    const { deps } = this;
    this.messages.delete(message.id);
    this.deleteRequested.delete(message.id);
    const delivered = message.recipients.filter((r) => r.state === 'delivered');
    const failed = message.recipients.filter((r) => r.state === 'failed');
    if (failed.length > 0 && message.from !== '') await this.queueDsn(message, failed, body);
    await deps.spool.remove(message);
    // Logged once the message has left the queue: a log reader can count on its files being gone.
    deps.metrics.recipientsDelivered(message.queue, delivered.length);
    deps.metrics.recipientsBounced(message.queue, failed.length);
    if (delivered.length > 0) deps.logger.info('relay delivered', { id: message.id, queue: message.queue, recipients: delivered.map((r) => r.address), server: delivered[0]!.remoteMta, attempts: message.attempts });
    if (failed.length > 0) {
      deps.logger.info('relay bounced', { id: message.id, queue: message.queue, recipients: failed.map((r) => `${r.address} (${r.diagnostic ?? r.status})`) });
      if (message.from === '') deps.logger.info('relay: no DSN for a message from the null sender', { id: message.id });
    }
    this.events.emit('finished', message);
  }

  private async queueDsn(message: QueuedMessage, failed: QueuedMessage['recipients'], body: Buffer): Promise<void> {
    const identity = this.deps.senders().ofQueue(message.queue);
    const text = Buffer.from(buildDsn(message, failed, body, identity?.heloName ?? message.queue), 'latin1');
    const writer = await this.deps.spool.createBody(message.queue);
    await writer.write(text);
    const size = await writer.finish(0);
    const now = Date.now();
    const dsn: QueuedMessage = {
      id: writer.id,
      queue: message.queue,
      from: '',
      recipients: [{ address: message.from, state: 'pending' }],
      receivedAt: now,
      size,
      eightBit: false,
      ...(message.smtputf8 ? { smtputf8: true } : {}),
      attempts: 0,
      nextAttemptAt: now,
    };
    await this.deps.spool.save(dsn);
    this.deps.logger.info('relay DSN queued', { id: dsn.id, queue: dsn.queue, for: message.id, to: message.from });
    this.add(dsn);
  }

  /** Resolves when no attempt is running. */
  whenIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops starting attempts; running ones end on their own (the pool cuts their connections). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight.values()]);
  }
}
