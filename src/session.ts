import type { Socket } from 'node:net';
import type { BackendLink, BackendTarget, ControlContext, LoginContext, LoginRequest, Peer, ProtocolModule, RoutingContext, Verdict } from '../proxies/types.js';
import type { Backend } from './config.js';
import { DataPlane } from './data-channel.js';
import { type Dial, dialBackend } from './dial.js';
import { BackendError, ClientGoneError, ConciergeError, type ReplyKind } from './errors.js';
import { LineChannel } from './line-channel.js';
import { LineReader } from './line-reader.js';
import { encodeProxyHeader } from './proxy-protocol.js';
import { SessionLog } from './log.js';
import { ReadHook } from './read-hook.js';
import { type Splice, splice } from './splice.js';
import type { Route } from './tenants.js';
import { ClientTlsEnd } from './client-tls.js';
import { closePolitely, GOODBYE_LINGER_MS } from './polite-close.js';
import { type BackendTlsOptions, secureBackend, upgradeBackendChannel } from './tls.js';
import { TenantShares } from './tenant-shares.js';
import type { SessionDeps, SessionOutcome } from './session-contract.js';
import { unmapIPv4 } from './tenants.js';

export type { SessionDeps, SessionEvents, SessionOutcome } from './session-contract.js';

/** A backend that accepted the login, still framed by its LineChannel. */
interface LoggedIn {
  readonly socket: Socket;
  readonly channel: LineChannel;
  readonly verdict: Verdict & { ok: true };
  readonly hook: ReadHook | undefined;
  /** How TLS is spoken to this backend (FTP: its data connections are TLS too). */
  readonly tls: BackendTlsOptions | undefined;
}

/** Bytes of a backend's greeting or reply line, generous: the backend is trusted more than clients. */
const BACKEND_MAX_LINE = 8192;

/** A backend socket's error listener while something else reports its errors: one function for all sessions. */
function ignoreError(): void {}

let counter = 0;
const sidPrefix = process.pid.toString(36);

/**
 * One client connection from accept to close: login dialogue, backend dial and replay,
 * splice. `close()` is the only way out, and it runs once.
 */
export class Session {
  readonly id = `${sidPrefix}-${(++counter).toString(36)}`;
  /** 'serving': a routing module (SMTP mx) runs the session and holds backends as it needs them. */
  private phase: 'login' | 'serving' | 'spliced' | 'closed' = 'login';
  private readonly log: SessionLog;
  private errors = 0;
  private tenant: string | undefined;
  /** The tenant whose connection slot this session holds (tenantConnections). */
  private tenantSlot: string | undefined;
  private backend: Socket | undefined;
  /** What the held backend socket was dialled as: its TCP socket, config and address, and the client sessions it has served. */
  private held: { raw: Socket; backend: Backend; sourceAddress: string | undefined; uses: number } | undefined;
  private readonly onBackendClose = (): void => this.socketClosed();
  /** What close() must interrupt: an outstanding dial, or the auth-failure delay. */
  private pendingDial: Dial | undefined;
  private delay: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  /** Dropped once logged in: a cleared Timeout still holds its callback and this session's scope. */
  private loginTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  /** Removes the listener that ends a session whose client hangs up during its login. */
  private stopLoginWatch: (() => void) | undefined;
  private openSockets = 1;
  /** A spliced session's relay (POP3, SMTP submission): closed when both its sockets have closed. */
  private splice: Splice | undefined;
  /** A protocol-aware control relay (FTP) runs: it ends with its backend, whatever ended it. */
  private controlRelayed = false;
  /** That relay's data connections (from its first data command on), closed with the session. */
  private dataPlane: DataPlane | undefined;
  private outcome: SessionOutcome | undefined;
  /** A routing module's context (SMTP mx), and whether a shutdown asked it to end. */
  private routing: RoutingContext | undefined;
  private draining = false;
  private reported = false;
  /** A routing session's bytes per tenant, checkpointed at the end of each transaction. */
  private shares: TenantShares | undefined;
  /** Client bytes counted on sockets the session has moved off (the plaintext one before STARTTLS). */
  private bytesBefore = { up: 0, down: 0 };

