/**
 * Failures with a stable `code`; the protocol module turns the `kind` into its own words.
 * Tests assert on the class and code, never on the message.
 */
export type ReplyKind =
  | 'syntax'
  | 'badSequence'
  | 'lineTooLong'
  | 'authFailed'
  | 'tempFailure'
  | 'tooManyErrors'
  | 'timeout'
  | 'shuttingDown'
  /** A connection refused at accept by a connection limit or an address list. */
  | 'tooManyConnections';

/** Base class of every failure Concierge reports on purpose. */
export class ConciergeError extends Error {
  constructor(
    readonly code: string,
    readonly kind: ReplyKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The backend could not be reached, or broke the dialogue before giving a verdict: try the next one. */
export class BackendError extends ConciergeError {
  constructor(code: 'BACKEND_CONNECT' | 'BACKEND_TIMEOUT' | 'BACKEND_CLOSED' | 'BACKEND_PROTOCOL' | 'BACKEND_LINE_TOO_LONG' | 'BACKEND_TLS', message: string, options?: { cause?: unknown }) {
    super(code, 'tempFailure', message, options);
  }
}

/** The client side ended (closed, reset or timed out) while Concierge was waiting on it. */
export class ClientGoneError extends ConciergeError {
  constructor(code: 'CLIENT_CLOSED' | 'CLIENT_ERROR', message: string, options?: { cause?: unknown }) {
    super(code, 'syntax', message, options);
  }
}

/** A phase timer ran out (login, connect). */
export class TimeoutError extends ConciergeError {
  constructor(code: 'LOGIN_TIMEOUT' | 'IDLE_TIMEOUT', message: string) {
    super(code, 'timeout', message);
  }
}
