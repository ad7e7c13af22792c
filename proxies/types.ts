import type { Backend, Limits, ListenerConfig } from '../src/config.js';
import type { ReplyKind } from '../src/errors.js';
import type { LineChannel } from '../src/line-channel.js';
import type { LineReader } from '../src/line-reader.js';
import type { SessionLog } from '../src/log.js';
import type { Protocol } from '../src/tenants.js';

/** Credentials a client offered, as the client offered them. Never logged. */
export interface LoginRequest {
  /** The login name as typed, e.g. `alice@a.example`. */
  readonly name: string;
  readonly secret: string;
  /** How the client logged in; the backend is asked the same way. */
  readonly method: string;
  /** SMTP: the name the client gave in EHLO / HELO (for XCLIENT HELO=). */
  readonly helo?: string;
}

/** Both ends of the client's connection, IPv4-mapped addresses unmapped (for XCLIENT / PROXY headers). */
export interface Peer {
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly localAddress: string;
  readonly localPort: number;
}

/** The backend's answer to the replayed login. */
export type Verdict =
  /** `reply` is the backend's success line, forwarded to the client verbatim (CRLF included). */
  | { readonly ok: true; readonly reply: string }
  /** `reply` overrides the uniform authFailed line only where it reveals nothing (e.g. mailbox in use). */
  | { readonly ok: false; readonly reason: 'authFailed' | 'inUse'; readonly reply?: string };

/** The client's TLS, live: it changes when the client upgrades. */
export interface ClientTls {
  /** The listener offers an upgrade (STLS / STARTTLS / AUTH TLS) and the client has not taken it yet. */
  readonly offered: boolean;
  /** The connection is encrypted (implicit TLS, or after the upgrade). */
  readonly active: boolean;
  /** Logins (SMTP: mail) are refused until it is encrypted. */
  readonly required: boolean;
  /** FTP: the listener refuses unprotected data connections (RFC 4217 PROT C). */
  readonly requireProtP: boolean;
}

/** What the core lends a protocol module during the login phase. */
export interface LoginContext {
  readonly limits: Limits;
  readonly banner: string | undefined;
  readonly log: SessionLog;
  readonly peer: Peer;
  readonly tls: ClientTls;
  /**
   * Upgrades the client connection once the module has written its go-ahead line: bytes the
   * client sent after its upgrade command are dropped unread, then the handshake runs and the
   * channel reads the TLS socket. Rejects (ending the session) when the handshake fails.
   */
  startTls(): Promise<void>;
  /**
   * Answers a bad command with the protocol's words for `kind` and counts it toward
   * `maxErrors`; throws (ending the session) when the count is exceeded.
   * `reply` replaces the generic words where the RFC has more precise ones.
   */
  reject(kind: ReplyKind, why: string, reply?: string): void;
}

/** An address and port for a data connection, as written in 227 / 229 / PORT / EPRT. */
export interface DataEndpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/**
 * One data connection the core relays between client and backend (FTP). The module says how each
 * side is reached; the core owns the sockets: listeners on the passive range or the tenant's
 * source address, dials bound to the tenant's source address, the source-IP check, timeouts.
 */
export interface DataLink {
  /** Client-passive: listens on the address the client dialled, at a port of the listener's passive range. */
  listenForClient(): Promise<DataEndpoint>;
  /** Client-active: connect to the client at `port` when the transfer starts; `address` must be the control client's. */
  dialClient(address: string, port: number): void;
  /** Backend-active: listens on the tenant's source address for the backend's connection. */
  listenForBackend(): Promise<DataEndpoint>;
  /** Backend-passive: the backend's data port, dialled on the backend's control host (never the address it sent). */
  dialBackend(port: number): void;
  /** The transfer command went to the backend: dial the active sides now. */
  start(): void;
  /** Whether both sides have connected and bytes may flow. */
  readonly relaying: boolean;
  /**
   * Resolves 'complete' once the backend's EOF has reached the client and the client side is
   * flushed and ended; 'failed' when the link breaks, times out or is closed first.
   */
  settled(): Promise<'complete' | 'failed'>;
  /** Closes the link's listeners (ports given back) and ends its connections with FINs. Safe to call twice. */
  close(): void;
  /** As close(), but resets the connections: an aborted transfer (ABOR). */
  abort(): void;
}

/**
 * Which sides of an FTP data connection are TLS (RFC 4217 PROT P). Concierge is the TLS server
 * toward the client and the TLS client toward the backend, whoever dialled the TCP connection.
 */
export interface DataProtection {
  readonly client: boolean;
  readonly backend: boolean;
}

/** What the core lends a module whose control channel stays protocol-aware after login. */
export interface ControlContext {
  readonly limits: Limits;
  readonly log: SessionLog;
  /** The control connection's client IP (IPv4-mapped addresses unmapped); looked up when first read. */
  readonly clientAddress: string;
  /** How the listener wants data connections asked of the backend. */
  readonly backendDataMode: 'passive' | 'active';
  /** The client's TLS on the control connection (it no longer changes after login). */
  readonly tls: ClientTls;
  /** The backend's control connection is TLS (implicit, or upgraded during the login replay). */
  readonly backendTls: boolean;
  /** A new data link, TLS on the sides `protection` names; the core closes every link when the session ends. */
  openDataLink(protection?: DataProtection): DataLink;
  /** Counts a bad command toward `maxErrors`; throws (ending the session) when the count is exceeded. */
  countError(why: string): void;
}