  /** The client's socket: the accepted one, or the TLS socket over it once the handshake is done. */
  private client: Socket;
  /** Client TLS: the listener's settings, and the handshake's outcome once done. */
  private readonly tls: ClientTlsEnd;

  /**
   * `peerOverride`: the client a trusted balancer named in its PROXY header; it stands for the
   * socket's own ends in limits, logs, routing by local address, XCLIENT and FTP data checks.
   */
  constructor(
    raw: Socket,
    private readonly deps: SessionDeps,
    private readonly peerOverride?: Peer,
  ) {
    const client = raw;
    this.client = raw;
    this.tls = new ClientTlsEnd(deps.tls?.());
    // ws's lesson: the error handler goes on before anything else can fail.
    client.on('error', (err: NodeJS.ErrnoException) => this.close(`client error ${err.code ?? err.message}`));
    client.on('close', () => {
      if (this.phase === 'login' || this.phase === 'serving') this.close('client closed');
      this.socketClosed();
    });
    // Built at the first line written: at level "warn" a good session never pays for its address fields.
    this.log = new SessionLog(deps.logger, () => ({
      sid: this.id,
      proto: deps.module.name,
      client: peerOverride ? `${peerOverride.clientAddress}:${peerOverride.clientPort}` : `${unmapIPv4(client.remoteAddress ?? '?')}:${client.remotePort}`,
      ...(peerOverride ? { via: `${unmapIPv4(client.remoteAddress ?? '?')}:${client.remotePort}` } : {}),
    }));
    this.loginTimer = setTimeout(() => this.close('login timeout', 'timeout'), deps.limits.loginTimeoutMs);
  }

  /** Greets the client and runs the session to its end; never rejects. */
  start(): void {
    if (this.log.isInfoEnabled()) this.log.info('connected', { local: `${unmapIPv4(this.client.localAddress ?? '?')}:${this.client.localPort}` });
    this.run().catch((err: unknown) => this.fail(err));
  }

  /**
   * A session still logging in ends at once, with the protocol's goodbye. A logged-in one is
   * left to finish (a transfer in flight completes) unless `force`.
   */
  shutdown(force: boolean): void {
    if (this.phase === 'login') return this.close('shutting down', 'shuttingDown');
    if (this.phase === 'serving') {
      // A routing module (SMTP mx) between transactions is told goodbye now; one inside a
      // transaction finishes it, and says goodbye at its next quiet point (or is cut at the grace).
      this.draining = true;
      if (force || this.routing?.quiet) this.close('shutting down', 'shuttingDown');
      return;
    }
    if (force) this.close('shutting down');
  }

  private async run(): Promise<void> {
    const { module, limits } = this.deps;
    if (this.tls.implicit) await this.handshake();
    const clientChannel = new LineChannel(this.client, 'client', limits.maxLineLength ?? module.maxLineLength);
    if (module.serve) return this.serve(clientChannel, module.serve);
    const ctx = this.loginContext(clientChannel);
    this.watchClientEnd(clientChannel);
    this.client.write(module.greeting(this.deps.banner));
    for (let attempt = 1; ; attempt++) {
      const login = await module.readLogin(clientChannel, ctx);
      if (!login) return this.close('quit', undefined, true);
      const credentialsAt = Date.now();
      this.tenant = undefined;
      this.log.with({ tenant: undefined, backend: undefined });
      const route = this.deps.directory().resolve(login.name, module.name, this.localAddressOf, this.tls.sniTenant);
      const result: Awaited<ReturnType<Session['loginToBackends']>> | { ok: false; reason: 'unknownTenant'; reply?: undefined } = route
        ? await this.loginToBackends(route, login, ctx)
        : { ok: false, reason: 'unknownTenant' };
      this.ensureOpen();
      if ('socket' in result) return this.spliceWith(clientChannel, result, login);

      // An unknown domain, user or password: one reply, one text, one delay, and an unknown
      // domain takes at least as long as the backends' own refusals have lately.
      const { failureTiming, authPenalty } = this.deps;
      if (result.reason === 'authFailed') failureTiming?.observe(Date.now() - credentialsAt);
      const floor = result.reason === 'unknownTenant' ? (failureTiming?.typicalMs() ?? 0) : 0;
      const guessed = result.reason === 'authFailed' || result.reason === 'unknownTenant';
      const delayMs = guessed && authPenalty ? authPenalty.fail(this.peer().clientAddress, { baseMs: limits.authFailDelayMs, maxMs: limits.authPenaltyMaxMs, decayMs: limits.authPenaltyDecayMs }) : limits.authFailDelayMs;
      // A failed login holds no slot of its tenant: unauthenticated sessions must not fill a tenant's quota.
      this.releaseTenantSlot();
      // delayMs past authFailDelayMs: this address's auth penalty.
      this.log.info('login failed', { user: login.name, reason: result.reason, attempt, delayMs });
      this.deps.events?.loginFailed(this.tenant, result.reason);
      await this.pause(credentialsAt + Math.max(delayMs, floor) - Date.now());
      const reply = result.reason === 'tempFailure' || result.reason === 'tenantMaxConnections' ? module.reply('tempFailure') : (result.reply ?? module.reply('authFailed'));
      if (attempt >= limits.maxLoginAttempts) return this.close('too many login attempts', undefined, false, reply);
      if ((result.reason === 'tempFailure' || result.reason === 'tenantMaxConnections') && module.closesAfterTempFailure) return this.close('no backend available', undefined, false, reply);
      this.client.write(reply);
    }
  }

