import { BackendError } from '../../src/errors.js';
import type { LineChannel } from '../../src/line-channel.js';
import type { BackendTarget, LoginContext, LoginRequest, Verdict } from '../types.js';
import { backendPipelines } from './backend-capabilities.js';
import { encodePlain } from './sasl-plain.js';

/** RFC 5034 §4: an AUTH line with its initial response must fit in 255 octets. */
const MAX_AUTH_LINE = 255;

type Reply = { ok: true; line: string } | { ok: false; line: string; code: string | undefined };

async function readReply(backend: LineChannel, ctx: LoginContext, step: string): Promise<Reply> {
  const event = await backend.next({ timeoutMs: ctx.limits.backendReplyTimeoutMs });
  if (event.kind !== 'line') throw new BackendError('BACKEND_PROTOCOL', `malformed reply ${step}`);
  const { line } = event;
  if (line.startsWith('+OK')) return { ok: true, line };
  if (line.startsWith('-ERR')) return { ok: false, line, code: /^-ERR \[([A-Z/-]+)\]/.exec(line)?.[1] };
  // A continuation is only a sane answer to AUTH; the caller decides.
  if (line.startsWith('+')) return { ok: false, line, code: 'CONTINUATION' };
  throw new BackendError('BACKEND_PROTOCOL', `not a POP3 reply ${step}`);
}

/** RFC 3206 codes tell a wrong password apart from a backend in trouble. */
function verdictOf(reply: Reply, step: string): Verdict {
  if (reply.ok) return { ok: true, reply: `${reply.line}\r\n` };
  if (reply.code === 'SYS/TEMP') throw new BackendError('BACKEND_PROTOCOL', `backend temporary failure ${step}`);
  if (reply.code === 'IN-USE') return { ok: false, reason: 'inUse', reply: '-ERR [IN-USE] Mailbox is in use by another session\r\n' };
  return { ok: false, reason: 'authFailed' };
}

/**
 * The backend half of the login (nginx's upstream states): greeting, then USER + PASS (in one
 * segment when the backend pipelines), or
 * AUTH PLAIN when the client used it, one expected reply per step.
 */
export async function replayPop3Login(backend: LineChannel, login: LoginRequest, backendUser: string, ctx: LoginContext, target: BackendTarget): Promise<Verdict> {
  const { address } = target;
  const greeting = await readReply(backend, ctx, 'while reading the greeting');
  if (!greeting.ok) throw new BackendError('BACKEND_PROTOCOL', 'backend greeted with an error');
  if (target.tls === 'starttls') {
    // RFC 2595 §4: STLS, "+OK", then the handshake; the credentials only ever cross it encrypted.
    backend.writeLine('STLS');
    const go = await readReply(backend, ctx, 'while starting TLS');
    if (!go.ok) throw new BackendError('BACKEND_TLS', `backend refused STLS: ${go.line.slice(0, 80)}`);
    await target.startTls(backend);
  }

  if (login.method === 'PLAIN') {
    const response = encodePlain(backendUser, login.secret);
    const inline = `AUTH PLAIN ${response}`;
    if (inline.length + 2 <= MAX_AUTH_LINE) {
      backend.writeLine(inline);
    } else {
      backend.writeLine('AUTH PLAIN');
      const go = await readReply(backend, ctx, 'while starting AUTH PLAIN');
      if (go.ok || go.code !== 'CONTINUATION') return verdictOf(go.ok ? { ok: false, line: go.line, code: undefined } : go, 'while starting AUTH PLAIN');
      backend.writeLine(response);
    }
    const reply = await readReply(backend, ctx, 'while sending AUTH PLAIN');
    if (!reply.ok && reply.code === 'CONTINUATION') throw new BackendError('BACKEND_PROTOCOL', 'backend asked for more SASL data');
    return verdictOf(reply, 'while sending AUTH PLAIN');
  }

  const pipelined = await backendPipelines(backend, address, ctx);
  if (pipelined) {
    backend.write(`USER ${backendUser}\r\nPASS ${login.secret}\r\n`);
  } else {
    backend.writeLine(`USER ${backendUser}`);
  }
  const userReply = await readReply(backend, ctx, 'while sending the user name');
  // Pipelined or not, a refused USER decides: the backend is dropped, its PASS reply unread.
  if (!userReply.ok) return verdictOf(userReply, 'while sending the user name');
  if (!pipelined) backend.writeLine(`PASS ${login.secret}`);
  return verdictOf(await readReply(backend, ctx, 'while sending the password'), 'while sending the password');
}
