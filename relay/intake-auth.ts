import type { LineChannel } from '../src/line-channel.js';
import { introduce, replayAuth } from '../proxies/smtp/backend-side.js';
import { decodePlain } from '../proxies/pop3/sasl-plain.js';
import type { RoutingContext } from '../proxies/types.js';
import type { SenderDirectory, SenderIdentity } from './senders.js';

/** RFC 4954 §4: a SASL response line may be up to 12288 octets. */
const MAX_SASL_LINE = 12_288;

/** The outcome of AUTH, already answered to the client except for `ok` (the caller answers 235). */
export type AuthOutcome = { ok: true; identity: SenderIdentity; user: string } | { ok: false };

function decodeBase64(text: string): string | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  return Buffer.from(text, 'base64').toString('latin1');
}

async function saslLine(client: LineChannel, ctx: RoutingContext, prompt: string): Promise<string | undefined> {
  client.write(`334 ${prompt}\r\n`);
  const event = await client.next({ maxLineLength: MAX_SASL_LINE });
  if (event.kind !== 'line') {
    ctx.countError('bad SASL response line');
    client.write('501 5.5.2 Cannot decode SASL response\r\n');
    return undefined;
  }
  if (event.line === '*') {
    client.write('501 5.0.0 Authentication cancelled\r\n');
    return undefined;
  }
  return event.line;
}

/** Reads AUTH PLAIN / LOGIN credentials (RFC 4954, RFC 4616); undefined when already answered. */
async function readCredentials(arg: string, client: LineChannel, ctx: RoutingContext): Promise<{ name: string; secret: string; method: string } | undefined> {
  const [mechanism = '', initial, extra] = arg.split(' ');
  const mech = mechanism.toUpperCase();
  const bad = (why: string, reply = '501 5.5.2 Cannot decode SASL response\r\n') => {
    ctx.countError(why);
    client.write(reply);
    return undefined;
  };
  if (extra !== undefined || (mech !== 'PLAIN' && mech !== 'LOGIN')) return bad('AUTH mechanism not offered', '504 5.5.4 Unrecognized authentication mechanism\r\n');
  if (mech === 'PLAIN') {
    const response = initial ?? (await saslLine(client, ctx, ''));
    if (response === undefined) return undefined;
    const plain = decodePlain(response);
    if (!plain || (plain.authzid !== '' && plain.authzid !== plain.authcid)) return bad('malformed SASL PLAIN response');
    return { name: plain.authcid, secret: plain.password, method: 'PLAIN' };
  }
  const userText = initial ?? (await saslLine(client, ctx, 'VXNlcm5hbWU6'));
  if (userText === undefined) return undefined;
  const name = decodeBase64(userText);
  if (!name) return bad('malformed AUTH LOGIN user name');
  const passText = await saslLine(client, ctx, 'UGFzc3dvcmQ6');
  if (passText === undefined) return undefined;
  const secret = decodeBase64(passText);
  if (!secret) return bad('malformed AUTH LOGIN password');
  return { name, secret, method: 'LOGIN' };
}

/**
 * AUTH on a relay listener. The relay keeps no passwords: the credentials are replayed to the
 * tenant's own submission backend (its `backends.smtp`), dialled from the tenant's address, and
 * its verdict is the client's. Unknown domain, wrong password: one reply after one delay.
 */
export async function authenticate(arg: string, client: LineChannel, ctx: RoutingContext, senders: SenderDirectory, hostname: string, helo: string | undefined): Promise<AuthOutcome> {
  const credentials = await readCredentials(arg, client, ctx);
  if (!credentials) return { ok: false };
  const startedAt = Date.now();
  const tenant = senders.ofLogin(credentials.name);
  const timeoutMs = ctx.limits.backendReplyTimeoutMs;
  let verdict: 'ok' | 'failed' | 'tempFailure' = 'failed';
  if (tenant) {
    const link = await ctx.connect(credentials.name, async (backend, target) => {
      const extensions = await introduce(backend, target, { peer: ctx.peer, helo, proto: 'ESMTP' }, hostname, timeoutMs);
      return replayAuth(backend, { ...credentials, helo }, tenant.backendUser, extensions, timeoutMs);
    });
    if (link === 'tempFailure') verdict = 'tempFailure';
    else if (link !== 'unknownTenant') {
      verdict = link.result.ok ? 'ok' : 'failed';
      link.channel.writeLine('QUIT');
      ctx.disconnect();
    }
  }
  if (verdict === 'ok') {
    ctx.log.info('relay login ok', { user: credentials.name, method: credentials.method });
    return { ok: true, identity: tenant!.identity, user: credentials.name };
  }
  ctx.log.info('relay login failed', { user: credentials.name, reason: tenant ? verdict : 'unknownTenant' });
  if (verdict === 'tempFailure') {
    client.write('454 4.7.0 Temporary authentication failure\r\n');
    return { ok: false };
  }
  const wait = startedAt + ctx.limits.authFailDelayMs - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  ctx.countError('authentication failed');
  client.write('535 5.7.8 Authentication credentials invalid\r\n');
  return { ok: false };
}