  /**
   * A client that hangs up while its login is with the backend is gone: stop the replay now
   * rather than when the backend answers. With commands still buffered (`nc -N` style
   * pipelining) the login goes on, and the splice passes the half-close on.
   */
  private watchClientEnd(clientChannel: LineChannel): void {
    this.stopLoginWatch?.();
    const socket = this.client;
    const onEndWhileLoggingIn = () => {
      if (this.phase === 'login' && clientChannel.buffered === 0) this.close('client closed');
    };
    socket.once('end', onEndWhileLoggingIn);
    // Left on for the session's life, it would keep this whole login frame (both line channels,
    // the login with its secret) alive in every idle spliced session.
    this.stopLoginWatch = () => socket.off('end', onEndWhileLoggingIn);
  }

  /** Logged in: the timer and the watch of the login phase go, and with them what they hold. */
  private endLoginPhase(): void {
    clearTimeout(this.loginTimer);
    this.loginTimer = undefined;
    this.stopLoginWatch?.();
    this.stopLoginWatch = undefined;
  }

  /** The server side of the client's TLS handshake; the session goes on over the TLS socket. */
  private async handshake(): Promise<void> {
    try {
      const socket = await this.tls.accept(this.client, this.deps.limits.loginTimeoutMs, this.log);
      this.ensureOpen();
      // The TLS socket counts from zero: what the plain one moved (the dialogue before STARTTLS, the handshake) is kept.
      this.bytesBefore = this.clientBytes();
      this.client = socket;
      this.deps.events?.tlsHandshake?.(socket.getProtocol() ?? 'unknown');
      socket.on('error', (err: NodeJS.ErrnoException) => this.close(`client error ${err.code ?? err.message}`));
    } catch (err) {
      if (this.phase !== 'closed') {
        this.log.info('tls handshake failed', { error: (err as Error).message });
        this.deps.events?.tlsHandshake?.('failed');
      }
      throw new ClientGoneError('CLIENT_ERROR', `TLS handshake failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** STLS / STARTTLS / AUTH TLS: the module has said "go ahead"; the channel now reads the TLS socket. */
  private async startClientTls(channel: LineChannel): Promise<void> {
    const dropped = channel.detachForTls();
    if (dropped > 0) this.log.warn('bytes after the TLS upgrade command dropped', { bytes: dropped });
    await this.handshake();
    channel.attachTls(this.client);
    if (this.phase === 'login') this.watchClientEnd(channel);
  }

  /** A backend configured for STARTTLS: the module has read the backend's go-ahead; the channel now reads TLS. */
  private async startBackendTls(channel: LineChannel, options: BackendTlsOptions): Promise<void> {
    this.backend = await upgradeBackendChannel(channel, options, this.deps.limits.backendReplyTimeoutMs);
  }

  /** Tries each backend of the route in order: dial from the tenant's address, replay the login. */
  private async loginToBackends(route: Route, login: LoginRequest, ctx: LoginContext): Promise<LoggedIn | { ok: false; reason: 'authFailed' | 'inUse' | 'tempFailure' | 'tenantMaxConnections'; reply?: string }> {
    this.tenant = route.tenant.domain;
    this.log.with({ tenant: this.tenant });
    if (!this.holdTenantSlot(route)) return { ok: false, reason: 'tenantMaxConnections' };
    for (const backend of route.backends) {
      const where = `${backend.host}:${backend.port}`;
      try {
        const tls = this.deps.backendTls?.(backend);
        // The onread fast path reads the TCP socket itself: a TLS backend is read through its TLS socket.
        const hook = tls ? undefined : new ReadHook();
        const channel = await this.attachBackend(backend, route.tenant.sourceAddress, hook);
        const verdict = await this.deps.module.replayLogin(channel, login, route.backendUser, ctx, this.target(backend, where, route.tenant.sourceAddress));
        if (verdict.ok) {
          this.log.with({ backend: where, source: route.tenant.sourceAddress });
          return { socket: channel.socket, channel, verdict, hook, tls };
        }
        this.dropBackend();
        return verdict;
      } catch (err) {
        this.dropBackend();
        if (!(err instanceof BackendError) || this.phase === 'closed') throw err;
        this.log.warn('backend failed', { backend: where, source: route.tenant.sourceAddress, code: err.code, error: err.message });
        this.deps.events?.backendFailed(route.tenant.domain, err.code);
      }
    }
    return { ok: false, reason: 'tempFailure' };
  }

  private spliceWith(clientChannel: LineChannel, backend: LoggedIn, login: LoginRequest): void {
    const { afterLogin } = this.deps.module;
    if (afterLogin) return this.relayControl(clientChannel, backend, login, afterLogin);
    const { client } = this;
    client.write(backend.verdict.reply, 'latin1'); // the backend's bytes, framed as latin1: passed on unchanged
    const fromBackend = backend.channel.release();
    const pipelined = clientChannel.release();
    if (fromBackend.length > 0) client.write(fromBackend);
    if (pipelined.length > 0) backend.socket.write(pipelined);
    this.endLoginPhase();
    this.phase = 'spliced';
    this.log.info('login ok', { user: login.name, method: login.method, pipelined: pipelined.length });
    this.clearPenalty();
    if (this.tenant !== undefined) this.deps.events?.loginOk(this.tenant);
    // Nothing here may capture the login's objects (line channels, login, route): an idle
    // session keeps only its two sockets, the splice's listeners and this session.
    const backendSocket = backend.socket;
    backendSocket.off('error', ignoreError); // the splice's own error listener takes over
    this.splice = splice(client, backendSocket, backend.hook);
    // on() rather than setTimeout(ms, listener), which wraps the listener in a once() per session.
    client.on('timeout', () => this.close('idle timeout'));
    client.setTimeout(this.deps.limits.idleTimeoutMs);
  }

  /**
   * For protocols whose control channel stays protocol-aware after login (FTP): the module's hook
   * relays it, both sides framed by callback-driven readers; the core lends it data links and keeps time.
   */
  private relayControl(clientChannel: LineChannel, backend: LoggedIn, login: LoginRequest, afterLogin: NonNullable<ProtocolModule['afterLogin']>): void {
    const { client, deps } = this;
    client.write(backend.verdict.reply, 'latin1'); // the backend's bytes, framed as latin1: passed on unchanged
    this.endLoginPhase();
    this.phase = 'spliced';
    this.controlRelayed = true;
    this.log.info('login ok', { user: login.name, method: login.method, pipelined: clientChannel.buffered });
    this.clearPenalty();
    if (this.tenant !== undefined) this.deps.events?.loginOk(this.tenant);
    // The control channel is quiet during a transfer: the idle timer only counts while no data link is open.
    client.on('timeout', () => {
      if (this.dataPlane?.busy) client.setTimeout(deps.limits.idleTimeoutMs);
      else this.close('idle timeout', 'timeout');
    });
    client.setTimeout(deps.limits.idleTimeoutMs);
    const session = this;
    const ctx: ControlContext = {
      limits: deps.limits,
      log: this.log,
      // A system call most sessions never need (only PORT / EPRT checks and data links read it).
      get clientAddress() {
        return session.clientAddress;
      },
      backendDataMode: deps.data?.backendDataMode ?? 'passive',
      tls: this.tls,
      backendTls: backend.tls !== undefined,
      openDataLink: (protection) => this.openDataPlane(backend).open(protection),
      countError: (why) => this.countError(why),
    };
    const clientLines = LineReader.takeOver(clientChannel, deps.limits.maxLineLength ?? deps.module.maxLineLength);
    const backendLines = LineReader.takeOver(backend.channel, BACKEND_MAX_LINE, backend.hook);
    afterLogin(clientLines, backendLines, ctx).then(
      (outcome) => this.close(outcome.reason, outcome.goodbye, true),
      (err: unknown) => this.fail(err),
    );
  }

  /** The session's data connections, set up at the first PASV / EPSV / PORT / EPRT: most sessions make none. */
  private openDataPlane(backend: LoggedIn): DataPlane {
    if (this.dataPlane) return this.dataPlane;
    const { client, deps } = this;
    const data = new DataPlane({ client, clientAddress: this.clientAddress, backend: backend.socket, ports: deps.data?.ports, passiveAddress: deps.data?.passiveAddress, limits: deps.limits, log: this.log, clientTls: this.tls.forData, backendTls: backend.tls?.options });
    this.dataPlane = data;
    this.openSockets++;
    void data.closed.then(() => this.socketClosed());
    return data;
  }

  /** The client's IP: the balancer's view when a PROXY header named it. */
  private get clientAddress(): string {
    return this.peerOverride ? this.peerOverride.clientAddress : unmapIPv4(this.client.remoteAddress ?? '');
  }

  /**
   * For modules that route by themselves (SMTP mx): the module speaks from the first byte and
   * asks for a tenant's backend per transaction; the core dials, binds, times and closes.
   * The login timer runs until the first backend is reached, then the idle timer alone.
   */
  private serve(clientChannel: LineChannel, serve: NonNullable<ProtocolModule['serve']>): Promise<void> {
    const { client, deps } = this;
    this.phase = 'serving';
    this.shares = new TenantShares();
    client.setTimeout(deps.limits.idleTimeoutMs, () => this.close('idle timeout', 'timeout'));
    const session = this;
    let peer: Peer | undefined;
    const ctx: RoutingContext = {
      get draining() {
        return session.draining;
      },
      quiet: false,
      limits: deps.limits,
      log: this.log,
      // Two system calls that only XCLIENT / a PROXY header need: made when first asked.
      get peer() {
        return (peer ??= session.peer());
      },
      tenantOf: (name) => deps.directory().resolve(name, deps.module.name, this.localAddressOf, this.tls.sniTenant)?.tenant.domain,
      connect: (name, handshake) => this.connectRoute(name, handshake),
      tls: this.tls,
      startTls: () => this.startClientTls(clientChannel),
      disconnect: () => this.disconnectBackend(),
      park: (link, goodbye) => this.parkBackend(link, goodbye),
      countError: (why) => this.countError(why),
      settle: () => {
        const { up, down } = this.clientBytes();
        this.shares?.settle(this.tenant, up, down);
      },
      identified: (tenant) => {
        clearTimeout(this.loginTimer);
        if (this.tenant === tenant) return;
        this.tenant = tenant;
        this.log.with({ tenant });
      },
    };
    this.routing = ctx;
    return serve(clientChannel, ctx).then((outcome) => this.close(outcome.reason, outcome.goodbye, true));
  }

  /** RoutingContext.connect: the previous backend goes, then each backend of the tenant is tried in order. */
  private async connectRoute<T>(name: string, handshake: (backend: LineChannel, target: BackendTarget) => Promise<T>): Promise<BackendLink<T> | 'unknownTenant' | 'tempFailure'> {
    this.ensureOpen();
    this.disconnectBackend();
    const route = this.deps.directory().resolve(name, this.deps.module.name, this.localAddressOf, this.tls.sniTenant);
    if (!route) return 'unknownTenant';
    this.tenant = route.tenant.domain;
    this.log.with({ tenant: this.tenant, backend: undefined });
    if (!this.holdTenantSlot(route)) {
      this.log.info('tenant connection refused', { limit: 'maxConnections' });
      return 'tempFailure';
    }
    const sourceAddress = route.tenant.sourceAddress;
    const pooled = this.adoptPooled<T>(route);
    if (pooled) return pooled;
    for (const backend of route.backends) {
      const address = `${backend.host}:${backend.port}`;
      try {
        // As at login: the onread fast path unless the backend is read through a TLS socket.
        const channel = await this.attachBackend(backend, sourceAddress, this.deps.backendTls?.(backend) ? undefined : new ReadHook());
        this.ensureOpen();
        const result = await handshake(channel, this.target(backend, address, sourceAddress));
        this.ensureOpen();
        clearTimeout(this.loginTimer);
        this.log.with({ backend: address, source: sourceAddress });
        return { channel, tenant: route.tenant.domain, result };
      } catch (err) {
        this.dropBackend();
        if (!(err instanceof BackendError) || this.phase === 'closed') throw err;
        this.log.warn('backend failed', { backend: address, source: sourceAddress, code: err.code, error: err.message });
        this.deps.events?.backendFailed(route.tenant.domain, err.code);
      }
    }
    return 'tempFailure';
  }

  /**
   * An idle connection of the listener's pool to one of the route's backends, held from now on
   * as if this session had dialled it; its handshake was done by the session that dialled it.
   */
  private adoptPooled<T>(route: Route): BackendLink<T> | undefined {
    const pool = this.deps.backendPool;
    if (!pool || pool.size === 0) return undefined;
    const { sourceAddress, domain } = route.tenant;
    for (const backend of route.backends) {
      const taken = pool.take(domain, backend, sourceAddress);
      if (!taken) continue;
      const { parked, uses } = taken;
      this.backend = parked.socket;
      this.held = { raw: parked.raw, backend, sourceAddress, uses };
      this.openSockets++;
      parked.raw.on('close', this.onBackendClose);
      clearTimeout(this.loginTimer);
      this.log.with({ backend: `${backend.host}:${backend.port}`, source: sourceAddress });
      this.deps.events?.backendReused?.();
      if (this.log.isDebugEnabled()) this.log.debug('backend connection reused', { uses });
      return { channel: parked.channel, tenant: domain, result: parked.result as T, reused: true };
    }
    return undefined;
  }

  /**
   * RoutingContext.park: the module is done with the held backend, which is between transactions.
   * It goes to the listener's pool for a later session of the same tenant, or, where a connection
   * speaks for one client (XCLIENT, a PROXY header) or the instance is stopping, it is sent
   * `goodbye` and closed.
   */
  private parkBackend(link: BackendLink<unknown>, goodbye: string): void {
    const { backend: socket, held } = this;
    const pool = this.deps.backendPool;
    if (!socket || !held || link.channel.socket !== socket) return;
    if (!pool || this.draining || held.backend.xclient || held.backend.sendProxyProtocol) return this.disconnectBackend(goodbye);
    this.backend = undefined;
    this.held = undefined;
    held.raw.off('close', this.onBackendClose);
    this.openSockets--;
    pool.put({ socket, raw: held.raw, channel: link.channel, backend: held.backend, sourceAddress: held.sourceAddress, tenant: link.tenant, result: link.result, goodbye }, held.uses + 1);
  }

  /** What a module's handshake knows of one backend, with the STARTTLS step the session runs for it. */
  private target(backend: Backend, address: string, sourceAddress: string | undefined): BackendTarget {
    const tls = this.deps.backendTls?.(backend);
    return {
      address,
      options: backend,
      sourceAddress,
      tls: tls?.mode ?? 'none',
      startTls: (channel) => (tls ? this.startBackendTls(channel, tls) : Promise.reject(new BackendError('BACKEND_TLS', 'backend has no TLS settings'))),
    };
  }

  /**
   * Takes a connection slot of the route's tenant (giving back one held for another tenant);
   * false when the tenant is at its maxConnections, which is counted and logged.
   */
  private holdTenantSlot(route: Route): boolean {
    const counts = this.deps.tenantConnections;
    const tenant = route.tenant.domain;
    if (!counts || this.tenantSlot === tenant) return true;
    this.releaseTenantSlot();
    if (!counts.acquire(tenant, route.tenant.maxConnections ?? this.deps.limits.maxConnectionsPerTenant)) {
      this.deps.events?.tenantRefused?.(tenant, 'maxConnections');
      return false;
    }
    this.tenantSlot = tenant;
    return true;
  }

  private releaseTenantSlot(): void {
    if (this.tenantSlot === undefined) return;
    this.deps.tenantConnections?.release(this.tenantSlot);
    this.tenantSlot = undefined;
  }

  /**
   * Dials one backend from the tenant's address (and with implicit TLS, handshakes); from the
   * connect on, the session owns the socket.
   */
  private async attachBackend(backend: Backend, sourceAddress: string | undefined, hook?: ReadHook): Promise<LineChannel> {
    this.pendingDial = dialBackend(backend, sourceAddress, this.deps.limits.connectTimeoutMs, hook);
    let socket: Socket;
    try {
      socket = await this.pendingDial.socket;
    } finally {
      this.pendingDial = undefined;
    }
    this.backend = socket;
    this.held = { raw: socket, backend, sourceAddress, uses: 0 };
    this.openSockets++;
    socket.on('close', this.onBackendClose);
    socket.on('error', ignoreError); // the channels and splice report errors; this keeps a late one from crashing us
    // The header is the first byte the backend reads, whatever the protocol says after it.
    if (backend.sendProxyProtocol) socket.write(encodeProxyHeader(backend.sendProxyProtocol, this.peer()));
    const tls = this.deps.backendTls?.(backend);
    if (tls?.mode === 'implicit') {
      socket = await secureBackend(socket, tls, this.deps.limits.backendReplyTimeoutMs, `${backend.host}:${backend.port}`);
      this.backend = socket;
    }
    return new LineChannel(socket, 'backend', BACKEND_MAX_LINE, hook);
  }

  /** Ends the held backend politely (what was written, then `goodbye`, goes first), with a linger cap. */
  private disconnectBackend(goodbye?: string): void {
    const socket = this.backend;
    if (!socket) return;
    this.backend = undefined;
    this.held = undefined;
    closePolitely(socket, goodbye);
  }

  /** The address the client dialled: the balancer's view when a PROXY header named it. */
  private get localAddress(): string | undefined {
    return this.peerOverride?.localAddress ?? this.client.localAddress;
  }

  /** The same, read only when routing needs it (a login without a domain): it costs a system call. */
  private readonly localAddressOf = (): string | undefined => this.localAddress;

  private peer(): Peer {
    if (this.peerOverride) return this.peerOverride;
    const { client } = this;
    return {
      clientAddress: unmapIPv4(client.remoteAddress ?? ''),
      clientPort: client.remotePort ?? 0,
      localAddress: unmapIPv4(client.localAddress ?? ''),
      localPort: client.localPort ?? 0,
    };
  }

  private clearPenalty(): void {
    const penalty = this.deps.authPenalty;
    if (penalty && penalty.size > 0) penalty.succeed(this.peer().clientAddress);
  }

  private loginContext(clientChannel: LineChannel): LoginContext {
    const session = this;
    let peer: Peer | undefined;
    return {
      limits: this.deps.limits,
      banner: this.deps.banner,
      log: this.log,
      tls: this.tls,
      startTls: () => this.startClientTls(clientChannel),
      // Two system calls that only SMTP's XCLIENT / PROXY header need: made when first asked.
      get peer() {
        return (peer ??= session.peer());
      },
      reject: (kind: ReplyKind, why: string, reply?: string) => {
        this.ensureOpen();
        this.countError(why);
        this.client.write(reply ?? this.deps.module.reply(kind));
      },
    };
  }

  /** Counts a bad command; past `maxErrors` the session ends with the protocol's goodbye. */
  private countError(why: string): void {
    this.errors++;
    this.log.info('bad command', { why, errors: this.errors });
    if (this.errors >= this.deps.limits.maxErrors) throw new ConciergeError('TOO_MANY_ERRORS', 'tooManyErrors', why);
  }

  /** Waits `ms`, or less when the session closes meanwhile (then throws ClientGoneError). */
  private async pause(ms: number): Promise<void> {
    if (ms > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.delay = { timer, wake: resolve };
      });
      this.delay = undefined;
    }
    this.ensureOpen();
  }

  private ensureOpen(): void {
    if (this.phase === 'closed') throw new ClientGoneError('CLIENT_CLOSED', 'session already closed');
  }

  private dropBackend(): void {
    this.backend?.destroy();
    this.backend = undefined;
    this.held = undefined;
  }

  private fail(err: unknown): void {
    if (this.phase === 'closed') return;
    if (err instanceof ClientGoneError) return this.close('client closed');
    if (err instanceof ConciergeError) return this.close(err.code.toLowerCase().replaceAll('_', ' '), err.kind);
    this.log.error('unexpected error', { error: err instanceof Error ? err.stack : String(err) });
    this.close('internal error', 'tempFailure');
  }

  /**
   * The one close path. `kind` (or a ready `reply`) is sent as a goodbye before the client
   * socket is ended; `polite` ends it after whatever was already written.
   */
  private close(reason: string, kind?: ReplyKind, polite = false, reply?: string): void {
    if (this.phase === 'closed') return;
    const wasSpliced = this.phase === 'spliced';
    this.phase = 'closed';
    this.releaseTenantSlot();
    clearTimeout(this.loginTimer);
    this.pendingDial?.cancel();
    if (this.delay) {
      clearTimeout(this.delay.timer);
      this.delay.wake();
    }
    const goodbye = reply ?? (kind ? this.deps.module.reply(kind) : undefined);
    if (!wasSpliced) this.dropBackend();
    if (this.controlRelayed) {
      // A protocol-aware relay ends here whatever ended it: its data links and its backend go now.
      this.dataPlane?.close();
      this.backend?.destroy();
    }
    const { client } = this;
    if ((goodbye || polite) && !client.destroyed && client.writable) {
      if (goodbye) client.end(goodbye, 'latin1');
      else client.end();
      client.resume(); // read and drop until the client's FIN, so our last line is not lost to a reset
      const linger = setTimeout(() => client.destroy(), GOODBYE_LINGER_MS);
      client.once('close', () => clearTimeout(linger));
    } else {
      client.destroy();
      this.backend?.destroy();
    }
    const data = this.dataPlane?.bytes; // FTP data connections count toward the tenant's traffic too
    const { up, down } = this.clientBytes();
    const byTenant = this.shares?.close(this.tenant, up, down);
    this.outcome = { reason, tenant: this.tenant, loggedIn: wasSpliced, bytesUp: up + (data?.up ?? 0), bytesDown: down + (data?.down ?? 0), ...(byTenant ? { byTenant } : {}) };
    this.log.info('session closed', { reason, bytesUp: this.outcome.bytesUp, bytesDown: this.outcome.bytesDown, durationMs: Date.now() - this.startedAt });
    this.reportDone();
  }

  /** What the client's sockets have moved: read (up) and written (down). */
  private clientBytes(): { up: number; down: number } {
    const { client, bytesBefore } = this;
    return { up: bytesBefore.up + client.bytesRead, down: bytesBefore.down + client.bytesWritten };
  }

  private socketClosed(): void {
    if (--this.openSockets > 0) return;
    // A splice ends when both its sockets have closed, whichever side ended it.
    if (this.splice && this.phase === 'spliced') this.close(`${this.splice.endedBy ?? 'client'} ended`);
    this.reportDone();
  }

  /** Once closed and with no socket left open: the session holds nothing any more. */
  private reportDone(): void {
    if (this.openSockets > 0 || !this.outcome || this.reported) return;
    this.reported = true;
    this.deps.onDone?.(this, this.outcome);
  }
}
