import net from 'node:net';
import tls from 'node:tls';
import type { DataEndpoint, DataLink, DataProtection } from '../proxies/types.js';
import type { Limits } from './config.js';
import { spliceAddon } from './data-path.js';
import { dialData, relayData, resetEnd, type KernelBytes, type RelayEnd, type RelayKernel } from './data-relay.js';
import { ReadHook } from './read-hook.js';
import type { SessionLog } from './log.js';
import { listenOn, type PassivePorts } from './port-range.js';
import { unmapIPv4 } from './tenants.js';
import { acceptTls, connectTls, type ListenerTls } from './tls.js';

/** What a session's data plane needs from its listener and its two control sockets. */
export interface DataPlaneOptions {
  /** The client's control socket (its local address is where passive data listeners bind). */
  readonly client: net.Socket;
  /** The control client's IP (a PROXY header's, when a balancer relays it): the only one data may come from or go to. */
  readonly clientAddress: string;
  /** The backend's control socket: its local address is the tenant's source address. */
  readonly backend: net.Socket;
  readonly ports: PassivePorts | undefined;
  /** Address written in 227 / 229 instead of the one the client dialled (NAT). */
  readonly passiveAddress: string | undefined;
  readonly limits: Limits;
  readonly log: SessionLog;
  /**
   * FTPS toward the client: the listener's TLS and the control connection's SecureContext
   * (the SNI-chosen one), which client data connections share so that their TLS sessions
   * resume the control connection's (lftp, FileZilla insist on it).
   */
  readonly clientTls?: { readonly view: ListenerTls; readonly context: tls.SecureContext };
  /** FTPS toward the backend: how its control connection's TLS was set up (CA, name); its session is offered again. */
  readonly backendTls?: tls.ConnectionOptions;
}

const PLAIN: DataProtection = { client: false, backend: false };

/** The data links of one session; `close()` ends them all, `closed` resolves once every socket and listener is closed. */
export class DataPlane {
  private readonly links = new Set<Link>();
  private handles = 0;
  private ended = false;
  private resolveClosed!: () => void;
  readonly closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));

  constructor(readonly options: DataPlaneOptions) {}

  /** Whether a data link is open (the control channel may be quiet during a transfer). */
  get busy(): boolean {
    return this.links.size > 0;
  }

  open(protection: DataProtection = PLAIN): DataLink {
    if (this.ended) throw new Error('data plane closed');
    const link = new Link(this, protection, () => this.links.delete(link));
    this.links.add(link);
    return link;
  }

  /** Client-side data sockets still open, and the bytes of those already closed. */
  private readonly clientSockets = new Set<net.Socket>();
  private closedUp = 0;
  private closedDown = 0;

  /** Kernel pumps' counts of relays whose client socket is still open (Node's counters miss those bytes). */
  private readonly kernelBytes = new Set<KernelBytes>();

  /** Bytes the client sent (up) and received (down) over data connections so far. */
  get bytes(): { up: number; down: number } {
    let up = this.closedUp;
    let down = this.closedDown;
    for (const s of this.clientSockets) {
      up += s.bytesRead;
      down += s.bytesWritten;
    }
    for (const k of this.kernelBytes) {
      up += k.up;
      down += k.down;
    }
    return { up, down };
  }

  /** Counts a relay's kernel-moved bytes toward `bytes`; final once `clientSide` has closed (its pumps are stopped by then). */
  countKernel(bytes: KernelBytes, clientSide: net.Socket): void {
    this.kernelBytes.add(bytes);
    clientSide.once('close', () => {
      this.kernelBytes.delete(bytes);
      this.closedUp += bytes.up;
      this.closedDown += bytes.down;
    });
  }

  /** Counts a client-side data socket's bytes toward `bytes`. */
  countClientSide(socket: net.Socket): void {
    this.clientSockets.add(socket);
    socket.once('close', () => {
      this.clientSockets.delete(socket);
      this.closedUp += socket.bytesRead;
      this.closedDown += socket.bytesWritten;
    });
  }

  /** Counts a socket or server until its close event (the session is done only when all are). */
  track(handle: net.Socket | net.Server): void {
    this.handles++;
    handle.once('close', () => {
      if (--this.handles === 0 && this.ended) this.resolveClosed();
    });
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    for (const link of this.links) link.abort();
    if (this.handles === 0) this.resolveClosed();
  }
}

/** How long a finished relay may take to close by itself once its link is closed. */
const LINGER_MS = 2_000;

type Target = { host: string; port: number };

