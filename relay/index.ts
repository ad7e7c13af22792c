import type { Config, ListenerConfig } from '../src/config.js';
import type { Logger } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import { smtpSettings } from '../proxies/smtp/index.js';
import { DEFAULT_MAX_LINE, smtpReplies } from '../proxies/smtp/replies.js';
import type { ProtocolModule } from '../proxies/types.js';
import type { RelayConfig } from './config.js';
import { type ControlRequest, watchRequests } from './control.js';
import { ConnectionPool } from './delivery/pool.js';
import { serveIntake } from './intake.js';
import { RelayMetrics } from './metrics.js';
import { QueueRunner } from './queue-runner.js';
import { SenderDirectory } from './senders.js';
import { Spool } from './spool.js';

/** The outbound relay of a running instance: its queues, its delivery, its listeners' words. */
export class Relay {
  private senders: SenderDirectory;
  private stopWatching: () => void = () => {};

  private constructor(
    private config: Config & { relay: RelayConfig },
    readonly spool: Spool,
    readonly runner: QueueRunner,
    private readonly pool: ConnectionPool,
    private readonly metrics: RelayMetrics,
    private readonly logger: Logger,
  ) {
    this.senders = new SenderDirectory(config);
  }

  /**
   * Loads every queue (removing what a crash left half-written), carries out waiting control
   * requests, then starts delivering.
   */
  static async start(config: Config & { relay: RelayConfig }, logger: Logger, metrics: Metrics): Promise<Relay> {
    const spool = new Spool(config.relay.spool);
    const pool = new ConnectionPool(config.relay);
    let relay: Relay | undefined;
    let runner: QueueRunner | undefined;
    const relayMetrics = new RelayMetrics(metrics.registry, () => runner?.messages.values() ?? []);
    runner = new QueueRunner({ spool, pool, logger, metrics: relayMetrics, config: () => relay!.config.relay, senders: () => relay!.senders });
    relay = new Relay(config, spool, runner, pool, relayMetrics, logger);
    const messages = await spool.load({ clean: true, onUnreadable: (file, why) => logger.error('relay: unreadable queue record left in place', { file, error: why }) });
    for (const m of messages) runner.messages.set(m.id, m);
    const started = relay;
    relay.stopWatching = await watchRequests(spool.root, (request) => started.handle(request), (err) => logger.error('relay control folder', { error: err.message }));
    logger.info('relay started', { spool: spool.root, queued: messages.length });
    for (const m of messages) runner.add(m);
    return relay;
  }

  private async handle(request: ControlRequest): Promise<void> {
    if (request.action === 'flush') {
      const n = this.runner.flush(request.tenant);
      this.logger.info('relay flush', { tenant: request.tenant ?? '(all)', messages: n });
    } else if (request.action === 'delete') {
      const found = await this.runner.delete(request.id);
      this.logger.info('relay delete', { id: request.id, found });
    }
  }

  /** The protocol module a relay listener serves its clients with. */
  moduleFor(listener: ListenerConfig): ProtocolModule {
    const settings = smtpSettings(listener);
    const table = smtpReplies(settings);
    return {
      name: 'smtp',
      maxLineLength: DEFAULT_MAX_LINE,
      greeting: () => `220 ${settings.hostname} ESMTP relay\r\n`,
      reply: (kind) => table[kind],
      readLogin: () => Promise.reject(new Error('the relay serves whole sessions')),
      replayLogin: () => Promise.reject(new Error('the relay serves whole sessions')),
      serve: serveIntake({
        settings,
        identifyBy: listener.identifyBy ?? ['auth', 'address'],
        maxRecipients: this.config.relay.maxRecipients,
        spool: this.spool,
        senders: () => this.senders,
        accepted: (message) => {
          this.metrics.messageAccepted(message.queue);
          this.runner.add(message);
        },
      }),
    };
  }

  /** New tenants, addresses and names apply to the next transaction and the next attempt. */
  reload(config: Config): void {
    if (!config.relay) {
      this.logger.warn('reload: the relay section is gone; the relay keeps running until a restart');
      return;
    }
    const before = this.config.relay;
    const fixed = (['spool', 'maxRecipients', 'connectionIdleMs', 'maxMessagesPerConnection', 'maxConnectionsPerDestination', 'connectTimeoutMs', 'replyTimeoutMs', 'dataEndTimeoutMs', 'tls'] as const).filter(
      (key) => JSON.stringify(before[key]) !== JSON.stringify(config.relay![key]),
    );
    if (fixed.length > 0) this.logger.warn('reload: these relay settings apply after a restart', { ignored: fixed.map((k) => `relay.${k}`) });
    // Tenants, addresses, names, transports, retry times and per-tenant limits apply to the next transaction and attempt.
    this.config = config as Config & { relay: RelayConfig };
    this.senders = new SenderDirectory(config);
  }

  /** Stops delivering: running attempts are cut, their messages stay queued for the next start. */
  async close(): Promise<void> {
    this.stopWatching();
    this.pool.close();
    await this.runner.close();
  }
}
