import net from 'node:net';
import type { Peer, ProtocolModule } from '../proxies/types.js';
import { Admission, blockListOf } from './admission.js';
import type { AuthPenalty } from './auth-penalty.js';
import { BackendPool, DEFAULT_POOL } from './backend-pool.js';
import type { Limits, ListenerConfig } from './config.js';
import type { DataSetup } from './data-channel.js';
import type { Logger } from './log.js';
import { PassivePorts } from './port-range.js';
import { readProxyHeader } from './proxy-header-reader.js';
import { peerFrom } from './proxy-protocol.js';
import { FailureTiming } from './failure-timing.js';
import type { ListenerMetrics, RefusalLimit } from './metrics.js';
import { Session, type SessionOutcome } from './session.js';
import type { TenantConnections } from './tenant-connections.js';
import { unmapIPv4, type TenantDirectory } from './tenants.js';
import type { SessionDeps } from './session.js';

/** After the refusal line, how long a refused client may take to close before its socket is destroyed. */
const REFUSAL_LINGER_MS = 2_000;
/** Refused sockets lingering at once; past this a refusal is a plain close (a flood must not hold sockets). */
const MAX_LINGERING_REFUSALS = 1_000;

/** What a listener needs from the running instance. */
export interface ListenerDeps {
  readonly module: ProtocolModule;
  readonly directory: () => TenantDirectory;
  readonly tls?: SessionDeps['tls'];
  readonly backendTls?: SessionDeps['backendTls'];
  readonly limits: Limits;
  readonly logger: Logger;
  readonly onSessionDone: (outcome: SessionOutcome) => void;
  readonly metrics: ListenerMetrics;
  /** Shared by every listener of the instance: per-tenant session counts, per-address login failures. */
  readonly tenantConnections?: TenantConnections;
  readonly authPenalty?: AuthPenalty;
}

