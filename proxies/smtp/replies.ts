import type { ReplyKind } from '../../src/errors.js';

/** Settings an SMTP listener gives its module. */
export interface SmtpSettings {
  /** "relay" listeners are served by relay/ (they queue rather than proxy); the words are shared. */
  readonly mode: 'mx' | 'submission' | 'relay';
  /** In the greeting, the EHLO reply and 421 lines; never a version. */
  readonly hostname: string;
  readonly maxMessageSize: number;
  readonly greetingDelayMs: number;
  /** mx: SMTPUTF8 (RFC 6531) is offered, and UTF-8 addresses taken in transactions that declare it. */
  readonly smtputf8: boolean;
  /** mx: DSN (RFC 3461) is offered, and its parameters passed to backends that offer it too. */
  readonly dsn: boolean;
}

/**
 * The core's outcomes in SMTP words (RFC 5321 §4.2, RFC 3463 enhanced codes). `tempFailure` in
 * submission answers an AUTH whose backends are all down (RFC 4954 §6: 454) and the session goes
 * on; in mx it only ends a session (421).
 */
export function smtpReplies(s: SmtpSettings): Record<ReplyKind, string> {
  return {
    syntax: '500 5.5.2 Syntax error, command unrecognized\r\n',
    badSequence: '503 5.5.1 Bad sequence of commands\r\n',
    lineTooLong: '500 5.5.2 Line too long\r\n',
    authFailed: '535 5.7.8 Authentication credentials invalid\r\n',
    tempFailure: s.mode === 'submission' ? '454 4.7.0 Temporary authentication failure\r\n' : `421 4.3.0 ${s.hostname} Service not available, closing transmission channel\r\n`,
    tooManyErrors: `421 4.7.0 ${s.hostname} Too many errors, closing transmission channel\r\n`,
    timeout: `421 4.4.2 ${s.hostname} Timeout, closing transmission channel\r\n`,
    shuttingDown: `421 4.3.2 ${s.hostname} Service shutting down, closing transmission channel\r\n`,
    tooManyConnections: `421 4.7.0 ${s.hostname} Too many connections, try again later\r\n`,
  };
}

/** Fixed replies Concierge gives itself. */
export const replies = {
  ok: '250 2.0.0 OK\r\n',
  resetOk: '250 2.0.0 Reset OK\r\n',
  senderOk: '250 2.1.0 Sender OK\r\n',
  bye: '221 2.0.0 Bye\r\n',
  help: '214 2.0.0 See RFC 5321\r\n',
  vrfy: '252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n',
  needHelo: '503 5.5.1 Send EHLO or HELO first\r\n',
  needMail: '503 5.5.1 Need MAIL before RCPT\r\n',
  needRcpt: '503 5.5.1 Need RCPT before DATA\r\n',
  nestedMail: '503 5.5.1 Sender already specified\r\n',
  needAuth: '530 5.7.0 Authentication required\r\n',
  /** RFC 3207 §4: the server's policy requires TLS before this command. */
  needTls: '530 5.7.0 Must issue a STARTTLS command first\r\n',
  startTls: '220 2.0.0 Ready to start TLS\r\n',
  tlsActive: '503 5.5.1 TLS already active\r\n',
  noTls: '502 5.5.1 STARTTLS not available\r\n',
  alreadyAuth: '503 5.5.1 Already authenticated\r\n',
  syntaxArgs: '501 5.5.4 Syntax error in parameters or arguments\r\n',
  badHelo: '501 5.5.4 Invalid domain name\r\n',
  badAddress: '501 5.1.3 Bad address syntax\r\n',
  badParam: '555 5.5.4 Unsupported MAIL or RCPT parameter\r\n',
  tooBig: '552 5.3.4 Message size exceeds fixed maximum message size\r\n',
  relayDenied: '550 5.7.1 Relaying denied\r\n',
  otherTenant: '451 4.5.3 Recipient belongs to another transaction, try again later\r\n',
  backendDown: '451 4.4.0 Service temporarily unavailable, try again later\r\n',
  mechanism: '504 5.5.4 Unrecognized authentication mechanism\r\n',
  cancelled: '501 5.0.0 Authentication cancelled\r\n',
  badSasl: '501 5.5.2 Cannot decode SASL response\r\n',
  lostBackend: '451 4.4.2 Connection to the mail server lost, try again later\r\n',
  /** RFC 6531 §3.7.4: a UTF-8 address without SMTPUTF8 declared (or offered), or toward a backend that does not take it. */
  utf8Sender: '553 5.6.7 Non-ASCII addresses not permitted for that sender\r\n',
  utf8Recipient: '553 5.6.7 Non-ASCII addresses not permitted for that recipient\r\n',
  /** The transaction declared SMTPUTF8 and the recipient's mail server does not offer it. */
  utf8Backend: '553 5.6.7 The recipient\'s mail server does not accept SMTPUTF8\r\n',
  /** RFC 5321 §2.3.8: CR and LF only as CRLF; anything else could end the message early elsewhere. */
  bareLineEnd: '550 5.6.11 Message refused: a bare CR or LF outside CRLF\r\n',
  /** RFC 5321 §4.5.3.1.6: text lines of at most 1000 octets, CRLF included. */
  lineTooLong: '500 5.5.6 Message refused: a line longer than 1000 octets\r\n',
} as const;

export const DEFAULT_MAX_LINE = 512;
