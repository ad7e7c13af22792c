import type { Limits } from '../src/config.js';
import type { ReplyKind } from '../src/errors.js';
import type { LineChannel } from '../src/line-channel.js';
import type { SessionLog } from '../src/log.js';
import type { Protocol } from '../src/tenants.js';

/** Credentials a client offered, as the client offered them. Never logged. */
export interface LoginRequest {
  /** The login name as typed, e.g. `alice@a.example`. */
  readonly name: string;
  readonly secret: string;
  /** How the client logged in; the backend is asked the same way. */
  readonly method: string;
}

/** The backend's answer to the replayed login. */
export type Verdict =
  /** `reply` is the backend's success line, forwarded to the client verbatim (CRLF included). */
  | { readonly ok: true; readonly reply: string }
  /** `reply` overrides the uniform authFailed line only where it reveals nothing (e.g. mailbox in use). */
  | { readonly ok: false; readonly reason: 'authFailed' | 'inUse'; readonly reply?: string };

/** What the core lends a protocol module during the login phase. */
export interface LoginContext {
  readonly limits: Limits;
  readonly banner: string | undefined;
  readonly log: SessionLog;
  /**
   * Answers a bad command with the protocol's words for `kind` and counts it toward
   * `maxErrors`; throws (ending the session) when the count is exceeded.
   * `reply` replaces the generic words where the RFC has more precise ones.
   */
  reject(kind: ReplyKind, why: string, reply?: string): void;
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
   * the backend fails. `backendAddress` ("host:port") keys what a module learns about a backend.
   */
  replayLogin(backend: LineChannel, login: LoginRequest, backendUser: string, ctx: LoginContext, backendAddress: string): Promise<Verdict>;
  /** The core's outcome in the protocol's words, CRLF included. */
  reply(kind: ReplyKind): string;
}