/** One TCP server for one configured listener; owns its sessions until they are done. */
export class Listener {
  private readonly server: net.Server;
  /** Open sessions, each with the client address the admission limits counted it under. */
  private readonly sessions = new Map<Session, string>();
  /** What every session of this listener is given: one object for all of them. */
  private readonly sessionDeps: SessionDeps;
  /** Refused connections still saying their one line. */
  private readonly refusing = new Set<net.Socket>();
  private readonly admission: Admission;
  private readonly failureTiming = new FailureTiming();
  /** Balancers whose connections open with a PROXY header (proxyProtocol.trusted). */
  private readonly balancers: net.BlockList | undefined;
  /** Connections from balancers whose PROXY header has not arrived yet. */
  private readonly awaitingHeader = new Set<net.Socket>();
  private closing: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];
  /** FTP: the listener's passive ports, shared by its sessions. */
  readonly passivePorts: PassivePorts | undefined;
  private readonly data: DataSetup | undefined;
  /** SMTP mx: backend connections between client sessions. */
  private readonly backendPool: BackendPool | undefined;

  constructor(
    readonly config: ListenerConfig,
    private readonly deps: ListenerDeps,
  ) {
    // allowHalfOpen: a client's FIN is passed on to the backend, not taken as a close.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.passivePorts = config.passivePorts && new PassivePorts(config.passivePorts);
    this.admission = new Admission(deps.limits);
    this.balancers = config.proxyProtocol && blockListOf(config.proxyProtocol.trusted);
    this.backendPool = poolFor(config);
    const pool = this.backendPool;
    if (pool) deps.metrics.watchBackendPool(() => pool.size);
    this.data = this.passivePorts && { ports: this.passivePorts, passiveAddress: config.passiveAddress, backendDataMode: config.backendDataMode ?? 'passive' };
    this.sessionDeps = {
      module: deps.module,
      directory: deps.directory,
      tls: deps.tls,
      backendTls: deps.backendTls,
      limits: deps.limits,
      banner: config.banner,
      logger: deps.logger,
      data: this.data,
      failureTiming: this.failureTiming,
      events: deps.metrics,
      tenantConnections: deps.tenantConnections,
      authPenalty: deps.authPenalty,
      backendPool: this.backendPool,
      onDone: (session, outcome) => this.sessionDone(session, outcome),
    };
    this.server.on('error', (err) => deps.logger.error('listener error', { listener: this.name, error: err.message }));
  }

  get name(): string {
    return `${this.config.protocol}@${this.config.address}:${this.config.port}`;
  }

  /** Sessions not yet done (sockets still open). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Binds the configured address, or takes `fd`, a listening socket systemd passed. */
  listen(fd?: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(fd === undefined ? { host: this.config.address, port: this.config.port } : { fd }, () => {
        this.server.off('error', onError);
        this.deps.logger.info('listening', { listener: this.name, port: this.address().port, ...(fd === undefined ? {} : { fd, from: 'systemd' }) });
        resolve(this.address());
      });
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /**
   * Serves a connection accepted by someone else (inetd / xinetd, systemd `Accept=yes`), exactly
   * like one this listener accepted itself.
   */
  adopt(socket: net.Socket): void {
    this.accept(socket);
  }

  private accept(socket: net.Socket): void {
    if (this.balancers) {
      // A client that reset before we got here has no address left to judge: it is gone anyway.
      if (socket.remoteAddress === undefined) return void socket.destroy();
      const from = unmapIPv4(socket.remoteAddress);
      if (this.balancers.check(from, net.isIPv6(from) ? 'ipv6' : 'ipv4')) return this.acceptFromBalancer(socket, from);
    }
    this.admit(socket, undefined);
  }

  /**
   * A trusted balancer's connection: its PROXY header names the client, who is then admitted and
   * served as if it had connected itself. No header, or a malformed one: closed, logged, counted.
   */
  private acceptFromBalancer(socket: net.Socket, from: string): void {
    const { logger, metrics } = this.deps;
    socket.on('error', () => {}); // a reset after the header is the session's to report; before it, the reader's
    this.awaitingHeader.add(socket);
    readProxyHeader(socket, this.config.proxyProtocol!.timeoutMs).then(
      (header) => {
        this.awaitingHeader.delete(socket);
        if (this.closing || socket.destroyed) {
          socket.destroy();
          if (this.isIdle()) this.notifyIdle();
          return;
        }
        const ownEnds: Peer = { clientAddress: from, clientPort: socket.remotePort ?? 0, localAddress: unmapIPv4(socket.localAddress ?? ''), localPort: socket.localPort ?? 0 };
        socket.resume(); // the reader paused it; the session's reader attaches before the next tick
        this.admit(socket, header.source ? peerFrom(header, ownEnds) : undefined);
      },
      (err: Error) => {
        this.awaitingHeader.delete(socket);
        const client = `${from}:${socket.remotePort}`;
        socket.destroy();
        if (this.isIdle()) this.notifyIdle();
        if (this.closing) return; // closed by the shutdown itself: no refusal to report
        metrics.refused('proxyHeader');
        logger.warn('connection refused', { listener: this.name, client, reason: 'proxyHeader', error: err.message });
      },
    );
  }

  /** Applies the connection limits to the client (`peer`'s when a balancer named one), then starts its session. */
  private admit(socket: net.Socket, peer: Peer | undefined): void {
    const { metrics } = this.deps;
    const limited = this.admission.active;
    let address = '';
    if (limited) {
      if (peer) address = peer.clientAddress;
      else if (socket.remoteAddress === undefined) return void socket.destroy();
      else address = unmapIPv4(socket.remoteAddress);
      const refusal = this.admission.admit(address);
      if (refusal) return this.refuse(socket, address, refusal, peer?.clientPort);
    }
    metrics.started.inc();
    metrics.active.inc();
    const session = new Session(socket, this.sessionDeps, peer);
    this.sessions.set(session, address);
    session.start();
  }

  /** A session has closed both its sockets. */
  private sessionDone(session: Session, outcome: SessionOutcome): void {
    const address = this.sessions.get(session);
    this.sessions.delete(session);
    if (this.admission.active && address !== undefined) this.admission.release(address);
    const { metrics } = this.deps;
    metrics.active.dec();
    metrics.sessionDone(outcome);
    this.deps.onSessionDone(outcome);
    if (this.isIdle()) this.notifyIdle();
  }

  /** Answers with the protocol's temporary-failure line and closes; no session, no backend. */
  private refuse(socket: net.Socket, address: string, limit: RefusalLimit, port = socket.remotePort): void {
    this.deps.metrics.refused(limit);
    if (this.deps.logger.isInfoEnabled()) this.deps.logger.info('connection refused', { listener: this.name, client: `${address}:${port}`, reason: limit });
    socket.on('error', () => {});
    if (this.refusing.size >= MAX_LINGERING_REFUSALS) return void socket.destroy();
    this.refusing.add(socket);
    const linger = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
    socket.once('close', () => {
      clearTimeout(linger);
      this.refusing.delete(socket);
      if (this.isIdle()) this.notifyIdle();
    });
    socket.end(this.deps.module.reply('tooManyConnections'), 'latin1');
    socket.resume(); // read and drop until the client's FIN, so the line is not lost to a reset
  }

  private isIdle(): boolean {
    return this.sessions.size === 0 && this.refusing.size === 0 && this.awaitingHeader.size === 0;
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves once no session holds a socket (tests use it to prove nothing leaked). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops accepting and says goodbye to sessions still logging in. Logged-in sessions get
   * `graceMs` (default: the `shutdownGraceMs` limit) to finish, then are cut. Calling it again
   * with a shorter grace (a second signal) cuts them sooner.
   */
  /** The tenant directory was reloaded: pooled backend connections may be to backends that changed or went. */
  directoryChanged(): void {
    this.backendPool?.drain();
  }

  async close(graceMs = this.deps.limits.shutdownGraceMs): Promise<void> {
    // Sessions stop parking once told to stop; what is parked already goes now.
    this.backendPool?.drain();
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const socket of this.awaitingHeader) socket.destroy(); // no session yet: nothing to say goodbye to
      for (const session of this.sessions.keys()) session.shutdown(false);
    }
    const cut = () => {
      for (const session of this.sessions.keys()) session.shutdown(true);
      for (const socket of this.refusing) socket.destroy();
    };
    const timer = graceMs > 0 && this.sessions.size > 0 ? setTimeout(cut, graceMs) : undefined;
    if (graceMs <= 0) cut();
    await Promise.all([this.closing, this.whenIdle()]);
    clearTimeout(timer);
    this.backendPool?.drain();
  }
}

/** An mx listener's pool, unless its `backendPool.maxIdle` is 0. */
function poolFor(config: ListenerConfig): BackendPool | undefined {
  if (config.protocol !== 'smtp' || (config.mode ?? 'mx') !== 'mx') return undefined;
  const settings = { ...DEFAULT_POOL, ...config.backendPool };
  return settings.maxIdle > 0 ? new BackendPool(settings) : undefined;
}
