import net from 'node:net';
import type { ProtocolModule } from '../proxies/types.js';
import type { Limits, ListenerConfig } from './config.js';
import type { DataSetup } from './data-channel.js';
import type { Logger } from './log.js';
import { PassivePorts } from './port-range.js';
import { FailureTiming } from './failure-timing.js';
import { Session, type SessionOutcome } from './session.js';
import type { TenantDirectory } from './tenants.js';

/** What a listener needs from the running instance. */
export interface ListenerDeps {
  readonly module: ProtocolModule;
  readonly directory: () => TenantDirectory;
  readonly limits: Limits;
  readonly logger: Logger;
  readonly onSessionDone: (outcome: SessionOutcome) => void;
}

/** One TCP server for one configured listener; owns its sessions until they are done. */
export class Listener {
  private readonly server: net.Server;
  private readonly sessions = new Set<Session>();
  private readonly failureTiming = new FailureTiming();
  private closing: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];
  /** FTP: the listener's passive ports, shared by its sessions. */
  readonly passivePorts: PassivePorts | undefined;
  private readonly data: DataSetup | undefined;

  constructor(
    readonly config: ListenerConfig,
    private readonly deps: ListenerDeps,
  ) {
    // allowHalfOpen: a client's FIN is passed on to the backend, not taken as a close.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.passivePorts = config.passivePorts && new PassivePorts(config.passivePorts);
    this.data = this.passivePorts && { ports: this.passivePorts, passiveAddress: config.passiveAddress, backendDataMode: config.backendDataMode ?? 'passive' };
    this.server.on('error', (err) => deps.logger.error('listener error', { listener: this.name, error: err.message }));
  }

  get name(): string {
    return `${this.config.protocol}@${this.config.address}:${this.config.port}`;
  }

  /** Sessions not yet done (sockets still open). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.config.address, port: this.config.port }, () => {
        this.server.off('error', onError);
        this.deps.logger.info('listening', { listener: this.name, port: this.address().port });
        resolve(this.address());
      });
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  private accept(socket: net.Socket): void {
    const session = new Session(socket, {
      module: this.deps.module,
      directory: this.deps.directory,
      limits: this.deps.limits,
      banner: this.config.banner,
      logger: this.deps.logger,
      data: this.data,
      failureTiming: this.failureTiming,
      onDone: (s, outcome) => {
        this.sessions.delete(s);
        this.deps.onSessionDone(outcome);
        if (this.sessions.size === 0) this.notifyIdle();
      },
    });
    this.sessions.add(session);
    session.start();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves once no session holds a socket (tests use it to prove nothing leaked). */
  whenIdle(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops accepting and says goodbye to sessions still logging in. Logged-in sessions get
   * `graceMs` (default: the `shutdownGraceMs` limit) to finish, then are cut. Calling it again
   * with a shorter grace (a second signal) cuts them sooner.
   */
  async close(graceMs = this.deps.limits.shutdownGraceMs): Promise<void> {
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const session of this.sessions) session.shutdown(false);
    }
    const cut = () => {
      for (const session of this.sessions) session.shutdown(true);
    };
    const timer = graceMs > 0 && this.sessions.size > 0 ? setTimeout(cut, graceMs) : undefined;
    if (graceMs <= 0) cut();
    await Promise.all([this.closing, this.whenIdle()]);
    clearTimeout(timer);
  }
}