/** One data connection: a client side and a backend side, each listened for or dialled, then relayed. */
class Link implements DataLink {
  private clientEnd: RelayEnd | undefined;
  private backendEnd: RelayEnd | undefined;
  private readonly servers: net.Server[] = [];
  private clientTarget: Target | undefined;
  private backendTarget: Target | undefined;
  private started = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private outcome: Promise<'complete' | 'failed'> | undefined;
  private complete = false;
  /** TLS handshakes in progress on either side: the relay waits for them. */
  private securing = 0;
  private resolveOutcome!: (outcome: 'complete' | 'failed') => void;
  private readonly settledPromise = new Promise<'complete' | 'failed'>((resolve) => (this.resolveOutcome = resolve));

  constructor(
    private readonly plane: DataPlane,
    private readonly protection: DataProtection,
    private readonly onClose: () => void,
  ) {}

  private get o(): DataPlaneOptions {
    return this.plane.options;
  }

  get relaying(): boolean {
    return this.outcome !== undefined && !this.closed;
  }

  /** The control client's IP: the one address allowed on the client side. */
  private get clientIp(): string {
    return this.o.clientAddress;
  }

  private armTimer(): void {
    this.timer ??= setTimeout(() => {
      this.o.log.info('data connection timeout', { ms: this.o.limits.dataConnectTimeoutMs });
      this.abort();
    }, this.o.limits.dataConnectTimeoutMs);
  }

