import type { ProtocolModule } from '../proxies/types.js';
import type { AuthPenalty } from './auth-penalty.js';
import type { BackendPool } from './backend-pool.js';
import type { Backend, Limits } from './config.js';
import type { DataSetup } from './data-channel.js';
import type { FailureTiming } from './failure-timing.js';
import type { Logger } from './log.js';
import type { Session } from './session.js';
import type { TenantConnections } from './tenant-connections.js';
import type { TenantBytes } from './tenant-shares.js';
import type { TenantDirectory } from './tenants.js';
import type { BackendTlsOptions, ListenerTls } from './tls.js';

// What a Session is given by its listener, and what it reports back: the contract, apart from
// the class that keeps it (session.ts).

/** What a listener hands each of its sessions. */
export interface SessionDeps {
  readonly module: ProtocolModule;
  /** Read at each login, so a reloaded directory applies to the next login. */
  readonly directory: () => TenantDirectory;
  readonly limits: Limits;
  readonly banner: string | undefined;
  readonly logger: Logger;
  /** The listener's record of backend refusal times (unknown domains wait as long). */
  readonly failureTiming?: FailureTiming;
  /** Called once, when the client's and the backend's sockets have both closed. */
  readonly onDone?: (session: Session, outcome: SessionOutcome) => void;
  /** FTP listeners: passive ports, the address for 227 replies, how the backend is asked for data. */
  readonly data?: DataSetup;
  /** Login outcomes as they happen, for counters. */
  readonly events?: SessionEvents;
  /** The listener's client TLS (read at each session: certificates are re-read on reload). */
  readonly tls?: () => ListenerTls | undefined;
  /** How to speak TLS to a backend, when it is configured for it. */
  readonly backendTls?: (backend: Backend) => BackendTlsOptions | undefined;
  /** Per-tenant session counts of the process (maxConnections of a tenant). */
  readonly tenantConnections?: TenantConnections;
  /** Per-address failed-login record of the process (the growing delay). */
  readonly authPenalty?: AuthPenalty;
  /** SMTP mx listeners: idle backend connections kept between client sessions. */
  readonly backendPool?: BackendPool;
}

/** What a session reports besides its log lines (the listener's metrics). */
export interface SessionEvents {
  loginOk(tenant: string): void;
  /** `tenant` undefined: the login named no configured tenant. */
  loginFailed(tenant: string | undefined, reason: string): void;
  backendFailed(tenant: string, code: string): void;
  /** A login for `tenant` was refused by a limit of the tenant's before any backend was dialled. */
  tenantRefused?(tenant: string, limit: 'maxConnections'): void;
  /** A client TLS handshake ended: its protocol version ("TLSv1.3"), or "failed". */
  tlsHandshake?(outcome: string): void;
  /** A session took an idle backend connection from the listener's pool instead of dialling. */
  backendReused?(): void;
}

/** How a session ended, for counters and tests. */
export interface SessionOutcome {
  readonly reason: string;
  readonly tenant: string | undefined;
  /** The backend accepted the login and the session was passed through (POP3, FTP). */
  readonly loggedIn: boolean;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /**
   * A routing session (SMTP mx) that served several tenants: each one's part of bytesUp and
   * bytesDown (they add up to them); counters use this instead of `tenant` when present.
   */
  readonly byTenant?: ReadonlyMap<string, TenantBytes>;
}
