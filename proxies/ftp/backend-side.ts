import { BackendError } from '../../src/errors.js';
import type { LineChannel } from '../../src/line-channel.js';
import type { BackendTarget, LoginContext, LoginRequest, Verdict } from '../types.js';
import { type FtpReply, ReplyFramer, readReply } from './replies.js';

/**
 * 2xx logs in; 4xx (421 above all) is a backend in trouble: try the next one; 5xx, or 332
 * (needs ACCT), is a refused login, answered with the uniform authFailed line.
 */
function verdictOf(reply: FtpReply, step: string): Verdict {
  if (reply.code >= 200 && reply.code < 300) return { ok: true, reply: reply.text };
  if (reply.code >= 400 && reply.code < 500) throw new BackendError('BACKEND_PROTOCOL', `backend answered ${reply.code} ${step}`);
  return { ok: false, reason: 'authFailed' };
}

/**
 * The backend half of the login, one expected reply per step (nginx's upstream states):
 * the 220 greeting (after any 120), USER → 331 (or 230 at once), PASS → the verdict.
 */
export async function replayFtpLogin(backend: LineChannel, login: LoginRequest, backendUser: string, ctx: LoginContext, target: BackendTarget): Promise<Verdict> {
  const framer = new ReplyFramer();
  const timeout = ctx.limits.backendReplyTimeoutMs;
  let greeting = await readReply(backend, framer, timeout);
  // RFC 959 §5.4: 120 "ready in nnn minutes" comes before the 220; we wait no longer than the reply timeout.
  while (greeting.code === 120) greeting = await readReply(backend, framer, timeout);
  if (greeting.code !== 220) throw new BackendError('BACKEND_PROTOCOL', `backend greeted with ${greeting.code}`);
  if (target.tls === 'starttls') {
    // RFC 4217 §4: AUTH TLS, 234, the handshake; USER and PASS only ever cross it encrypted.
    // PBSZ and PROT follow once logged in, from the control relay (they mirror the client's).
    backend.writeLine('AUTH TLS');
    const go = await readReply(backend, framer, timeout);
    if (go.code !== 234) throw new BackendError('BACKEND_TLS', `backend answered ${go.code} to AUTH TLS`);
    await target.startTls(backend);
  }

  backend.writeLine(`USER ${backendUser}`);
  const userReply = await readReply(backend, framer, timeout);
  if (userReply.code !== 331) return verdictOf(userReply, 'while sending the user name');
  backend.writeLine(`PASS ${login.secret}`);
  return verdictOf(await readReply(backend, framer, timeout), 'while sending the password');
}