/** Why a protocol-aware control relay ended; `goodbye` is sent to the client before the close. */
export interface ControlOutcome {
  readonly reason: string;
  readonly goodbye?: ReplyKind;
}

/** One configured backend as a routing module's handshake sees it. */
export interface BackendTarget {
  /** "host:port", for logs and capability caches. */
  readonly address: string;
  readonly options: Backend;
  readonly sourceAddress: string | undefined;
  /** "starttls": the module sends the protocol's upgrade command, reads the go-ahead, then calls startTls. */
  readonly tls: 'none' | 'starttls' | 'implicit';
  /** Switches the backend channel to TLS (verifying the certificate); rejects with BackendError BACKEND_TLS. */
  startTls(channel: LineChannel): Promise<void>;
}

/** A backend connection a routing module holds, after its handshake succeeded. */
export interface BackendLink<T> {
  readonly channel: LineChannel;
  readonly tenant: string;
  readonly result: T;
  /**
   * Taken from the listener's pool: another session of the tenant dialled it and ran the handshake
   * (`result` is that handshake's); it may have gone stale since, so a failure on its first command
   * means: connect again.
   */
  readonly reused?: boolean;
}

/**
 * What the core lends a module that routes by itself, per transaction (SMTP mx): it speaks to
 * the client from the first byte and asks the core for a tenant's backend when it learns the tenant.
 */
export interface RoutingContext {
  readonly limits: Limits;
  readonly log: SessionLog;
  readonly peer: Peer;
  /** The tenant (its domain) that hosts `name` (an address or a domain) with a backend for this protocol. */
  tenantOf(name: string): string | undefined;
  /**
   * Closes the backend held (if any), then dials the backends of `name`'s tenant in order, bound
   * to its source address, running `handshake` on each until one succeeds (a BackendError means:
   * next backend). 'unknownTenant': no backend was contacted. 'tempFailure': every backend failed.
   */
  connect<T>(name: string, handshake: (backend: LineChannel, target: BackendTarget) => Promise<T>): Promise<BackendLink<T> | 'unknownTenant' | 'tempFailure'>;
  readonly tls: ClientTls;
  /** As LoginContext.startTls. */
  startTls(): Promise<void>;
  /** The instance is shutting down: end the session at the next point with no transaction open (goodbye `shuttingDown`). */
  readonly draining: boolean;
  /**
   * Set by the module while it waits for a command with no transaction open: a shutdown then
   * ends the session at once with the `shuttingDown` goodbye, instead of waiting for the grace.
   */
  quiet: boolean;
  /** Ends the backend connection held (after whatever was written to it, e.g. QUIT). Safe to call twice. */
  disconnect(): void;
  /**
   * The module is done with `link`, the backend held, and no transaction is open on it: the core
   * keeps it for a later session of the same tenant (the listener's backend pool), or sends it
   * `goodbye` ("QUIT") and ends it.
   */
  park(link: BackendLink<unknown>, goodbye: string): void;
  /** Counts a bad command toward `maxErrors`; throws (ending the session) when the count is exceeded. */
  countError(why: string): void;
  /**
   * A transaction ended: the client bytes moved since the last call count for the tenant named
   * last (connect / identified). Bytes never settled go to the session's last tenant at close.
   */
  settle(): void;
  /**
   * The client is known to be `tenant` without a backend (the relay identified the sender): the
   * login timer stops, only the idle timer applies, and the session's logs and counters name the tenant.
   */
  identified(tenant: string): void;
}

/** The contract between the core (sockets, time, tenants, logs) and one protocol's words. */
export interface ProtocolModule {
  readonly name: Protocol;
  /** Default cap on a command line, CRLF included, from the protocol's RFC. */
  readonly maxLineLength: number;
  /** The greeting, CRLF included. */
  greeting(banner: string | undefined): string;
  /**
   * Runs the pre-login dialogue until the client offers credentials.
   * Undefined means the client said goodbye (the module has already answered it).
   */
  readLogin(client: LineChannel, ctx: LoginContext): Promise<LoginRequest | undefined>;
  /**
   * Reads the backend's greeting and replays the login as `backendUser`. Throws BackendError when
   * the backend fails. `target` names the backend ("host:port", which keys what a module learns
   * about it) and carries its configured options (SMTP: XCLIENT / PROXY).
   */
  replayLogin(backend: LineChannel, login: LoginRequest, backendUser: string, ctx: LoginContext, target: BackendTarget): Promise<Verdict>;
  /** The core's outcome in the protocol's words, CRLF included. */
  reply(kind: ReplyKind): string;
  /** The tempFailure reply announces a close (FTP's 421): after a login no backend could take, the session ends. */
  readonly closesAfterTempFailure?: boolean;
  /**
   * When present, called instead of the plain splice once the login succeeded and the verdict
   * was written: the module relays the control channel itself (both sides still framed, by
   * callback-driven readers that start with the bytes the login left unread, pipelined commands
   * included) until it resolves or throws.
   */
  afterLogin?(client: LineReader, backend: LineReader, ctx: ControlContext): Promise<ControlOutcome>;
  /**
   * When present, the module runs the whole session instead of readLogin / replayLogin: it greets,
   * routes each transaction through `ctx.connect`, and resolves (or throws) when the session ends.
   */
  serve?(client: LineChannel, ctx: RoutingContext): Promise<ControlOutcome>;
  /** A module whose words depend on its listener's settings (SMTP's mode, hostname, SIZE) returns a configured copy. */
  forListener?(listener: ListenerConfig): ProtocolModule;
}
