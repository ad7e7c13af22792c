import { BackendError } from '../../src/errors.js';
import type { LineChannel } from '../../src/line-channel.js';
import type { BackendTarget, LoginRequest, Peer, Verdict } from '../types.js';
import { extensionsOf, readReply, type SmtpReply } from './reply-reader.js';

/** What the backend offered after EHLO (keyword → parameters). */
export type Extensions = ReadonlyMap<string, string>;

/** Who is on the other side of Concierge, for XCLIENT / PROXY. */
export interface ClientIdentity {
  readonly peer: Peer;
  /** The client's EHLO / HELO name, if it gave one. */
  readonly helo: string | undefined;
  readonly proto: 'SMTP' | 'ESMTP';
}

/** RFC 1891 xtext: `+` `=` and anything outside 0x21-0x7e as `+XX`. */
function xtext(value: string): string {
  return value.replace(/[^\x21-\x2a\x2c-\x3c\x3e-\x7e]/g, (c) => `+${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

async function ehlo(backend: LineChannel, hostname: string, timeoutMs: number): Promise<Extensions> {
  backend.writeLine(`EHLO ${hostname}`);
  const reply = await readReply(backend, timeoutMs, 'while sending EHLO');
  if (reply.code !== 250) throw new BackendError('BACKEND_PROTOCOL', `backend answered EHLO with ${reply.code}`);
  return extensionsOf(reply);
}

/**
 * The start of every backend connection (after the core's PROXY header, if configured): the 220 greeting, EHLO,
 * and XCLIENT (Postfix XCLIENT_README) when configured and advertised, which restarts the
 * session at a new 220 and so takes a second EHLO. Any failure is a BackendError: next backend.
 */
export async function introduce(backend: LineChannel, target: BackendTarget, client: ClientIdentity, hostname: string, timeoutMs: number): Promise<Extensions> {
  const greeting = await readReply(backend, timeoutMs, 'while reading the greeting');
  if (greeting.code !== 220) throw new BackendError('BACKEND_PROTOCOL', `backend greeted with ${greeting.code}`);
  let extensions = await ehlo(backend, hostname, timeoutMs);
  if (target.tls === 'starttls') {
    // RFC 3207: STARTTLS, 220, handshake, and EHLO again: what was offered in plaintext is forgotten.
    if (!extensions.has('STARTTLS')) throw new BackendError('BACKEND_TLS', 'backend does not offer STARTTLS');
    backend.writeLine('STARTTLS');
    const go = await readReply(backend, timeoutMs, 'while sending STARTTLS');
    if (go.code !== 220) throw new BackendError('BACKEND_TLS', `backend answered STARTTLS with ${go.code}`);
    await target.startTls(backend);
    extensions = await ehlo(backend, hostname, timeoutMs);
  }
  const offered = extensions.get('XCLIENT');
  if (target.options.xclient && offered !== undefined) {
    const names = new Set(offered.toUpperCase().split(' '));
    const { peer } = client;
    const attrs = [
      ['ADDR', peer.clientAddress.includes(':') ? `IPV6:${peer.clientAddress}` : peer.clientAddress],
      ['PORT', String(peer.clientPort)],
      ['HELO', client.helo ?? '[UNAVAILABLE]'],
      ['PROTO', client.proto],
    ].filter(([name]) => names.has(name!));
    backend.writeLine(`XCLIENT ${attrs.map(([name, value]) => `${name}=${xtext(value!)}`).join(' ')}`);
    const reply = await readReply(backend, timeoutMs, 'while sending XCLIENT');
    if (reply.code !== 220) throw new BackendError('BACKEND_PROTOCOL', `backend answered XCLIENT with ${reply.code}`);
    extensions = await ehlo(backend, hostname, timeoutMs);
  }
  return extensions;
}

/**
 * Submission (RFC 4954): the login replayed as AUTH PLAIN (AUTH LOGIN when that is all the
 * backend offers) for `backendUser`. 235 is the client's; 5xx is a uniform authFailed; 4xx and
 * anything else are a BackendError (next backend, then 454).
 */
export async function replayAuth(backend: LineChannel, login: LoginRequest, backendUser: string, extensions: Extensions, timeoutMs: number): Promise<Verdict> {
  const mechanisms = new Set((extensions.get('AUTH') ?? '').toUpperCase().split(' '));
  let reply: SmtpReply;
  if (!mechanisms.has('PLAIN') && mechanisms.has('LOGIN')) {
    backend.writeLine('AUTH LOGIN');
    reply = await readReply(backend, timeoutMs, 'while starting AUTH LOGIN');
    if (reply.code === 334) {
      backend.writeLine(Buffer.from(backendUser, 'latin1').toString('base64'));
      reply = await readReply(backend, timeoutMs, 'while sending the user name');
    }
    if (reply.code === 334) {
      backend.writeLine(Buffer.from(login.secret, 'latin1').toString('base64'));
      reply = await readReply(backend, timeoutMs, 'while sending the password');
    }
  } else {
    backend.writeLine(`AUTH PLAIN ${Buffer.from(`\0${backendUser}\0${login.secret}`, 'latin1').toString('base64')}`);
    reply = await readReply(backend, timeoutMs, 'while sending AUTH PLAIN');
  }
  if (reply.code === 235) return { ok: true, reply: reply.text };
  if (reply.code >= 500) return { ok: false, reason: 'authFailed' };
  throw new BackendError('BACKEND_PROTOCOL', `backend answered AUTH with ${reply.code}`);
}

/** The extension a MAIL or RCPT parameter belongs to (RFC 6152 BODY, RFC 3461 DSN; else its own name: SIZE, SMTPUTF8). */
function extensionOf(param: string): string {
  if (param === 'BODY') return '8BITMIME';
  if (param === 'RET' || param === 'ENVID' || param === 'NOTIFY' || param === 'ORCPT') return 'DSN';
  return param;
}

function withParams(line: string, params: ReadonlyMap<string, string | undefined>, extensions: Extensions): string {
  for (const [name, value] of params) {
    if (extensions.has(extensionOf(name))) line += value === undefined ? ` ${name}` : ` ${name}=${value}`;
  }
  return line;
}

/** Keeps the MAIL parameters the backend understands (SIZE, BODY, SMTPUTF8, RET / ENVID). */
export function mailLine(sender: string, params: ReadonlyMap<string, string | undefined>, extensions: Extensions): string {
  return withParams(`MAIL FROM:<${sender}>`, params, extensions);
}

/** Keeps the RCPT parameters the backend understands (NOTIFY / ORCPT with DSN). */
export function rcptLine(recipient: string, params: ReadonlyMap<string, string | undefined>, extensions: Extensions): string {
  return withParams(`RCPT TO:<${recipient}>`, params, extensions);
}

/** The backend's replies to a replayed MAIL and the first RCPT (sent in one write when it pipelines). */
export interface EnvelopeReplies {
  readonly mail: SmtpReply;
  /** Undefined when MAIL was refused (the RCPT was not sent, or its reply is moot). */
  readonly rcpt: SmtpReply | undefined;
}

/** Replays MAIL FROM and one RCPT TO on a greeted backend (RFC 2920 when it advertises PIPELINING). */
export async function replayEnvelope(backend: LineChannel, mail: string, rcpt: string, extensions: Extensions, timeoutMs: number): Promise<EnvelopeReplies> {
  const pipelining = extensions.has('PIPELINING');
  if (pipelining) backend.write(`${mail}\r\n${rcpt}\r\n`);
  else backend.writeLine(mail);
  const mailReply = await readReply(backend, timeoutMs, 'while sending MAIL');
  if (mailReply.code === 421) throw new BackendError('BACKEND_CLOSED', 'backend is closing (421)');
  if (mailReply.code >= 300) {
    // Pipelined: the RCPT's reply is owed and read, so the connection stays in step.
    if (pipelining) await readReply(backend, timeoutMs, 'while sending RCPT');
    return { mail: mailReply, rcpt: undefined };
  }
  if (!pipelining) backend.writeLine(rcpt);
  return { mail: mailReply, rcpt: await readReply(backend, timeoutMs, 'while sending RCPT') };
}
