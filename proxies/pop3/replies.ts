import type { ReplyKind } from '../../src/errors.js';

/** The core's outcomes in POP3 words, with RFC 2449 / RFC 3206 response codes. */
export const pop3Replies: Record<ReplyKind, string> = {
  syntax: '-ERR Syntax error\r\n',
  badSequence: '-ERR Command not valid in this state\r\n',
  lineTooLong: '-ERR Line too long\r\n',
  authFailed: '-ERR [AUTH] Authentication failed\r\n',
  tempFailure: '-ERR [SYS/TEMP] Service temporarily unavailable, try again later\r\n',
  tooManyErrors: '-ERR Too many errors, closing connection\r\n',
  timeout: '-ERR Timeout, closing connection\r\n',
  shuttingDown: '-ERR [SYS/TEMP] Server shutting down\r\n',
  tooManyConnections: '-ERR [SYS/TEMP] Too many connections, try again later\r\n',
};

/** What Concierge itself offers before login (RFC 2449 §5). Never IMPLEMENTATION: no version leaks. */
export const PRE_LOGIN_CAPABILITIES = ['USER', 'SASL PLAIN', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];

/** A plaintext login where the listener requires TLS (RFC 3206's AUTH code: the client should not retry as is). */
export const TLS_REQUIRED = '-ERR [AUTH] TLS required: send STLS first\r\n';

export const DEFAULT_BANNER = 'POP3 server ready';