  private server(onSocket: (socket: net.Socket) => void): net.Server {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
      socket.on('error', () => {});
      if (this.closed) return void socket.destroy();
      this.plane.track(socket);
      onSocket(socket);
    });
    server.on('error', (err) => this.o.log.warn('data listener error', { error: err.message }));
    server.maxConnections = 4;
    this.servers.push(server);
    return server;
  }

  async listenForClient(): Promise<DataEndpoint> {
    const { ports } = this.o;
    if (!ports) throw new Error('this listener has no passive port range');
    const host = unmapIPv4(this.o.client.localAddress ?? '');
    const server = this.server((socket) => {
      const from = unmapIPv4(socket.remoteAddress ?? '');
      // Data-port theft: only the control connection's client may take the passive port.
      if (from !== this.clientIp || this.clientEnd) {
        this.o.log.warn('data connection refused', { from, expected: this.clientIp });
        return void socket.destroy();
      }
      this.clientEnd = { socket };
      this.plane.countClientSide(socket);
      server.close();
      this.connectBackendIfPassive();
      this.secure('client');
    });
    const port = await ports.listen(server, host);
    this.plane.track(server);
    if (this.closed) server.close();
    this.armTimer();
    const address = this.o.passiveAddress ?? host;
    return { address, port, family: net.isIPv6(address) ? 6 : 4 };
  }

  dialClient(address: string, port: number): void {
    if (address !== this.clientIp) throw new Error(`refusing a data connection to ${address}: not the control client`);
    this.clientTarget = { host: address, port };
    this.armTimer();
  }

  async listenForBackend(): Promise<DataEndpoint> {
    const host = unmapIPv4(this.o.backend.localAddress ?? '');
    const backendIp = unmapIPv4(this.o.backend.remoteAddress ?? '');
    const server = this.server((socket) => {
      const from = unmapIPv4(socket.remoteAddress ?? '');
      if (from !== backendIp || this.backendEnd) {
        this.o.log.warn('backend data connection refused', { from, expected: backendIp });
        return void socket.destroy();
      }
      this.backendEnd = { socket };
      server.close();
      this.dialClientIfActive();
      this.secure('backend');
    });
    await listenOn(server, host, 0);
    this.plane.track(server);
    if (this.closed) server.close();
    this.armTimer();
    return { address: host, port: (server.address() as net.AddressInfo).port, family: net.isIPv6(host) ? 6 : 4 };
  }

  dialBackend(port: number): void {
    this.backendTarget = { host: unmapIPv4(this.o.backend.remoteAddress ?? ''), port };
    this.armTimer();
  }

  start(): void {
    this.started = true;
    this.connectBackendIfPassive();
    this.dialClientIfActive();
  }

  private connectBackendIfPassive(): void {
    if (!this.backendTarget || this.backendEnd || this.closed) return;
    // The onread fast path reads the TCP socket itself: a TLS side is read through its TLS socket.
    const hook = this.protection.backend ? undefined : new ReadHook();
    const socket = this.dial(this.backendTarget, unmapIPv4(this.o.backend.localAddress ?? ''), hook, 'backend');
    this.backendEnd = { socket, hook };
  }

  private dialClientIfActive(): void {
    if (!this.clientTarget || this.clientEnd || this.closed || !this.started) return;
    const hook = this.protection.client ? undefined : new ReadHook();
    const socket = this.dial(this.clientTarget, unmapIPv4(this.o.client.localAddress ?? ''), hook, 'client');
    this.clientEnd = { socket, hook };
    this.plane.countClientSide(socket);
  }

  private dial(target: Target, localAddress: string, hook: ReadHook | undefined, side: 'client' | 'backend'): net.Socket {
    const socket = dialData(target.host, target.port, localAddress || undefined, hook);
    this.plane.track(socket);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      this.o.log.info('data connection failed', { side, to: `${target.host}:${target.port}`, code: err.code ?? err.message });
      this.abort();
    });
    socket.once('connect', () => this.secure(side));
    return socket;
  }

  /**
   * RFC 4217 PROT P: a side named in `protection` is TLS before bytes flow. Concierge is the
   * TLS server toward the client, with the control connection's context (its sessions resume
   * there), and the TLS client toward the backend, offering the backend control connection's
   * session (vsftpd's require_ssl_reuse). A failed handshake aborts the link: the transfer's
   * reply becomes 425 / 426, never a plaintext transfer.
   */
  private secure(side: 'client' | 'backend'): void {
    const end = side === 'client' ? this.clientEnd : this.backendEnd;
    if (!end || !this.protection[side]) return this.pair();
    const raw = end.socket;
    const timeoutMs = this.o.limits.dataConnectTimeoutMs;
    let handshake: Promise<tls.TLSSocket>;
    if (side === 'client') {
      const clientTls = this.o.clientTls;
      if (!clientTls) return this.refuseUnprotected(side);
      handshake = acceptTls(raw, clientTls.view, timeoutMs, clientTls.context).then((accepted) => accepted.socket);
    } else {
      const options = this.o.backendTls;
      if (!options) return this.refuseUnprotected(side);
      const control = this.o.backend;
      const session = control instanceof tls.TLSSocket ? control.getSession() : undefined;
      handshake = connectTls(raw, { ...options, ...(session ? { session } : {}) }, timeoutMs);
    }
    this.securing++;
    handshake.then(
      (socket) => {
        this.securing--;
        socket.on('error', () => {});
        if (this.closed) return void socket.destroy();
        // Bytes stay counted on the TCP socket (already counted): those are the ones on the wire.
        if (this.o.log.isDebugEnabled()) this.o.log.debug('data tls established', { side, protocol: socket.getProtocol(), reused: socket.isSessionReused() });
        const secured = { socket, raw };
        if (side === 'client') this.clientEnd = secured;
        else this.backendEnd = secured;
        this.pair();
      },
      (err: Error) => {
        this.securing--;
        if (this.closed) return;
        this.o.log.info('data tls handshake failed', { side, error: err.message });
        this.abort();
      },
    );
  }

  private refuseUnprotected(side: 'client' | 'backend'): void {
    this.o.log.warn('data protection asked without TLS on that side', { side });
    this.abort();
  }

  /** Starts the relay once both sides are connected (a dialled socket may still be connecting) and secured. */
  private pair(): void {
    const { clientEnd, backendEnd } = this;
    if (this.closed || this.outcome || this.securing > 0 || !clientEnd || !backendEnd) return;
    if (clientEnd.socket.connecting || backendEnd.socket.connecting) return;
    clearTimeout(this.timer);
    this.outcome = relayData(clientEnd, backendEnd, this.o.limits.idleTimeoutMs, this.kernel(clientEnd.socket));
    void this.outcome.then((outcome) => {
      this.complete = outcome === 'complete';
      this.resolveOutcome(outcome);
      if (outcome === 'failed') this.abort();
    });
  }

  /** The addon's kernel pumps for this relay, when the data path is `splice`. */
  private kernel(clientSide: net.Socket): RelayKernel | undefined {
    const addon = spliceAddon();
    if (!addon) return undefined;
    return {
      addon,
      onStart: (bytes) => {
        this.plane.countKernel(bytes, clientSide);
        this.o.log.debug('data relay on kernel pumps');
      },
      onError: (direction, reason) => this.o.log.info('data relay failed', { direction, reason }),
    };
  }

  settled(): Promise<'complete' | 'failed'> {
    return this.settledPromise;
  }

  close(): void {
    this.finish('end');
  }

  abort(): void {
    this.finish('reset');
  }

  /**
   * A finished relay is left to close by itself (destroying it could turn the client's last bytes
   * into a reset); otherwise `end` sends FINs and `reset` resets, so that neither side takes an
   * aborted transfer for a whole file. Whatever is left is destroyed after LINGER_MS.
   */
  private finish(how: 'end' | 'reset'): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const server of this.servers) if (server.listening) server.close();
    for (const end of [this.clientEnd, this.backendEnd]) {
      if (!end) continue;
      if (how === 'reset' && !this.complete) {
        resetEnd(end);
        continue;
      }
      if (!this.complete) end.socket.end();
      end.socket.setTimeout(LINGER_MS, () => end.socket.destroy());
    }
    this.resolveOutcome('failed');
    this.onClose();
  }
}

/** What an FTP listener lends its sessions for data connections. */
export interface DataSetup {
  readonly ports: PassivePorts;
  readonly passiveAddress: string | undefined;
  readonly backendDataMode: 'passive' | 'active';
}
